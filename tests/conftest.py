"""Test set-up: 4 fake CPU devices (before jax is imported), parsed absl flags, and the
GPU settings and float tolerances that let the suite pass on a GPU too (issue 13).

The suite runs on the CPU unless JAX_PLATFORMS says otherwise (e.g. JAX_PLATFORMS=cuda, or
JAX_PLATFORMS= to let jax choose). Where a GPU may be used, the suite runs with the settings
README's GPU notes give for a bit-identical resume (train_test checks it): deterministic GPU
ops (XLA's GPU reductions and scatters otherwise vary from run to run) and float32 matmuls
at full precision (not TF32).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
MAY_USE_GPU = os.environ.setdefault("JAX_PLATFORMS", "cpu").strip().lower() != "cpu"
# The transcription entry points' disk cache of compiled code (inference.compile_cache) stays
# off, so tests never fill a user's ~/.cache; compile_cache_test turns it on in a tmp folder.
os.environ.setdefault("JAXNOTES_COMPILE_CACHE", "off")
if MAY_USE_GPU and "--xla_gpu_deterministic_ops" not in os.environ["XLA_FLAGS"]:
    # Unknown XLA flags are fatal, but this one is known to every jaxlib build (a CPU-only
    # jaxlib 0.10.2 accepts it and ignores it), so a GPU-less machine still runs the suite.
    os.environ["XLA_FLAGS"] += " --xla_gpu_deterministic_ops=true"

import sys  # noqa: E402

from absl import flags  # noqa: E402

# grain and other absl users read flags; tests run outside absl.app.run.
if not flags.FLAGS.is_parsed():
    flags.FLAGS(sys.argv[:1], known_only=True)

import jax  # noqa: E402
import pytest  # noqa: E402

if MAY_USE_GPU and "JAX_DEFAULT_MATMUL_PRECISION" not in os.environ:
    # GPU float32 matmuls may otherwise run as TF32. An explicit JAX_DEFAULT_MATMUL_PRECISION
    # (e.g. tensorfloat32, to test the equivalences at the speed setting) is kept.
    jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(scope="session")
def float_tol():
    """assert_allclose tolerances for one model output computed two ways in float32.

    For the equivalences streaming relies on: cropped input == whole input, blocked ==
    dense attention, windows (offline or streamed) == one pass, on logits (|x| <= ~4) and
    probabilities. They are equal in exact arithmetic, not bit for bit: XLA picks kernels
    and summation orders by shape, blocking and machine. What the tolerance must still
    see: a crop one frame short of the receptive field moves logits by 1.5e-3 (future
    side) to 1.6e-2 (past side) (measured on the CPU, models_test's model).
    CPU: float32 round-off, ~1e-7 relative per operation, grown through a few layers;
    measured <= 2.5e-6 absolute (AMD EPYC, XLA at AVX2 and at SSE4.2): 2e-5 leaves 8x.
    GPU at full float32 precision (the suite's setting, above): other kernels (cuBLAS or
    Triton tiles, reduction orders, exp/tanh approximations), same order of round-off:
    10x the CPU tolerance, still 7x below the one-frame error.
    GPU at TF32 (JAX_DEFAULT_MATMUL_PRECISION=tensorfloat32, or jax's default precision,
    which lets XLA use TF32): 10-bit mantissas, ~1e-3 relative per matmul, a few matmuls
    deep, so ~1e-2. That can no longer tell a one-frame crop error from round-off, which
    is why the suite runs at 'highest'.
    The GPU values are estimates, not measured (no GPU was lent for issue 13).
    """
    if jax.default_backend() == "cpu":
        return dict(rtol=1e-5, atol=2e-5)
    if jax.config.jax_default_matmul_precision in ("highest", "float32", "F32_F32_F32"):
        return dict(rtol=2e-4, atol=2e-4)
    return dict(rtol=1e-2, atol=1e-2)


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
