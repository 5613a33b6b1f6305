#!/usr/bin/env bash
# Trains the shipped pretrained model (release 5: experiment E018's recipe) from scratch on a
# machine with a GPU and packs it into jaxnotes/pretrained_model/:
#   stage 1, GPU: render each take of E018's run (RUN, default the shipped one; its takes and
#     steps are experiments/E018_gpu_takes/config.py's RUNS) and build its records -> export
#     each take's train split (experiments/E017_gpu_scratch/arrays.py, ~1 min each) -> steps
#     of 128 one-second windows from scratch, drawn from every take (device_train.py, ~3 min
#     on an H100 for 70,000) -> the weights adopted as a workdir (jaxnotes.train.adopt) -> test;
#   later stages, CPU or GPU (E018's SHIPPED): 4 epochs more on a take the GPU stage did not
#     hear (other rooms, performances and pianos) -> test -> pack the last stage's dev model.
# Needs JAX with CUDA besides scripts/setup.sh (e.g. pip install "jax[cuda13]==<jax's pin>").
# Resumable step by step: rerun after an interruption (the GPU run from its last snapshot).
# Where the GPU is another machine (this project's device tool), run stage 1's GPU step
# there by hand: experiments/README.md, E018. TINY=1 runs the same chain on the tiny corpus
# (the plumbing only; seconds of audio, 20 steps).
# Results go under $RUNS (default runs/release-gpu), $RUNS-<stage>, $RUNS-data, $RUNS-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RUNS=${RUNS:-runs/release-gpu}
C=experiments/E018_gpu_takes/config.py
RUN=${RUN:-$("$PY" -c "from experiments.E018_gpu_takes import config; print(config.SHIPPED_RUN)")}
read -r STEPS TAKES < <("$PY" -c "from experiments.E018_gpu_takes import config
takes, steps = config.RUNS['$RUN']; print(steps, *takes)")
PREFIX=""
if [ "${TINY:-0}" = 1 ]; then PREFIX="tiny"; TAKES="tiny"; STEPS=20; fi
stage1="$C${PREFIX:+:$PREFIX}"
# The test split is stage 1's own corpus's (validation and test); the takes give train splits.
"$PY" -m jaxnotes.main --config="$stage1" --action=process-test
data=""
for TAKE in $TAKES; do
  "$PY" -m jaxnotes.main --config="$stage1" --config.data.corpus_size="$TAKE" \
    --action=process-train
  [ -f "$RUNS-data/$TAKE/index.json" ] ||
    "$PY" -m experiments.E017_gpu_scratch.arrays --out "$RUNS-data/$TAKE" \
      --corpus-size "$TAKE" ${PREFIX:+--variant $PREFIX}
  data="${data:+$data,}$RUNS-data/$TAKE"
done
# Cut short (killed, machine lost), the stage goes on from its last snapshot (one a minute).
resume=""
[ -d "$RUNS-gpu/snapshots-0" ] && resume="--resume $RUNS-gpu"
[ -f "$RUNS-gpu/weights-0.npz" ] ||
  "$PY" -m experiments.E017_gpu_scratch.device_train --data "$data" --out "$RUNS-gpu" \
    --steps "$STEPS" ${PREFIX:+--variant $PREFIX --scan 10} $resume
[ -d "$RUNS/checkpoints" ] ||
  "$PY" -m jaxnotes.train.adopt --weights "$RUNS-gpu/weights-0.npz" --workdir "$RUNS" \
    --config="$stage1" --step $STEPS
"$PY" -m jaxnotes.main --config="$stage1" --workdir="$RUNS" --action=test
BEFORE="$RUNS"
STAGES=$("$PY" -c "from experiments.E018_gpu_takes import config; print(*config.SHIPPED)")
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
