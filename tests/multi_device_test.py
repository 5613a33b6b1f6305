"""Data parallelism on 4 fake CPU devices equals the same computation on one device."""

import jax
import numpy as np
import pytest

from configs import transformer
from jaxnotes.data import Meta
from jaxnotes.train import optim, parallel, steps

# The tiny config's inputs (24 bins/octave x 8 octaves), so compiles match train_test's.
META = Meta(
    n_bins=192, n_pitches=88, min_pitch=21, frames_per_second=22050 / 512, bins_per_semitone=2
)


pytestmark = [
    pytest.mark.usefixtures("fast_compiles"),
    # On a GPU run (JAX_PLATFORMS=cuda) jax.devices() is the GPUs, one on most machines.
    pytest.mark.skipif(
        jax.default_backend() != "cpu", reason="needs tests/conftest.py's 4 fake CPU devices"
    ),
]


def _batch(rows: int, seed: int = 0, frames: int = 43):
    rng = np.random.default_rng(seed)
    return {
        "cqt": rng.normal(size=(rows, frames, META.n_bins)).astype(np.float32),
        "frames": (rng.random((rows, frames, META.n_pitches)) < 0.05).astype(np.float32),
        "onsets": (rng.random((rows, frames, META.n_pitches)) < 0.01).astype(np.float32),
        "mask": (rng.random((rows, frames)) < 0.9).astype(np.float32),
        "piece_id": np.arange(rows, dtype=np.int32),  # not a model input: must be dropped
    }


def _run(mesh, num_steps: int = 2):
    """Initial state, `num_steps` train steps and validation counts of a padded batch."""
    config = transformer.get_config("tiny")
    config.num_epochs = 3
    tx, _ = optim.make_optimizer(config, 2)
    graphdef, _, init_fn = steps.create_train_state(config, META, tx, mesh)
    train_fn, eval_fn = steps.compile_steps(graphdef, tx, mesh)
    state = init_fn()
    initial = jax.device_get(state.params)
    metrics = []
    for step in range(num_steps):
        state, m = train_fn(state, steps.to_device(_batch(4, seed=step), mesh), jax.random.key(0))
        metrics.append(jax.device_get(m))
    # 3 rows: padded to 4 on the 4-device mesh; padding must not count.
    counts = steps.evaluate(eval_fn, state, [_batch(3, seed=9), _batch(3, seed=10)], mesh)
    return initial, jax.device_get(state.params), metrics, counts


def test_host_batch_is_split_over_the_data_axis():
    """Each device must hold its own rows of the batch, not a copy of all of them."""
    mesh = parallel.make_mesh()
    assert mesh.devices.size == 4, "tests/conftest.py should give 4 fake CPU devices"
    global_batch = parallel.host_batch_to_global({"x": np.arange(8 * 3).reshape(8, 3)}, mesh)
    shards = sorted(global_batch["x"].addressable_shards, key=lambda s: s.index[0].start)
    assert [s.data.shape for s in shards] == [(2, 3)] * 4
    np.testing.assert_array_equal(shards[1].data, np.arange(6, 12).reshape(2, 3))
    with pytest.raises(ValueError, match="multiple of 4"):
        parallel.host_batch_to_global({"x": np.zeros((6, 3))}, mesh)
    with pytest.raises(ValueError, match="config.data.batch_size=6"):
        parallel.check_batch_size(6, mesh, "data.batch_size")


def test_sharded_step_matches_one_device():
    """XLA's cross-device reductions must give the 1-device loss, gradients and counts."""
    one = _run(parallel.make_mesh(jax.devices()[:1]))
    four = _run(parallel.make_mesh())
    # Same initialisation, bit for bit: one PRNG stream, however the params are sharded.
    jax.tree.map(np.testing.assert_array_equal, one[0], four[0])
    # The rest sums across devices in another order: float32 round-off (~1e-7 relative per
    # add) grown through 2 Adam steps, so tolerances; counts of 0/1 cells stay exact.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), one[1], four[1]
    )
    for m1, m4 in zip(one[2], four[2], strict=True):
        np.testing.assert_allclose(m1["loss_sum"], m4["loss_sum"], rtol=1e-5)
        np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-4)
        assert m1["frame_count"] == m4["frame_count"]
    assert one[3].keys() == four[3].keys()
    for key, value in one[3].items():
        np.testing.assert_allclose(four[3][key], value, rtol=1e-5, err_msg=key)
    assert one[3]["frame_count"] == np.sum(_batch(3, seed=9)["mask"] + _batch(3, seed=10)["mask"])
