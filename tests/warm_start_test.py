"""Warm start (config.init_from): a run's first parameters from a trained workdir.

The source is a real tiny train-val run; the warm-started run is real training on the same
synthetic folder. Checks: the parameters arrive exactly, only the first start uses them,
and mismatched sources are refused with the field named.
"""

import json
import os

import jax
import musicnet_fixtures as fx
import numpy as np
import pytest
from flax import nnx

from jaxnotes import files
from jaxnotes.data import spec
from jaxnotes.train import checkpoint, loop, optim, parallel, steps, warm_start

pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return fx.epoch_checkpoint_config(tmp_path_factory, num_epochs=2)


@pytest.fixture(scope="module")
def source(config, tmp_path_factory):
    """A trained workdir with a dev model."""
    workdir = str(tmp_path_factory.mktemp("source"))
    loop.train_and_evaluate(config, workdir, validate=True)
    return workdir


def _params(model) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def _fresh_params(config):
    meta = spec.load_meta(config)
    tx, _ = optim.make_optimizer(config, 2)
    mesh = parallel.make_mesh()
    _, _, init_fn = steps.create_train_state(config, meta, tx, mesh)
    return init_fn().params


def test_initial_params_are_the_source_dev_model(config, source):
    """Every parameter equals the source's dev model's, bit for bit, on the mesh's sharding."""
    fresh = _fresh_params(config)
    warm = warm_start.initial_params(source, config, fresh)
    model, _, _, _ = checkpoint.load_model(source, dev=True)
    expected = _params(model)
    got = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(warm)}
    assert set(got) == set(expected)
    changed = 0
    for name, leaf in got.items():
        np.testing.assert_array_equal(np.asarray(leaf), expected[name], err_msg=name)
        assert leaf.sharding == _leaf(fresh, name).sharding, name
        changed += not np.array_equal(np.asarray(leaf), np.asarray(_leaf(fresh, name)))
    assert changed > 0, "the source's trained parameters must differ from a random init"


def _leaf(tree, name):
    return next(
        v for p, v in jax.tree_util.tree_leaves_with_path(tree) if jax.tree_util.keystr(p) == name
    )


def _first_loss(workdir: str) -> float:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return next(r["train/loss"] for r in rows if "train/loss" in r)


def test_warm_started_run_trains_from_the_source(config, source, tmp_path):
    """A warm-started run begins at step 0 from the source's weights: its first logged loss
    is below a cold run's, and its resume restores its own checkpoint, not the source."""
    warm_dir, cold_dir = str(tmp_path / "warm"), str(tmp_path / "cold")
    first = config.copy_and_resolve_references()
    first.max_steps = 1
    first.optim.warmup_steps = 0  # a 1-step run (the schedule ends at max_steps)
    first.log_every_steps = 1
    cold = loop.train_and_evaluate(first, cold_dir, validate=False)
    first.init_from = source
    warm = loop.train_and_evaluate(first, warm_dir, validate=False)
    assert warm["step"] == cold["step"] == 1
    loss = {d: _first_loss(d) for d in (warm_dir, cold_dir)}
    assert loss[warm_dir] < loss[cold_dir], loss
    # Resuming must not warm-start again: the source is gone and the run continues.
    moved = source + "-moved"
    os.rename(source, moved)
    try:
        more = first.copy_and_resolve_references()
        more.max_steps = 2
        assert loop.train_and_evaluate(more, warm_dir, validate=False)["step"] == 2
    finally:
        os.rename(moved, source)
    assert files.read_config(warm_dir).init_from == source


def test_mismatched_sources_are_refused(config, source, tmp_path):
    """Another CQT, another model shape, or no such workdir: one error naming init_from."""
    fresh = _fresh_params(config)
    other_cqt = config.copy_and_resolve_references()
    other_cqt.cqt.hop_length = config.cqt.hop_length * 2
    with pytest.raises(ValueError, match=r"config.init_from=.*cqt.hop_length"):
        warm_start.initial_params(source, other_cqt, fresh)
    wider = config.copy_and_resolve_references()
    wider.model.c = config.model.c + 1
    with pytest.raises(ValueError, match=r"config.init_from=.*has shape"):
        warm_start.initial_params(source, wider, _fresh_params(wider))
    with pytest.raises(FileNotFoundError, match=r"config.init_from=.*no such workdir"):
        warm_start.initial_params(str(tmp_path / "nowhere"), config, fresh)


def test_pretrained_source_is_the_shipped_weights():
    """init_from='pretrained' starts from jaxnotes/pretrained_model/weights.npz exactly."""
    from jaxnotes import pretrained

    if not pretrained.available():
        pytest.skip("this checkout ships no pretrained model")
    _, meta, shipped, _ = pretrained.load()
    tx, _ = optim.make_optimizer(shipped, 1000)
    _, _, init_fn = steps.create_train_state(shipped, meta, tx, parallel.make_mesh())
    warm = warm_start.initial_params(warm_start.PRETRAINED, shipped, init_fn().params)
    with np.load(os.path.join(pretrained.MODEL_DIR, pretrained.WEIGHTS_FILE)) as stored:
        arrays = {name: stored[name] for name in stored.files}
    leaves = jax.tree_util.tree_leaves_with_path(warm)
    assert len(leaves) == len(arrays)
    for path, leaf in leaves:
        name = pretrained.path_name(path)
        np.testing.assert_array_equal(np.asarray(leaf), arrays[name], err_msg=name)
