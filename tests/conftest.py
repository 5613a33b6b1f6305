"""Test set-up: 4 fake CPU devices (before jax is imported) and parsed absl flags."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import sys  # noqa: E402

from absl import flags  # noqa: E402

# grain and other absl users read flags; tests run outside absl.app.run.
if not flags.FLAGS.is_parsed():
    flags.FLAGS(sys.argv[:1], known_only=True)

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def fast_compiles(tmp_path_factory):
    """Fewer XLA passes and a compilation cache shared by the module's tests.

    Compiling, not running, is what takes time for tiny models on a CPU. Modules opt in
    with `pytestmark = pytest.mark.usefixtures("fast_compiles")`; settings are restored.
    """
    from jax.experimental.compilation_cache import compilation_cache

    settings = {
        "jax_compilation_cache_dir": str(tmp_path_factory.getbasetemp() / "jax_cache"),
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
        "jax_disable_most_optimizations": True,
    }
    previous = {name: jax.config.values[name] for name in settings}
    for name, value in settings.items():
        jax.config.update(name, value)
    yield
    for name, value in previous.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
