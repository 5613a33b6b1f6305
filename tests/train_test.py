"""The train loop end to end on a synthetic MusicNet folder: resume, preemption, NaN, loading.

Every run uses the `:tiny` transformer on 4 fake CPU devices. Compiles dominate the time,
so the module shares one persistent compilation cache: each distinct step compiles once.
"""

import json
import os
import shutil
import signal

import grain
import jax
import musicnet_fixtures as fx
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from jaxnotes import files
from jaxnotes.data import pipeline, spec
from jaxnotes.train import checkpoint, loop, optim, parallel, steps

pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The tiny config on a 4-recording synthetic folder: 3 epochs of 2 steps."""
    return fx.epoch_checkpoint_config(tmp_path_factory, num_epochs=3, log_every_steps=1)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """An uninterrupted train-val run of 6 steps: (workdir, result)."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    return workdir, loop.train_and_evaluate(config, workdir, validate=True)


def _stored_state(workdir: str, sub: str = files.CHECKPOINTS):
    """(step, {path: numpy array}) of a workdir's latest checkpoint, read raw."""
    mngr = ocp.CheckpointManager(os.path.join(workdir, sub))
    step = mngr.latest_step()
    state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    flat = jax.tree_util.tree_flatten_with_path(state["state"])[0]
    mngr.close()

    def raw(v):  # PRNG keys as their uint32 data, so they compare like other arrays
        is_key = jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key)
        return jax.random.key_data(v) if is_key else v

    return step, {jax.tree_util.keystr(p): np.asarray(raw(v)) for p, v in flat}


def _next_batch(config, workdir: str):
    """The batch a resumed run would read next from the workdir's latest checkpoint."""
    mngr = ocp.CheckpointManager(os.path.join(workdir, files.CHECKPOINTS))
    it = pipeline.make_train_iter(config)
    data = grain.checkpoint.CheckpointRestore(it)
    mngr.restore(mngr.latest_step(), args=ocp.args.Composite(data=data))
    mngr.close()
    return next(it)


def _logged(workdir: str, key: str) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r[key] for r in rows if key in r}


def _random_batch(meta, rows: int = 4, frames: int = 43, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "cqt": rng.normal(size=(rows, frames, meta.n_bins)).astype(np.float32),
        "frames": (rng.random((rows, frames, meta.n_pitches)) < 0.05).astype(np.float32),
        "onsets": (rng.random((rows, frames, meta.n_pitches)) < 0.01).astype(np.float32),
        "mask": np.ones((rows, frames), np.float32),
    }


def test_loss_and_counts_match_hand_computation():
    """Masking, the BCE sum over pitches and heads, or TP/FP/FN at p >= 0.5 going wrong."""
    logits = np.array([[[2.0, -1.0], [0.0, -3.0], [5.0, 5.0]]], np.float32)  # B=1, T=3, P=2
    frames = np.array([[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]], np.float32)
    batch = {"frames": frames, "onsets": frames, "mask": np.array([[1.0, 1.0, 0.0]], np.float32)}
    counts = jax.device_get(steps.loss_and_counts({"frame": logits, "onset": logits}, batch))
    bce = optax.sigmoid_binary_cross_entropy(logits[:, :2], frames[:, :2])
    # XLA's log1p/exp kernels (by CPU or GPU) against optax's eager ones and numpy's sum: a
    # few float32 ulp (~1e-7 relative each); a wrong mask or weight is off by >= 10%.
    np.testing.assert_allclose(counts["loss_sum"], 2 * np.sum(bce), rtol=1e-5)
    # Frame 0: [on, off] vs [1, 1] -> TP 1, FN 1; frame 1: logit 0 is p = 0.5 -> on -> FP 1.
    assert (counts["frame_tp"], counts["frame_fp"], counts["frame_fn"]) == (1, 1, 1)
    assert counts["frame_count"] == 2 and counts["exact_frames"] == 0


