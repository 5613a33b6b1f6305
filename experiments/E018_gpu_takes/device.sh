#!/usr/bin/env bash
# E018 on a lent GPU machine (experiments/README.md, E018, has the calls), run from the
# project root there. Each take's export (arrays.py) is two parts of ~51 MiB and a call
# carries at most 64 MiB, so the parts travel one a call to the same warm machine, each
# copied into /tmp/e018data/<take>/ (a warm machine keeps /tmp, and the XLA cache there):
#   bash experiments/E018_gpu_takes/device.sh smoke      # carries .whl, every take's index.json
#                                                        # and labels.npz, and one part
#   bash experiments/E018_gpu_takes/device.sh copy       # carries one more part
#   bash experiments/E018_gpu_takes/device.sh train N    # carries the last part: N steps
# TAKES (comma-separated corpus sizes) defaults to config.TAKES; TAKES=next is config.NEXT_RUN's.
# A run longer than one call: STOP_AFTER=S stops `train` after S seconds with a snapshot
# (device_train --stop-after); bring its $OUT back into the tree (e.g. runs/E018_gpu/part1)
# and carry it in the next call with RESUME=<that folder>: it is copied to /tmp/e018resume
# (so later calls need not carry it again) and `train` goes on from it (--resume).
set -euo pipefail
what=${1:?smoke, copy or train}
for f in .e018data/*/*; do
  [ -f "$f" ] || continue
  take=$(basename "$(dirname "$f")")
  mkdir -p "/tmp/e018data/$take"
  cp -n "$f" "/tmp/e018data/$take/"  # -n: a decoded part cached there stays newer
done
ls -la /tmp/e018data/*
if [ -n "${RESUME:-}" ] && [ -d "$RESUME" ]; then
  rm -rf /tmp/e018resume && cp -r "$RESUME" /tmp/e018resume
fi
[ "$what" = copy ] && exit 0
source experiments/E017_gpu_scratch/device_env.sh
takes() { python3 -c "from experiments.E018_gpu_takes import config; print(','.join(config.$1))"; }
TAKES=${TAKES:-$(takes TAKES)}
[ "$TAKES" = next ] && TAKES=$(takes 'NEXT_RUN[0]')
data=$(echo "$TAKES" | tr , '\n' | sed 's|^|/tmp/e018data/|' | paste -sd,)
train() { python3 -m experiments.E017_gpu_scratch.device_train --data "$data" "$@"; }
case "$what" in
  # The same shapes as the full run (missing parts are silence, not drawn), so the step
  # compiled here is read from the cache by `train`; its log gives the speed to size N by.
  smoke) train --out "$OUT/smoke" --steps 3000 --allow-missing --no-snapshots ;;
  train) train --out "$OUT" --steps "${2:?steps}" --stop-after "${STOP_AFTER:-0}" \
           ${RESUME:+--resume /tmp/e018resume} ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
