#!/usr/bin/env bash
# The device check: jaxnotes on a lent GPU machine, in one call of about 6 minutes.
#
# That machine has Python 3.12 with JAX (CUDA), flax, optax and orbax, but no internet and
# not the rest of jaxnotes' dependencies. Once, on the development machine, from the project
# root:   bash ../shared/device/fetch-wheels.sh      (writes .whl/, about 40 MB, git-ignored)
# then run this script there with `.whl` carried, e.g. through the device tool:
#   run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=540)
# It prints one table (benchmarks/device_check.py) and leaves device_check.{md,log} in $OUT
# (or ./device_check_out when $OUT is unset).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_check_out}"
rm -rf /tmp/site  # a warm machine keeps /tmp between calls
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
# The machine's own flax (0.12.10): the pinned 0.12.8 fails to import on its JAX.
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 JAX_PLATFORMS=cuda
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
python3 benchmarks/device_check.py --out "$OUT" --budget-s "${BUDGET_S:-450}"