def test_onset_positive_weight_scales_only_onset_positives():
    """config.onset_positive_weight must weigh on-onset cells only, not frames or off cells."""
    logits = np.array([[[2.0, -1.0], [0.0, -3.0]]], np.float32)  # B=1, T=2, P=2
    frames = np.array([[[1.0, 1.0], [0.0, 0.0]]], np.float32)
    onsets = np.array([[[1.0, 0.0], [0.0, 0.0]]], np.float32)
    batch = {"frames": frames, "onsets": onsets, "mask": np.ones((1, 2), np.float32)}
    outputs = {"frame": logits, "onset": logits}
    counts = jax.device_get(steps.loss_and_counts(outputs, batch, onset_positive_weight=4.0))
    frame_bce = optax.sigmoid_binary_cross_entropy(logits, frames)
    onset_bce = optax.sigmoid_binary_cross_entropy(logits, onsets) * (1 + 3 * onsets)
    expected = np.sum(frame_bce) + np.sum(onset_bce)
    np.testing.assert_allclose(counts["loss_sum"], expected, rtol=1e-5)  # as above
    with pytest.raises(ValueError, match="config.onset_positive_weight"):
        steps.compile_steps(None, None, None, onset_positive_weight=0.0)


def test_train_step_lowers_the_loss_and_traces_once(config, monkeypatch):
    """A broken gradient, optimizer wiring or retracing step shows up on a fixed batch."""
    traces = []
    real_train_step = steps.train_step

    def counting_train_step(*args, **kwargs):
        traces.append(1)  # runs only while tracing
        return real_train_step(*args, **kwargs)

    monkeypatch.setattr(steps, "train_step", counting_train_step)
    meta = spec.load_meta(config)
    tx, _ = optim.make_optimizer(config, 2)
    mesh = parallel.make_mesh()
    graphdef, _, init_fn = steps.create_train_state(config, meta, tx, mesh)
    train_fn, eval_fn = steps.compile_steps(graphdef, tx, mesh)
    batch = steps.to_device(_random_batch(meta), mesh)
    state = init_fn()
    before = float(eval_fn(state, batch)["loss_sum"])
    for _ in range(5):
        state, metrics = train_fn(state, batch, jax.random.key(0))
    after = float(eval_fn(state, batch)["loss_sum"])
    assert int(state.step) == 5 and np.isfinite(float(metrics["grad_norm"]))
    assert after < before, (before, after)
    assert len(traces) == 1, "train_step was traced more than once"


def test_train_val_run_writes_the_workdir(config, reference):
    """The run files, metrics keys, checkpoints and dev model that other actions rely on."""
    workdir, result = reference
    assert result["step"] == 6 and result["stopped"] == "done"
    for name in ("config.json", "meta.json", "version.json", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
    version = json.load(open(os.path.join(workdir, "version.json")))
    assert version["versions"]["jax"] == jax.__version__
    keys = set().union(*(json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))))
    for key in ("train/loss", "train/learning_rate", "train/grad_norm", "perf/frames_per_sec",
                "perf/data_wait_fraction", "val/loss", "val/frame_f1"):  # fmt: skip
        assert key in keys, key
    assert sorted(_logged(workdir, "val/loss")) == [2, 4, 6], "validate once per epoch"
    assert _stored_state(workdir)[0] == 6
    assert _stored_state(workdir, files.DEV_CHECKPOINTS)[0] == result["best_step"]


def test_resume_after_crash_and_sigterm_is_bit_identical(config, reference, tmp_path, capsys):
    """Resume must restore params, optimizer, data position and loop state exactly.

    A crash at step 3 loses it (the last save is step 2); SIGTERM at step 5 saves step 5 and
    returns; a third run finishes. Parameters, the next batch and every logged loss must equal
    the uninterrupted run's bit for bit.
    """
    workdir = str(tmp_path / "run")

    class Crash(Exception):
        pass

    def crash_at_3(step):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        loop.train_and_evaluate(config, workdir, validate=True, hooks=[crash_at_3])
    assert _stored_state(workdir)[0] == 2

    def sigterm_at_5(step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    result = loop.train_and_evaluate(config, workdir, validate=True, hooks=[sigterm_at_5])
    assert result["stopped"] == "SIGTERM" and result["step"] == 5
    assert _stored_state(workdir)[0] == 5
    assert "rerun the same command to resume" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "handler left installed"

    result = loop.train_and_evaluate(config, workdir, validate=True)
    assert result["step"] == 6
    step, resumed = _stored_state(workdir)
    ref_step, uninterrupted = _stored_state(reference[0])
    assert step == ref_step == 6 and resumed.keys() == uninterrupted.keys()
    for path, value in uninterrupted.items():
        # Exact on purpose, also on a GPU (tests/conftest.py sets deterministic ops there).
        np.testing.assert_array_equal(resumed[path], value, err_msg=path)
    for key, value in _next_batch(config, reference[0]).items():
        np.testing.assert_array_equal(_next_batch(config, workdir)[key], value, err_msg=key)
    for key in ("train/loss", "val/loss"):
        assert _logged(workdir, key) == _logged(reference[0], key), key
    # Nothing left to do: a rerun returns at once.
    assert loop.train_and_evaluate(config, workdir, validate=True)["step"] == 6


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    config, tmp_path, monkeypatch
):
    """A NaN batch must stop training with the step in the message and never be saved."""
    real_to_device, calls = steps.to_device, []

    def nan_at_step_3(batch, mesh):
        calls.append(1)
        if len(calls) == 3:
            batch = {**batch, "cqt": np.full_like(batch["cqt"], np.nan)}
        return real_to_device(batch, mesh)

    monkeypatch.setattr(steps, "to_device", nan_at_step_3)
    workdir = str(tmp_path / "nan")
    with pytest.raises(
        loop.TrainingDivergedError, match=r"step 3\b.*last good checkpoint is step 2"
    ):
        loop.train_and_evaluate(config, workdir, validate=False)
    assert sorted(os.listdir(os.path.join(workdir, files.CHECKPOINTS))) == ["2"]


