"""Tests of the grain pipelines (jaxnotes/data/pipeline.py) on a small synthetic dataset."""

import musicnet_fixtures as fx
import numpy as np
import pytest

from jaxnotes.data import BATCH_KEYS, features, pipeline, records, spec
from jaxnotes.data import augment as augment_lib
from jaxnotes.data import chunks as chunks_lib
from jaxnotes.data import labels as labels_lib

CHUNK = 32  # small chunks: 5 per 3 s piece, so shards and shuffles have something to do


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 train (one held out for validation) + 1 test recordings; windows of 22 frames."""
    root = tmp_path_factory.mktemp("musicnet")
    fx.make_musicnet(root, notes_per_piece=10)
    config = _config(root, tmp_path_factory.mktemp("cache"))
    records.ensure_dataset(config, ("train", "test"))
    return config


def _config(root, cache, **overrides):
    return _override(
        fx.tiny_config(root, cache, chunk_frames=CHUNK, batch_seconds=0.5), **overrides
    )


def _override(config, **overrides):
    """`config` with 'section.field' overrides set (in place)."""
    for key, value in overrides.items():
        section, field = key.split(".")
        setattr(config[section], field, value)
    return config


def _like(config, **overrides):
    return _config(config.data.musicnet_dir, config.data.cache_dir, **overrides)


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _assert_same(batches_a, batches_b):
    for a, b in zip(batches_a, batches_b, strict=True):
        for key in BATCH_KEYS:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _piece_rolls(config, split):
    """Whole-piece 128-pitch (frames, onsets) rolls from the label CSVs, by piece_id."""
    cqt = features.CqtConfig.from_config(config.cqt)
    rolls = {}
    for pid, piece in records.piece_info(config, split).items():
        folder = "test" if split == "test" else "train"
        notes = labels_lib.read_label_csv(
            fx.labels_path(config.data.musicnet_dir, folder, piece.name), 44100
        )
        rolls[pid] = labels_lib.notes_to_rolls(notes, piece.num_frames, cqt.frames_per_second)
    return rolls


def test_batches_follow_the_contract(dataset):
    """Keys, shapes and dtypes must be exactly the data contract's, sized by load_meta."""
    meta = spec.load_meta(dataset)
    window = spec.window_frames(dataset)
    assert window == round(0.5 * meta.frames_per_second) == 22
    batch = next(pipeline.make_train_iter(dataset))
    assert set(batch) == set(BATCH_KEYS)
    b = dataset.data.batch_size
    expected = {
        "cqt": ((b, window, meta.n_bins), np.float32),
        "frames": ((b, window, meta.n_pitches), np.float32),
        "onsets": ((b, window, meta.n_pitches), np.float32),
        "mask": ((b, window), np.float32),
        "piece_id": ((b,), np.int32),
        "start_frame": ((b,), np.int32),
    }
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape and batch[key].dtype == dtype, key
    eval_batch = next(pipeline.make_eval_iter(dataset, "validation"))
    assert eval_batch["cqt"].shape == (dataset.data.eval_batch_size, CHUNK, meta.n_bins)
    assert {k: v.dtype for k, v in eval_batch.items()} == {k: v[1] for k, v in expected.items()}


