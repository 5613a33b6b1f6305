#!/usr/bin/env bash
# E017 on a lent GPU machine (see ../../shared/DEVICE.md and experiments/README.md), run from the
# project root there, with .whl (ml-collections, mir-eval, decorator) and the parts of
# .e017data carried. A call can carry ~56 MB, the export is ~110 MB: so two calls on the
# same warm machine, each copying what it carries into /tmp/e017data (a warm machine keeps
# /tmp; so is the XLA cache, and the second call's step compiles from it).
#   bash experiments/E017_gpu_scratch/device.sh stage           # part 0: copy, then a smoke run
#   bash experiments/E017_gpu_scratch/device.sh train SECONDS   # part 1: copy, then the runs
set -euo pipefail
what=${1:?stage or train}
mkdir -p /tmp/e017data
cp -n .e017data/* /tmp/e017data/  # -n: a decoded part cached there stays newer
ls -la /tmp/e017data
source experiments/E017_gpu_scratch/device_env.sh
train() {
  python3 -m experiments.E017_gpu_scratch.device_train --data /tmp/e017data --allow-missing "$@"
}
case "$what" in
  stage) train --out "$OUT/smoke" --seconds 8 ;;
  train) train --out "$OUT" --seconds "${2:?seconds}" --runs 0.25,0.75 ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