def test_early_stopping_stops_and_stays_stopped(config, tmp_path, monkeypatch):
    """Patience 0 must stop at the first epoch without improvement, also after a restart."""
    constant = {"loss_sum": 10.0, "frame_count": 5.0, "exact_frames": 1.0}
    constant.update({f"{h}_{k}": 1.0 for h in ("frame", "onset") for k in ("tp", "fp", "fn")})
    monkeypatch.setattr(steps, "evaluate", lambda *args: dict(constant))
    stopping = config.copy_and_resolve_references()
    stopping.early_stopping_patience = 0
    workdir = str(tmp_path / "early")
    result = loop.train_and_evaluate(stopping, workdir, validate=True)
    assert (result["stopped"], result["step"], result["best_step"]) == ("early_stopping", 4, 2)
    assert _stored_state(workdir, files.DEV_CHECKPOINTS)[0] == 2
    again = loop.train_and_evaluate(stopping, workdir, validate=True)
    assert (again["stopped"], again["step"]) == ("early_stopping", 4)


def test_load_model_round_trip(config, reference):
    """Inference must get the trained weights back from the workdir alone, in eval mode."""
    workdir, result = reference
    model, meta, loaded_config, step = checkpoint.load_model(workdir)
    assert step == 6 and meta == spec.load_meta(config)
    assert loaded_config.model.to_dict() == config.model.to_dict()
    _, stored = _stored_state(workdir)
    params = nnx.state(model, nnx.Param).to_pure_dict()
    kernel = params["embed"]["kernel"]
    # Exact: loading is a copy; and one compiled function repeats itself in eval mode.
    np.testing.assert_array_equal(kernel, stored["['params']['embed']['kernel']['value']"])
    cqt = _random_batch(meta, rows=1)["cqt"]
    forward = nnx.jit(lambda m, x: m(x))
    out1, out2 = forward(model, cqt), forward(model, cqt)  # eval mode: no dropout
    assert out1["frame"].shape == (1, 43, meta.n_pitches)
    np.testing.assert_array_equal(out1["frame"], out2["frame"])
    assert checkpoint.load_model(workdir, dev=True)[3] == result["best_step"]


def test_mismatched_checkpoint_and_missing_models_raise_clearly(config, reference, tmp_path):
    """A changed model config must name the field; a missing checkpoint must say so."""
    workdir = str(tmp_path / "copy")
    shutil.copytree(reference[0], workdir)
    changed = config.copy_and_resolve_references()
    changed.model.embed_dim = 24
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"model\.embed_dim: 16 -> 24"):
        loop.train_and_evaluate(changed, workdir, validate=False)
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    saved["model"]["embed_dim"] = 24
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(saved, f)
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"model\.embed_dim"):
        checkpoint.load_model(workdir)

    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(files.NotAWorkdirError, match="config.json"):
        checkpoint.load_model(str(bare))
    for name in ("config.json", "meta.json"):
        shutil.copy(os.path.join(reference[0], name), bare / name)
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="no checkpoint"):
        checkpoint.load_model(str(bare))
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="no dev model"):
        checkpoint.load_model(str(bare), dev=True)