@pytest.mark.parametrize("windows_per_chunk", [1, 2])
def test_windows_hold_the_right_frames_and_mask(dataset, windows_per_chunk):
    """Each window's labels and mask must be the piece's own at [start_frame, start_frame + T)."""
    # Without augmentation (on by default): a pitch shift moves the labels on purpose.
    no_augment = {"augment.pitch_shift_semitones": 0, "augment.gain_db": 0.0}
    config = _like(dataset, **{"data.windows_per_chunk": windows_per_chunk, **no_augment})
    rolls = _piece_rolls(config, "train")
    num_frames = {p: i.num_frames for p, i in records.piece_info(config, "train").items()}
    d = config.data
    seen_short = False
    for batch in _take(pipeline.make_train_iter(config), 15):
        assert batch["cqt"].shape[0] == d.batch_size
        chunk_ids = batch["piece_id"] * 1000 + batch["start_frame"] // CHUNK
        # Consecutive windows_per_chunk windows come from one chunk read.
        assert (
            chunk_ids.reshape(-1, windows_per_chunk) == chunk_ids[::windows_per_chunk, None]
        ).all()
        for i, (pid, start) in enumerate(zip(batch["piece_id"], batch["start_frame"], strict=True)):
            frames_Tx128, onsets_Tx128 = rolls[pid]
            end = min(start + batch["mask"].shape[1], num_frames[pid])
            valid = end - start
            assert (start // CHUNK) == (start + valid - 1) // CHUNK, "a window crossed chunks"
            np.testing.assert_array_equal(batch["mask"][i, :valid], 1)
            np.testing.assert_array_equal(batch["mask"][i, valid:], 0)
            seen_short |= valid < batch["mask"].shape[1]
            for key, roll in (("frames", frames_Tx128), ("onsets", onsets_Tx128)):
                folded = labels_lib.fold_pitches(roll[start:end], d.min_pitch, d.max_pitch, False)
                np.testing.assert_array_equal(batch[key][i, :valid], folded)
                assert not batch[key][i, valid:].any()
    assert seen_short, "the 2-frame last chunks should have been drawn in 15 batches"


def test_same_seed_same_batches(dataset):
    """Two iterators with one seed must give identical batches; another seed must differ."""
    first = _take(pipeline.make_train_iter(dataset), 4)
    _assert_same(first, _take(pipeline.make_train_iter(dataset), 4))
    other = _take(pipeline.make_train_iter(_like(dataset, **{"data.shuffle_seed": 1})), 4)
    assert any(
        (a["start_frame"] != b["start_frame"]).any() for a, b in zip(first, other, strict=True)
    )


def test_resume_from_state_gives_the_next_batches(dataset, tmp_path):
    """Restoring get_state() (directly or through Orbax) must continue exactly where it stopped."""
    import grain
    import orbax.checkpoint as ocp

    config = _like(dataset, **{"augment.pitch_shift_semitones": 2, "augment.gain_db": 6.0})
    it = pipeline.make_train_iter(config)
    _take(it, 3)
    state = it.get_state()
    manager = ocp.CheckpointManager(str(tmp_path / "ckpt"))
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = _take(it, 3)
    resumed = pipeline.make_train_iter(config)
    resumed.set_state(state)
    _assert_same(expected, _take(resumed, 3))
    restored = pipeline.make_train_iter(config)
    manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    _assert_same(expected, _take(restored, 3))
    manager.close()


def test_process_shards_are_disjoint(dataset):
    """Two processes must draw disjoint chunk sets that together cover the split."""
    chunks = {}
    for index in (0, 1):
        it = pipeline.make_train_iter(dataset, process_index=index, process_count=2)
        batches = _take(it, 12)
        assert batches[0]["cqt"].shape[0] == dataset.data.batch_size // 2
        chunks[index] = {
            (int(p), int(s) // CHUNK)
            for b in batches
            for p, s in zip(b["piece_id"], b["start_frame"], strict=True)
        }
    all_chunks = {
        (pid, c)
        for pid, info in records.piece_info(dataset, "train").items()
        for c in range(-(-info.num_frames // CHUNK))
    }
    assert not chunks[0] & chunks[1]
    assert chunks[0] | chunks[1] == all_chunks


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_counts_every_frame_once(dataset, process_count):
    """Eval batches must cover each real frame exactly once (mask) with correct labels."""
    rolls = _piece_rolls(dataset, "train")
    info = records.piece_info(dataset, "train")
    counts = {pid: np.zeros(i.num_frames, int) for pid, i in info.items()}
    num_batches = set()
    for index in range(process_count):
        batches = list(
            pipeline.make_eval_iter(
                dataset, "train", process_index=index, process_count=process_count
            )
        )
        num_batches.add(len(batches))
        for batch in batches:
            assert batch["piece_id"].shape[0] == dataset.data.eval_batch_size // process_count
            for i, pid in enumerate(batch["piece_id"]):
                if pid < 0:  # padding
                    assert not batch["mask"][i].any() and not batch["frames"][i].any()
                    continue
                start = int(batch["start_frame"][i])
                valid = int(batch["mask"][i].sum())
                counts[pid][start : start + valid] += 1
                expected = labels_lib.fold_pitches(rolls[pid][0], 21, 108, False)
                np.testing.assert_array_equal(
                    batch["frames"][i, :valid], expected[start : start + valid]
                )
    assert len(num_batches) == 1, "every process must run the same number of eval batches"
    for pid, count in counts.items():
        np.testing.assert_array_equal(count, 1, err_msg=f"piece {pid}")


def test_only_note_names_folds_to_12_classes(dataset):
    """With only_note_names the outputs must be 12 pitch classes, C = 0, over all octaves."""
    config = _like(dataset, **{"data.only_note_names": True})
    assert spec.load_meta(config).n_pitches == 12
    rolls = _piece_rolls(config, "validation")
    batch = next(pipeline.make_eval_iter(config, "validation"))
    assert batch["frames"].shape[-1] == 12
    for i, pid in enumerate(batch["piece_id"]):
        if pid >= 0:
            start, valid = int(batch["start_frame"][i]), int(batch["mask"][i].sum())
            frames_Tx128 = rolls[pid][0][start : start + valid]
            classes = np.zeros((valid, 12))
            for p in range(128):
                classes[:, p % 12] = np.maximum(classes[:, p % 12], frames_Tx128[:, p])
            np.testing.assert_array_equal(batch["frames"][i, :valid], classes)


def test_pitch_shift_moves_labels_with_cqt_energy(dataset):
    """After pitch shift, the strongest CQT bin of single-note frames must be the label's pitch."""
    config = _like(
        dataset,
        **{"augment.pitch_shift_semitones": 5, "data.min_pitch": 0, "data.max_pitch": 127},
    )
    cqt = features.CqtConfig.from_config(config.cqt)
    # Below ~MIDI 30 the CQT filters last ~0.3 s, so any onset nearby smears energy there.
    lowest = int(cqt.bin_of_pitch(30))
    rolls = _piece_rolls(config, "train")
    checked, shifts = 0, set()
    for batch in _take(pipeline.make_train_iter(config), 12):
        for b in range(batch["frames"].shape[0]):
            frames_TxP, mask_T = batch["frames"][b], batch["mask"][b]
            start, valid = int(batch["start_frame"][b]), int(mask_T.sum())
            original = rolls[batch["piece_id"][b]][0][start : start + valid]
            if original.any():  # which shift turns the stored labels into these?
                (shift,) = [
                    k
                    for k in range(-5, 6)
                    if (np.roll(original, k, -1) == frames_TxP[:valid]).all()
                ]
                shifts.add(shift)
            for t in range(4, len(mask_T) - 4):
                # Frames of one note with no other note within 4 frames (CQT filter smear).
                near = frames_TxP[t - 4 : t + 5]
                if not (mask_T[t - 4 : t + 5].all() and (near.sum(-1) == 1).all()):
                    continue
                pitch = int(np.argmax(frames_TxP[t]))
                if (np.argmax(near, axis=-1) != pitch).any():
                    continue
                peak = lowest + np.argmax(batch["cqt"][b, t, lowest:])
                assert abs(peak - cqt.bin_of_pitch(pitch)) <= 1, (pitch, peak)
                checked += 1
    assert checked > 50, checked
    assert len(shifts) >= 4, shifts


def test_augment_shift_jitter_and_gain():
    """Shift moves CQT by semitones*bps and labels by semitones; jitter moves CQT only; gain is
    affine in dB with silent bins kept silent."""
    silence = (features.DB_FLOOR - features.DB_CENTRE) / features.DB_SCALE
    cqt_TxF = np.full((2, 20), silence, np.float32)
    cqt_TxF[:, 8] = 1.0
    frames_Tx128 = np.zeros((2, 128), np.uint8)
    frames_Tx128[:, 64] = 1
    example = {"cqt": cqt_TxF, "frames": frames_Tx128, "onsets": frames_Tx128}
    out = augment_lib.augment(
        example, shift=2, jitter=1, gain_db=0.0, bins_per_semitone=2, silence=silence
    )
    assert np.argmax(out["cqt"][0]) == 8 + 2 * 2 + 1 and np.argmax(out["frames"][0]) == 66
    assert (out["cqt"][:, :5] == silence).all(), "bins moved in from below must be silent"
    out = augment_lib.augment(
        example, shift=-3, jitter=0, gain_db=0.0, bins_per_semitone=2, silence=silence
    )
    assert np.argmax(out["cqt"][0]) == 2 and np.argmax(out["onsets"][0]) == 61
    out = augment_lib.augment(
        example, shift=0, jitter=0, gain_db=6.0, bins_per_semitone=2, silence=silence
    )
    np.testing.assert_allclose(out["cqt"][:, 8], 1.0 + 6.0 / features.DB_SCALE, rtol=1e-6)
    assert (np.delete(out["cqt"], 8, axis=1) == silence).all()
    out = augment_lib.augment(
        example, shift=0, jitter=0, gain_db=-200.0, bins_per_semitone=2, silence=silence
    )
    assert (out["cqt"] == silence).all()
    np.testing.assert_array_equal(out["frames"], frames_Tx128)


def test_eq_curve_is_piecewise_linear_through_its_points():
    """The equaliser passes through its control points, spread evenly over the bins, and is
    a straight line between them."""
    eq_BxC = np.array([[0.0, 10.0, -10.0], [3.0, 3.0, 3.0]])
    curve_BxF = augment_lib.eq_curve(eq_BxC, 9)
    np.testing.assert_allclose(curve_BxF[0], [0, 2.5, 5, 7.5, 10, 5, 0, -5, -10])
    np.testing.assert_allclose(curve_BxF[1], 3.0)


def test_augment_eq_colours_loud_bins_and_keeps_silence():
    """The equaliser adds its curve (in dB) to every sounding bin of every frame, leaves
    silent bins silent and labels alone; a flat curve is a gain."""
    silence = (features.DB_FLOOR - features.DB_CENTRE) / features.DB_SCALE
    cqt_TxF = np.full((3, 9), 0.5, np.float32)
    cqt_TxF[:, 4] = silence
    frames_Tx128 = np.zeros((3, 128), np.uint8)
    frames_Tx128[:, 60] = 1
    example = {"cqt": cqt_TxF, "frames": frames_Tx128, "onsets": frames_Tx128}
    eq_C = np.array([-12.0, 0.0, 12.0])
    out = augment_lib.augment(example, 0, 0, 0.0, 1, silence, eq_db_C=eq_C)
    expected_F = 0.5 + np.array([-12, -9, -6, -3, 0, 3, 6, 9, 12]) / features.DB_SCALE
    np.testing.assert_allclose(
        np.delete(out["cqt"], 4, 1), np.delete(np.tile(expected_F, (3, 1)), 4, 1), rtol=1e-6
    )
    assert (out["cqt"][:, 4] == silence).all()
    np.testing.assert_array_equal(out["frames"], frames_Tx128)
    flat = augment_lib.augment(example, 0, 0, 0.0, 1, silence, eq_db_C=np.full(3, 4.0))
    gain = augment_lib.augment(example, 0, 0, 4.0, 1, silence)
    np.testing.assert_array_equal(flat["cqt"], gain["cqt"])


def test_eq_draws_are_seeded_and_leave_other_recipes_alone(dataset):
    """With augment.eq_db on, batches differ from the same recipe without it, repeat for
    the same seed and carry one curve per window; with it off the draws are the old ones."""
    base = {"augment.pitch_shift_semitones": 1, "augment.gain_db": 3.0}
    plain = _take(pipeline.make_train_iter(_like(dataset, **base)), 2)
    eq_config = _like(dataset, **base, **{"augment.eq_db": 9.0})
    coloured = _take(pipeline.make_train_iter(eq_config), 2)
    _assert_same(coloured, _take(pipeline.make_train_iter(eq_config), 2))
    for a, b in zip(plain, coloured, strict=True):
        for key in ("frames", "onsets", "start_frame"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert not np.array_equal(a["cqt"], b["cqt"])
        # Gains are drawn alike, so only the equaliser (at most eq_db) tells them apart.
        moved = np.abs(a["cqt"] - b["cqt"]).max()
        assert 0 < moved <= 9.0 / features.DB_SCALE + 1e-5


def _moved(x_TxK, k, fill):
    """x moved up by k along its last axis (down for k < 0), filled with `fill`."""
    out = np.full_like(x_TxK, fill)
    if k > 0:
        out[..., k:] = x_TxK[..., :-k]
    elif k < 0:
        out[..., :k] = x_TxK[..., -k:]
    else:
        out[:] = x_TxK
    return out


def _augment_one(example, shift, jitter, gain_db, bins_per_semitone, silence):
    """The per-window augmentation the batched one replaced: an independent reference."""
    out = dict(example)
    if shift or jitter:
        out["cqt"] = _moved(example["cqt"], shift * bins_per_semitone + jitter, silence)
    if shift:
        out["frames"] = _moved(example["frames"], shift, 0)
        out["onsets"] = _moved(example["onsets"], shift, 0)
    if gain_db:
        cqt_TxF = out["cqt"]
        shifted = np.maximum(cqt_TxF + np.float32(gain_db / features.DB_SCALE), silence)
        out["cqt"] = np.where(cqt_TxF <= silence, np.float32(silence), shifted)
    return out


def test_augment_batch_is_augment_of_each_row():
    """The batched augmentation must equal the per-window one bit for bit, row by row,
    for the 128-pitch labels and for a sub-range of them that the largest shift reaches."""
    rng = np.random.default_rng(0)
    silence = float(np.float32(-2.0))
    b, t, f = 12, 7, 40
    cqt_BxTxF = rng.normal(size=(b, t, f)).astype(np.float16)
    cqt_BxTxF[rng.random((b, t, f)) < 0.3] = silence
    frames_BxTx128 = (rng.random((b, t, 128)) < 0.2).astype(np.uint8)
    shift_B = rng.integers(-3, 4, size=b)
    jitter_B = rng.integers(-2, 3, size=b)
    gain_B = rng.uniform(-6, 6, size=b)
    gain_B[:3] = 0.0  # rows without gain are left alone
    batch = {"cqt": cqt_BxTxF, "frames": frames_BxTx128, "onsets": frames_BxTx128[:, ::-1]}
    out = augment_lib.augment_batch(batch, shift_B, jitter_B, gain_B, 2, silence)
    lo, hi = 21 - 3, 108 + 3  # the columns the pipeline keeps for shifts up to 3
    sub = {key: value[..., lo : hi + 1] for key, value in batch.items() if key != "cqt"}
    out_sub = augment_lib.augment_batch(
        {"cqt": cqt_BxTxF, **sub}, shift_B, jitter_B, gain_B, 2, silence
    )
    assert out["cqt"].dtype == np.float32 and out["frames"].dtype == np.uint8
    for i in range(b):
        example = {key: value[i] for key, value in batch.items()}
        example["cqt"] = example["cqt"].astype(np.float32)
        expected = _augment_one(example, shift_B[i], jitter_B[i], gain_B[i], 2, silence)
        for key in ("cqt", "frames", "onsets"):
            np.testing.assert_array_equal(out[key][i], expected[key], err_msg=f"{key} row {i}")
        for key in ("frames", "onsets"):
            np.testing.assert_array_equal(
                out_sub[key][i][:, 21 - lo : 109 - lo],
                expected[key][:, 21:109],
                err_msg=f"{key} row {i}, pitches {lo}..{hi}",
            )


def test_chunk_source_reads_what_tfds_decodes(dataset):
    """ChunkSource's views of the stored bytes must equal TFDS's decoding of every record."""
    for split in ("train", "validation"):
        source, _ = records.open_split(dataset, split)
        chunks = chunks_lib.ChunkSource(source)
        assert chunks.specs is not None and len(chunks) == len(source)
        for i in range(len(source)):
            expected, got = source[i], chunks[i]
            for key in ("cqt", "frames", "onsets", "piece_id", "start_frame", "num_frames"):
                assert np.asarray(got[key]).dtype == np.asarray(expected[key]).dtype, key
                np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


@pytest.mark.parametrize("only_note_names", [False, True])
def test_shifted_labels_are_the_stored_labels_moved(dataset, only_note_names):
    """With the default pitch shift, each window's labels must be its stored 128-pitch
    labels moved by one shift in [-2, 2], then folded to the model's outputs."""
    config = _like(
        dataset, **{"data.only_note_names": only_note_names, "data.windows_per_chunk": 2}
    )
    d = config.data
    rolls = _piece_rolls(config, "train")
    shifts = set()
    for batch in _take(pipeline.make_train_iter(config), 6):
        for i, pid in enumerate(batch["piece_id"]):
            start, valid = int(batch["start_frame"][i]), int(batch["mask"][i].sum())
            stored = {"frames": rolls[pid][0], "onsets": rolls[pid][1]}
            candidates = []
            for k in range(-2, 3):
                moved = {
                    key: _moved(roll[start : start + valid], k, 0) for key, roll in stored.items()
                }
                if all(
                    np.array_equal(
                        batch[key][i, :valid],
                        labels_lib.fold_pitches(
                            moved[key], d.min_pitch, d.max_pitch, only_note_names
                        ),
                    )
                    for key in stored
                ):
                    candidates.append(k)
            assert candidates, f"window {i}: labels are no shift of the stored ones"
            if len(candidates) == 1:
                shifts.add(candidates[0])
    assert len(shifts) >= 3, shifts


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"data.batch_size": 6}, "config.data.batch_size=6"),
        ({"data.batch_seconds": 0.0}, "config.data.batch_seconds=0.0"),
        ({"data.batch_seconds": 5.0}, "config.data.batch_seconds=5.0"),
        ({"data.min_pitch": 90, "data.max_pitch": 80}, "config.data.min_pitch=90"),
        ({"data.eval_batch_size": 0}, "config.data.eval_batch_size=0"),
        ({"augment.pitch_shift_semitones": -1}, "config.augment.pitch_shift_semitones=-1"),
    ],
)
def test_bad_config_values_name_the_field(tmp_path, overrides, field):
    """Unusable config values must fail before any reading, naming the field and value."""
    config = _config(tmp_path / "nowhere", tmp_path, **overrides)
    with pytest.raises(ValueError, match=field):
        pipeline.make_train_iter(config, process_index=0, process_count=4)


def test_steps_per_epoch_and_meta(dataset, tmp_path):
    """An epoch is the split's frames over window x batch; load_meta needs no dataset."""
    total = sum(i.num_frames for i in records.piece_info(dataset, "train").values())
    expected = total // (spec.window_frames(dataset) * dataset.data.batch_size)
    assert pipeline.steps_per_epoch(dataset) == max(1, expected)
    meta = spec.load_meta(_config(tmp_path / "nowhere", tmp_path / "none"))
    assert (meta.n_bins, meta.n_pitches, meta.min_pitch, meta.bins_per_semitone) == (192, 88, 21, 2)


def test_piece_info_holds_the_labelled_notes(dataset):
    """Piece info must carry each recording's notes (seconds, pitch, program) for note metrics."""
    for piece in records.piece_info(dataset, "test").values():
        csv = fx.labels_path(dataset.data.musicnet_dir, "test", piece.name)
        assert piece.notes == sorted(labels_lib.read_label_csv(csv, 44100))
        assert piece.seconds == pytest.approx(3.0) and piece.composer == "Synth"


def test_worker_processes_give_the_same_batches(dataset):
    """num_workers > 0 (grain processes; transforms must pickle) must not change the batches."""
    expected = _take(pipeline.make_train_iter(dataset), 4)
    it = pipeline.make_train_iter(_like(dataset, **{"data.num_workers": 1}))
    _assert_same(expected, _take(it, 4))


@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory):
    """The `dataset` layout with two composers in its metadata (for train_exclude)."""
    root = tmp_path_factory.mktemp("musicnet_composers")
    names = fx.make_musicnet(root, notes_per_piece=10)
    fx.write_metadata(
        root, {n: {"composer": "Alpha" if n in ("2000", "2001") else "Beta"} for n in names}
    )
    config = _config(root, tmp_path_factory.mktemp("cache"))
    records.ensure_dataset(config, ("train",))
    return config


