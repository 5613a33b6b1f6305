# Sourced by the device.sh scripts of E017 and E018 on a lent GPU machine, from the project
# root there: installs the carried wheels (.whl: ml-collections, mir-eval, decorator) into
# /tmp/site, sets the environment (CUDA or fail, the XLA cache in /tmp, which a warm machine
# keeps) and prints the GPU and the versions.
rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site JAX_PLATFORMS=cuda PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
