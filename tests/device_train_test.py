"""Experiment E017's accelerator trainer and `train.adopt`, on a real tiny train split.

The split's records are built from a synthetic MusicNet folder; the export is read back
against them; batches drawn on the device are checked against the records' own windows
(exact labels, the CQT within a quantisation level), with and without each augmentation;
the schedule against `optim.make_schedule`; a short real run's weights become a workdir
whose checkpoint holds them bit for bit and that the test action scores.
"""

import argparse
import json
import os

import jax
import jax.numpy as jnp
import musicnet_fixtures as fx
import numpy as np
import pytest
from flax import nnx

from experiments.E017_gpu_scratch import arrays, device_train, snapshots
from jaxnotes import files, models, pretrained
from jaxnotes.data import features, records, spec
from jaxnotes.train import adopt, checkpoint, optim

pytestmark = pytest.mark.usefixtures("fast_compiles")
LEVEL = (arrays.HIGH - arrays.LOW) / (arrays.LEVELS - 1)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    config = fx.epoch_checkpoint_config(tmp_path_factory, num_epochs=2)
    config.unlock()
    config.augment.eq_db = 8.0
    return config


@pytest.fixture(scope="module")
def exported(config, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("e017data"))
    arrays.export(config, out, parts=2)
    return out


def _record_frames(config):
    """{global row of the export: (cqt_F float32, frames_128, onsets_128)} of every chunk."""
    source, _ = records.open_split(config, "train")
    rows, start = {}, 0
    for i in range(len(source)):
        r = source[i]
        for t in range(int(r["num_frames"])):
            rows[start + t] = (np.asarray(r["cqt"][t], np.float32), r["frames"][t], r["onsets"][t])
        start += int(r["num_frames"])
    return rows


def test_export_round_trip(config, exported, tmp_path):
    data = arrays.load(exported)
    rows = _record_frames(config)
    assert len(rows) == len(data["cqt"]) == int(data["lengths"].sum())
    for row, (cqt_F, frames_128, onsets_128) in rows.items():
        back_F = arrays.dequantise(data["cqt"][row])
        np.testing.assert_allclose(back_F, cqt_F, atol=LEVEL / 2 + 1e-6)
        assert (back_F[cqt_F <= arrays.LOW] == arrays.LOW).all()  # silence stays exact
        np.testing.assert_array_equal(data["frames"][row], frames_128)
        np.testing.assert_array_equal(data["onsets"][row], onsets_128)
    # A missing part is an error naming it, or (allowed) chunks left out.
    os.rename(os.path.join(exported, "cqt-1.bz2"), tmp_path / "moved")
    try:
        with pytest.raises(FileNotFoundError, match="cqt-1.bz2"):
            arrays.load(exported)
        partial = arrays.load(exported, require_all=False)
        assert 0 < partial["present"].sum() < len(partial["present"])
        assert not partial["cqt"][partial["starts"][~partial["present"]][0]].any()
    finally:
        os.rename(tmp_path / "moved", os.path.join(exported, "cqt-1.bz2"))


def test_codecs_and_several_exports(config, exported, tmp_path):
    """E017's xz export decodes to the same levels as the bz2 one; `load_many` puts several
    exports (takes) end to end, parts missing left out, and refuses different bin counts."""
    xz = str(tmp_path / "xz")
    arrays.export(config, xz, parts=3, codec="xz")
    assert sorted(f for f in os.listdir(xz) if f.startswith("cqt")) == [
        "cqt-0.xz",
        "cqt-1.xz",
        "cqt-2.xz",
    ]
    one, other = arrays.load(exported), arrays.load(xz)
    np.testing.assert_array_equal(one["cqt"], other["cqt"])
    with pytest.raises(ValueError, match="codec 'zip'"):
        arrays.export(config, str(tmp_path / "zip"), codec="zip")

    os.remove(os.path.join(xz, "cqt-2.xz"))
    both = arrays.load_many([exported, xz], require_all=False)
    n, c = len(one["cqt"]), len(one["lengths"])
    np.testing.assert_array_equal(both["cqt"][:n], one["cqt"])
    np.testing.assert_array_equal(both["frames"][n:], one["frames"])
    np.testing.assert_array_equal(both["lengths"], np.tile(one["lengths"], 2))
    np.testing.assert_array_equal(both["starts"][c:], one["starts"] + n)
    present = arrays.load(xz, require_all=False)["present"]
    np.testing.assert_array_equal(both["present"], np.concatenate([one["present"], present]))
    assert not both["cqt"][both["starts"][c + np.flatnonzero(~present)[0]]].any()
    assert both["index"]["corpus_sizes"] == [config.data.corpus_size] * (2 * c)
    assert both["index"]["piece_ids"] == 2 * one["index"]["piece_ids"]
    with pytest.raises(FileNotFoundError, match="cqt-2.xz"):
        arrays.load_many([exported, xz])

    index_path = os.path.join(xz, arrays.INDEX_FILE)
    with open(index_path) as f:
        index = json.load(f)
    index["n_bins"] += 1
    with open(index_path, "w") as f:
        json.dump(index, f)
    with pytest.raises(ValueError, match="different numbers of CQT bins"):
        arrays.load_many([exported, xz], require_all=False)


