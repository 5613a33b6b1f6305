"""Test set-up: 4 fake CPU devices (before jax is imported) and parsed absl flags."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import sys  # noqa: E402

from absl import flags  # noqa: E402

# grain and other absl users read flags; tests run outside absl.app.run.
if not flags.FLAGS.is_parsed():
    flags.FLAGS(sys.argv[:1], known_only=True)
