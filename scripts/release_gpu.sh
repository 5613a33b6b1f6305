#!/usr/bin/env bash
# Trains the shipped pretrained model (release 4: experiment E017's recipe) from scratch on a
# machine with a GPU and packs it into jaxnotes/pretrained_model/:
#   stage 1, GPU: render `release_pianos` and build its records -> export the train split
#     (experiments/E017_gpu_scratch/arrays.py, ~20 min on one core) -> 139,700 steps of 128
#     one-second windows from scratch (device_train.py, ~6 min on an H200) -> the weights
#     adopted as a workdir (python -m jaxnotes.train.adopt) -> test;
#   later stages, CPU or GPU (E017's LATER_STAGES): 4 epochs more on another take of the
#     pieces (other rooms, performances and pianos) -> test -> pack the last stage's dev model.
# Needs JAX with CUDA besides scripts/setup.sh (e.g. pip install "jax[cuda13]==<jax's pin>").
# Resumable step by step: rerun after an interruption (an interrupted GPU run starts again).
# Where the GPU is another machine (this project's device tool), run stage 1's GPU step
# there by hand: experiments/README.md, E017. TINY=1 runs the same chain on the tiny corpus
# (the plumbing only; seconds of audio, 20 steps).
# Results go under $RUNS (default runs/release-gpu), $RUNS-<stage>, $RUNS-data, $RUNS-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RUNS=${RUNS:-runs/release-gpu}
C=experiments/E017_gpu_scratch/config.py
STEPS=139700
PREFIX=""
if [ "${TINY:-0}" = 1 ]; then PREFIX="tiny"; STEPS=20; fi
stage1="$C${PREFIX:+:$PREFIX}"
"$PY" -m jaxnotes.main --config="$stage1" --workdir="$RUNS" --action=process-train,process-test
[ -f "$RUNS-data/index.json" ] ||
  "$PY" -m experiments.E017_gpu_scratch.arrays --out "$RUNS-data" ${PREFIX:+--variant $PREFIX}
[ -f "$RUNS-gpu/weights-0.npz" ] ||
  "$PY" -m experiments.E017_gpu_scratch.device_train --data "$RUNS-data" --out "$RUNS-gpu" \
    --steps $STEPS ${PREFIX:+--variant $PREFIX --scan 10}
[ -d "$RUNS/checkpoints" ] ||
  "$PY" -m jaxnotes.train.adopt --weights "$RUNS-gpu/weights-0.npz" --workdir "$RUNS" \
    --config="$stage1" --step $STEPS
"$PY" -m jaxnotes.main --config="$stage1" --workdir="$RUNS" --action=test
BEFORE="$RUNS"
STAGES=$("$PY" -c "from experiments.E017_gpu_scratch import config; print(*config.SHIPPED)")
for STAGE in $STAGES; do
  WORKDIR="$RUNS-$STAGE"
  config="$C:${PREFIX:+${PREFIX}_}$STAGE"
  # The same --config.init_from in both commands, so that they name the same config.
  "$PY" -m jaxnotes.main --config="$config" --workdir="$WORKDIR" \
      --config.init_from="$BEFORE" --action=process-train,process-test,train-val
  "$PY" -m jaxnotes.main --config="$config" --workdir="$WORKDIR" \
      --config.init_from="$BEFORE" --action=test
  BEFORE="$WORKDIR"
done
if [ -z "$PREFIX" ]; then
  "$PY" -m jaxnotes.pretrained --workdir="$BEFORE"
else
  "$PY" -m jaxnotes.pretrained --workdir="$BEFORE" --out "$RUNS-packed"
fi