def _silence(config):
    return features.silence_value(features.CqtConfig.from_config(config.cqt))


def _draw(config, exported, key=0):
    meta = spec.load_meta(config)
    data = arrays.load(exported)
    sample, device_arrays = device_train.make_sampler(data, config, meta)
    batch = jax.jit(sample)(device_arrays, jax.random.key(key))
    return {k: np.asarray(v) for k, v in batch.items()}, data


def _without_augmentation(config):
    plain = config.copy_and_resolve_references()
    plain.augment.pitch_shift_semitones = 0
    plain.augment.gain_db = 0.0
    plain.augment.eq_db = 0.0
    return plain


def test_batches_are_record_windows(config, exported):
    """No augmentation: each row is a window of one chunk, labels exact, CQT within a level
    (the dither), silence where the window runs past the chunk (masked)."""
    plain = _without_augmentation(config)
    batch, data = _draw(plain, exported)
    rows = _record_frames(plain)
    lo = plain.data.min_pitch
    p = spec.load_meta(plain).n_pitches
    shape = (plain.data.batch_size, spec.window_frames(plain), spec.load_meta(plain).n_bins)
    assert batch["cqt"].shape == shape
    for b in range(len(batch["cqt"])):
        chunk = np.searchsorted(data["starts"], batch["rows"][b, 0], side="right") - 1
        first = batch["rows"][b, 0] - data["starts"][chunk]  # the window's offset in its chunk
        for t, row in enumerate(batch["rows"][b]):
            if first + t >= data["lengths"][chunk]:
                assert batch["mask"][b, t] == 0
                assert (batch["cqt"][b, t] == _silence(plain)).all()
                continue
            assert batch["mask"][b, t] == 1
            cqt_F, frames_128, onsets_128 = rows[int(row)]
            np.testing.assert_allclose(batch["cqt"][b, t], cqt_F, atol=LEVEL + 1e-5)
            np.testing.assert_array_equal(batch["frames"][b, t], frames_128[lo : lo + p])
            np.testing.assert_array_equal(batch["onsets"][b, t], onsets_128[lo : lo + p])


def test_pitch_shift_moves_bins_and_labels_together(config, exported):
    shifted = _without_augmentation(config)
    shifted.augment.pitch_shift_semitones = 2
    batch, _ = _draw(shifted, exported, key=3)
    bps = spec.load_meta(config).bins_per_semitone
    assert set(batch["shift"].tolist()) - {0}, "the draw must shift some rows"
    silence = _silence(config)
    rows = _record_frames(config)
    lo, p = config.data.min_pitch, spec.load_meta(config).n_pitches
    for b, k in enumerate(batch["shift"]):
        t = 0  # the first frame is always inside the chunk
        cqt_F, frames_128, _ = rows[int(batch["rows"][b, t])]
        want_F = np.full_like(cqt_F, silence)
        kb = int(k) * bps
        if kb >= 0:
            want_F[kb:] = cqt_F[: len(cqt_F) - kb]
        else:
            want_F[:kb] = cqt_F[-kb:]
        np.testing.assert_allclose(batch["cqt"][b, t], want_F, atol=LEVEL + 1e-5)
        want_P = frames_128[lo - int(k) : lo - int(k) + p]
        np.testing.assert_array_equal(batch["frames"][b, t], want_P)