def test_train_exclude_leaves_matching_recordings_out(labelled_dataset):
    """Chunks of recordings whose metadata matches a rule are never read, every other train
    chunk still is, the epoch shrinks to the kept frames, and validation is untouched."""
    from jaxnotes.data import selection

    config = labelled_dataset
    _, meta = records.open_split(config, "train")
    excluded = {int(p["piece_id"]) for p in meta["pieces"] if p["name"] in ("2000", "2001")}
    kept_names = {p["name"] for p in meta["pieces"]} - {"2000", "2001"}
    assert excluded and kept_names, "the split must hold both composers"
    # kept_chunks agrees with the piece_id stored in every record.
    source = chunks_lib.ChunkSource(records.open_split(config, "train")[0])
    stored = np.array([int(source[i]["piece_id"]) for i in range(len(source))])
    kept = selection.kept_chunks(meta, excluded, CHUNK)
    np.testing.assert_array_equal(kept, np.flatnonzero(~np.isin(stored, list(excluded))))

    filtered = _like(config, **{"data.train_exclude": ("composer=alpha",)})
    seen = set()
    for batch in _take(pipeline.make_train_iter(filtered), 12):
        seen |= set(batch["piece_id"].tolist())
    assert seen and not seen & excluded
    assert seen == {int(p["piece_id"]) for p in meta["pieces"] if p["name"] in kept_names}
    frames = sum(p["num_frames"] for p in meta["pieces"] if p["name"] in kept_names)
    window = spec.window_frames(config) * config.data.batch_size
    assert pipeline.steps_per_epoch(filtered) == max(1, frames // window)
    assert pipeline.steps_per_epoch(filtered, "validation") == pipeline.steps_per_epoch(
        config, "validation"
    )


@pytest.mark.parametrize(
    "rules, message",
    [
        (("composer",), r"train_exclude.*'column=text'"),
        (("colour=red",), r"train_exclude: column 'colour' is not in musicnet_metadata.csv"),
        (("composer=Alpha", "composer=Beta"), r"train_exclude=.*leaves no train recording"),
    ],
)
def test_train_exclude_errors_name_the_field(labelled_dataset, rules, message):
    config = _like(labelled_dataset, **{"data.train_exclude": rules})
    with pytest.raises(ValueError, match=message):
        pipeline.make_train_iter(config)


def test_concat_reads_its_sources_in_order():
    from jaxnotes.data import selection

    both = selection.Concat([["a0", "a1"], [], ["b0", "b1", "b2"]])
    assert len(both) == 5
    assert [both[i] for i in range(5)] == ["a0", "a1", "b0", "b1", "b2"]
    with pytest.raises(IndexError, match="chunk 5 of 5"):
        both[5]


@pytest.fixture(scope="module")
def two_takes(tmp_path_factory):
    """The tiny corpus with `tiny_long` (its chorales to 10 s) as an extra train size,
    both rendered and their records built by one process-train."""
    from configs import transformer

    config = transformer.get_config("tiny")
    config.data.cache_dir = str(tmp_path_factory.mktemp("cache"))
    config.data.corpus_size = "tiny"
    config.data.extra_train_sizes = ("tiny_long",)
    records.ensure_dataset(config, ("train",))
    return config


def test_extra_train_sizes_are_read_with_the_main_train_split(two_takes):
    """Training reads both corpora's train chunks (windows past 7 s exist only in the
    extra: the tiny pieces are 5 s of score and their last notes' release), an epoch counts
    both, and validation is the main corpus' alone."""
    alone = _copy(two_takes, **{"data.extra_train_sizes": ()})
    (extra,) = records.extra_train_configs(two_takes)
    assert extra.data.corpus_size == "tiny_long" and extra.data.extra_train_sizes == ()
    frames = {
        c.data.corpus_size: records.open_split(c, "train")[1]["num_frames"] for c in (alone, extra)
    }
    assert frames["tiny_long"] > frames["tiny"] > 0
    window = spec.window_frames(two_takes) * two_takes.data.batch_size
    assert pipeline.steps_per_epoch(two_takes) == max(1, sum(frames.values()) // window)
    assert pipeline.steps_per_epoch(two_takes, "validation") == pipeline.steps_per_epoch(
        alone, "validation"
    )
    fps = features.CqtConfig.from_config(two_takes.cqt).frames_per_second

    def reads_late_windows(config) -> bool:
        return any(
            b["start_frame"].max() >= 7.0 * fps for b in _take(pipeline.make_train_iter(config), 24)
        )

    assert reads_late_windows(two_takes)
    assert not reads_late_windows(alone)


def _copy(config, **overrides):
    return _override(config.copy_and_resolve_references(), **overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data.extra_train_sizes": ("tiny",)}, r"extra_train_sizes=.*not corpus_size='tiny'"),
        (
            {"data.extra_train_sizes": ("tiny_long", "tiny_long")},
            r"extra_train_sizes=.*each size once",
        ),
    ],
)
def test_bad_extra_train_sizes_name_the_field(overrides, message):
    from configs import transformer

    config = _copy(transformer.get_config("tiny"), **overrides)
    with pytest.raises(ValueError, match=message):
        spec.check(config)


def test_unknown_extra_train_size_fails_before_rendering(tmp_path):
    from configs import transformer

    config = _copy(
        transformer.get_config("tiny"),
        **{"data.extra_train_sizes": ("no_such_size",), "data.cache_dir": str(tmp_path)},
    )
    with pytest.raises(ValueError, match=r"extra_train_sizes: unknown sizes \['no_such_size'\]"):
        records.ensure_dataset(config, ("train",))
    assert not any(tmp_path.iterdir())  # nothing rendered


def test_extra_train_sizes_need_the_default_corpus_to_train_not_to_score(tmp_path):
    """With config.data.musicnet_dir set, training refuses extra sizes (naming both
    fields), while building a folder's test records (scoring such a run) ignores them."""
    from configs import transformer

    root = tmp_path / "musicnet"
    fx.make_musicnet(root, notes_per_piece=4)
    config = _copy(
        transformer.get_config("tiny"),
        **{
            "data.extra_train_sizes": ("tiny_long",),
            "data.musicnet_dir": str(root),
            "data.cache_dir": str(tmp_path / "cache"),
        },
    )
    message = r"extra_train_sizes=\('tiny_long',\): .* but config.data.musicnet_dir="
    with pytest.raises(ValueError, match=message):
        records.ensure_dataset(config, ("train",))
    assert records.ensure_dataset(config, ("test",))["test"]