def test_gain_and_equaliser_move_loud_bins_within_bounds(config, exported):
    plain_batch, _ = _draw(_without_augmentation(config), exported, key=5)
    gained = _without_augmentation(config)
    gained.augment.gain_db, gained.augment.eq_db = 6.0, 8.0
    batch, _ = _draw(gained, exported, key=5)
    np.testing.assert_array_equal(batch["rows"], plain_batch["rows"])
    silence = _silence(config)
    quiet = plain_batch["cqt"] <= silence
    assert (batch["cqt"][quiet] == silence).all(), "silence stays silence"
    bound = (6.0 + 8.0) / features.DB_SCALE + 1e-5
    moved = batch["cqt"] - plain_batch["cqt"]
    assert np.abs(moved[~quiet]).max() <= bound
    assert np.abs(moved[~quiet]).max() > 0.1, "the gains must move something"
    assert (batch["cqt"] >= silence).all()


def test_schedule_matches_the_loop(config):
    """The device trainer's schedule, its length traced, is the loop's at the same length."""
    total = 40
    c = config.copy_and_resolve_references()
    c.optim.warmup_steps, c.max_steps = 5, total
    expected = optim.make_schedule(c, total)
    lr = jax.jit(lambda step, total_: optim.warmup_cosine(step, float(c.optim.lr), 5, total_))
    for step in (0, 3, 5, 17, 39, 40):
        np.testing.assert_allclose(lr(step, jnp.float32(total)), expected(step), rtol=1e-6)


def test_short_run_adopted_as_a_workdir(config, exported, tmp_path):
    """A real run of the device trainer: the loss falls; its weights become a workdir whose
    checkpoint `load_model` (the test action's loader) reads back bit for bit; adopting
    into a workdir with checkpoints, or weights that miss a parameter, is refused."""
    meta = spec.load_meta(config)
    c = config.copy_and_resolve_references()
    c.optim.warmup_steps, c.optim.lr = 45, 3e-3
    data = arrays.load(exported)
    sample, device_arrays = device_train.make_sampler(data, c, meta)
    trainer = device_train.make_trainer(c, meta, sample, scan=10)
    log = {}
    # No time given: the warmup's calls run (the first compiles, the rest are timed), then
    # the schedule ends there.
    state = device_train.train(c, trainer, device_arrays, 0.0, 10, 0, log)
    assert log["steps"] == 50 and len(log["losses"]) == 5
    assert np.mean(log["losses"][-2:]) < 0.9 * log["losses"][0], log["losses"]
    fixed = {}  # a fixed length instead of a time: whole calls, at least the steps asked
    device_train.train(c, trainer, device_arrays, 0.0, 10, 1, fixed, steps=62)
    assert fixed["steps"] == 70 and len(fixed["losses"]) == 7
    model = nnx.merge(trainer[0], state.params, state.rest)
    weights = str(tmp_path / "weights.npz")
    pretrained.save_weights(model, weights)
    workdir = str(tmp_path / "adopted")
    adopt.adopt(weights, c, workdir, 50)
    loaded, _, loaded_config, step = checkpoint.load_model(workdir)
    assert step == 50 and loaded_config.max_steps == 50
    want = pretrained.param_arrays(model)
    for name, value in pretrained.param_arrays(loaded).items():
        np.testing.assert_array_equal(value, want[name], err_msg=name)
    assert os.path.exists(os.path.join(workdir, files.CONFIG_FILE))
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        adopt.adopt(weights, c, workdir, 50)
    bad = dict(np.load(weights))
    bad.pop(next(iter(bad)))
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="bad.npz"):
        adopt.adopt(str(tmp_path / "bad.npz"), c, str(tmp_path / "other"), 50)


def test_a_run_cut_short_resumes_to_the_same_weights(config, exported, tmp_path):
    """A run killed right after a snapshot (a device call out of time), or stopped at a
    deadline, goes on from it and ends with the uninterrupted run's parameters and
    optimizer state, bit for bit; a snapshot of another run (another seed) is refused,
    naming what differs."""
    meta = spec.load_meta(config)
    c = config.copy_and_resolve_references()
    c.optim.warmup_steps = 5
    sample, device_arrays = device_train.make_sampler(arrays.load(exported), c, meta)
    trainer = device_train.make_trainer(c, meta, sample, scan=10)
    straight = device_train.train(c, trainer, device_arrays, 0.0, 10, 0, {}, steps=40)

    class Killed(snapshots.Snapshots):
        def save(self, step, carry, progress):
            super().save(step, carry, progress)
            if step == 20:
                raise KeyboardInterrupt

    where = str(tmp_path / "snapshots-0")
    killed = Killed(where, 0.0, c, meta, {"seed": 0})
    with pytest.raises(KeyboardInterrupt):
        device_train.train(c, trainer, device_arrays, 0.0, 10, 0, {}, steps=40, snapshots=killed)
    log = {}
    again = snapshots.Snapshots(where, 0.0, c, meta, {"seed": 0})
    resumed = device_train.train(
        c, trainer, device_arrays, 0.0, 10, 0, log, steps=40, snapshots=again
    )
    assert log["resumed_at"] == 20 and log["steps"] == 40 and len(log["losses"]) == 4
    assert int(resumed.step) == int(straight.step) == 40
    for got, want in zip(
        jax.tree.leaves((resumed.params, resumed.opt_state)),
        jax.tree.leaves((straight.params, straight.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert again.mngr.all_steps() == [40]  # one kept: the newest
    # Stopped on purpose (--stop-after): a snapshot after the call that passed the
    # deadline, None for the weights; resumed, the same end again.
    stopped_at = str(tmp_path / "stopped")
    first = snapshots.Snapshots(stopped_at, 60.0, c, meta, {"seed": 0})
    assert device_train.train(c, trainer, device_arrays, 0.0, 10, 0, {}, 40, first, 0.0) is None
    assert first.mngr.all_steps() == [10]
    second = snapshots.Snapshots(stopped_at, 60.0, c, meta, {"seed": 0})
    again = device_train.train(c, trainer, device_arrays, 0.0, 10, 0, {}, 40, second)
    for got, want in zip(
        jax.tree.leaves(again.params), jax.tree.leaves(straight.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    other = snapshots.Snapshots(where, 0.0, c, meta, {"seed": 1})
    with pytest.raises(ValueError, match="snapshot's seed is 0, this run's 1"):
        device_train.train(c, trainer, device_arrays, 0.0, 10, 1, {}, steps=40, snapshots=other)


def test_snapshots_need_resume_to_be_reused(config, tmp_path):
    """An --out that holds a run's snapshots is refused without --resume; with --resume
    from another folder they are copied into the new --out first."""
    meta = spec.load_meta(config)
    earlier = tmp_path / "earlier"
    (earlier / "snapshots-0" / "20").mkdir(parents=True)
    args = argparse.Namespace(data="a/take1,b/take2/", scan=10, seconds=0.0, snapshot_every=5.0)
    args.out, args.resume = str(earlier), None
    with pytest.raises(FileExistsError, match="--resume"):
        snapshots.for_run(args, 0, config, meta, None, 100)
    args.out, args.resume = str(tmp_path / "next"), str(earlier)
    made = snapshots.for_run(args, 0, config, meta, None, 100)
    assert os.path.isdir(tmp_path / "next" / "snapshots-0" / "20")
    assert made.identity["data"] == ["take1", "take2"]
    assert made.identity["steps_asked"] == 100 and made.every_s == 5.0


def test_weight_averages_of_workdirs(config, tmp_path):
    """E018's average.py: the shares-weighted mean of workdirs' parameters, as an .npz that
    adopt turns into a workdir; sources of other shapes, or bad shares, are refused."""
    from experiments.E018_gpu_takes import average

    meta = spec.load_meta(config)
    workdirs, params = [], []
    for seed in (1, 2):
        model = models.from_config(config, meta, nnx.Rngs(seed))
        weights = str(tmp_path / f"w{seed}.npz")
        pretrained.save_weights(model, weights)
        workdirs.append(str(tmp_path / f"run{seed}"))
        adopt.adopt(weights, config, workdirs[-1], 10)
        params.append(pretrained.param_arrays(model))
    got = average.average(workdirs, [1.0, 3.0])
    for name, first in params[0].items():
        assert not np.array_equal(first, params[1][name]) or first.std() == 0, name
        np.testing.assert_allclose(got[name], 0.25 * first + 0.75 * params[1][name], atol=1e-7)
    out = str(tmp_path / "soup.npz")
    average.main([*workdirs, "--out", out])
    adopt.adopt(out, config, str(tmp_path / "soup"), 10)
    soup, _, _, _ = checkpoint.load_model(str(tmp_path / "soup"))
    for name, value in pretrained.param_arrays(soup).items():
        np.testing.assert_allclose(value, 0.5 * (params[0][name] + params[1][name]), atol=1e-7)
    with pytest.raises(ValueError, match="other parameters or shapes"):
        average.average([workdirs[0], "pretrained"])
    with pytest.raises(ValueError, match="one positive each"):
        average.average(workdirs, [1.0, -1.0])
