"""Tests of the `musicnet_cqt` TFDS builder (jaxnotes/data/musicnet_cqt.py) on synthetic data."""

import glob
import logging
import os
import re

import musicnet_fixtures as fx
import numpy as np
import pytest

from jaxnotes.data import audio, features, musicnet, musicnet_cqt, pipeline
from jaxnotes.data import labels as labels_lib
from jaxnotes.data import records as records_lib


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 4+1 recording folder (3 s each) built into both parts with the tiny config."""
    root = tmp_path_factory.mktemp("musicnet")
    notes = fx.make_musicnet(root)
    config = fx.tiny_config(root, tmp_path_factory.mktemp("cache"))
    paths = records_lib.ensure_dataset(config, ("train", "test"))
    return config, root, notes, paths


def _finished_datasets(cache_dir) -> list[str]:
    return glob.glob(os.path.join(str(cache_dir), "tfds", "*", "*", "*", "*", "dataset_info.json"))


def _leftovers(cache_dir) -> list[str]:
    return glob.glob(os.path.join(str(cache_dir), "tfds", "*", "*", "*", "incomplete.*"))


def test_sine_lands_in_its_cqt_bin(tmp_path):
    """A tone at A4 must peak in A4's CQT bin of the records (else bins or sr are mislabelled)."""
    a4 = labels_lib.Note(0.5, 2.5, 69, fx.VIOLIN)
    fx.write_recording(tmp_path / "mn", "train", "1", [a4], seconds=3.0)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache", validation_fraction=0.0)
    path = records_lib.ensure_dataset(config, ("train",))["train"]
    records = fx.read_records(path, "train")
    cqt = features.CqtConfig.from_config(config.cqt)
    num_frames = cqt.num_frames(int(3.0 * cqt.sr))
    cqt_TxF = fx.stitch(records, 1, "cqt", num_frames).astype(np.float32)
    frames_Tx128 = fx.stitch(records, 1, "frames", num_frames)
    sounding = frames_Tx128[:, 69] == 1
    assert sounding.sum() > 60 and frames_Tx128.sum() == sounding.sum()
    assert np.argmax(cqt_TxF[sounding].mean(axis=0)) == round(cqt.bin_of_pitch(69))


def test_records_match_labels_frame_by_frame(built):
    """Stitched chunks must equal the CQT of the audio and notes_to_rolls of the CSV, per piece."""
    config, root, notes, paths = built
    cqt = features.CqtConfig.from_config(config.cqt)
    silence = features.normalise(np.zeros((1, 1), np.float32), cqt)[0, 0]
    fps = cqt.frames_per_second
    for split in ("train", "validation", "test"):
        path = paths[records_lib.PART_OF_SPLIT[split]]
        records = fx.read_records(path, split)
        assert [(r["piece_id"], r["start_frame"]) for r in records] == sorted(
            (r["piece_id"], r["start_frame"]) for r in records
        ), "records must be stored in piece order"
        for piece in records_lib.piece_info(config, split).values():
            folder = "test" if split == "test" else "train"
            wav = fx.audio_path(root, folder, piece.name)
            cqt_TxF = features.compute_cqt(audio.load_audio(wav, cqt.sr), cqt)
            assert piece.num_frames == len(cqt_TxF)
            csv_notes = labels_lib.read_label_csv(fx.labels_path(root, folder, piece.name), 44100)
            frames, onsets = labels_lib.notes_to_rolls(csv_notes, piece.num_frames, fps)
            for key, expected in (("frames", frames), ("onsets", onsets)):
                np.testing.assert_array_equal(
                    fx.stitch(records, piece.piece_id, key, piece.num_frames), expected
                )
            np.testing.assert_allclose(
                fx.stitch(records, piece.piece_id, "cqt", piece.num_frames), cqt_TxF, atol=4e-3
            )
            spans = [(round(n.start_s * fps), round(n.end_s * fps), n.program) for n in csv_notes]
            for r in (r for r in records if r["piece_id"] == piece.piece_id):
                start, n = int(r["start_frame"]), int(r["num_frames"])
                # Padding is a silent CQT without labels.
                assert (r["cqt"][n:] == np.float16(silence)).all() and not r["frames"][n:].any()
                sounding = {prog for s, e, prog in spans if s < start + n and max(e, s + 1) > start}
                assert set(np.nonzero(r["instruments"])[0] + 1) == sounding


@pytest.mark.parametrize(
    "variant", [dict(sr=16000, channels=2), dict(label_format="midi"), dict(sr=22050)]
)
def test_rates_and_label_formats_give_the_same_frames(tmp_path, variant):
    """CSV indices are at the wav's own rate and MIDI labels are read: all give identical rolls."""
    notes = fx.random_notes(7, 2.0)
    roll = {}
    for name, kwargs in (("ref", {}), ("variant", variant)):
        fx.write_recording(tmp_path / name, "train", "7", notes, seconds=2.0, **kwargs)
        config = fx.tiny_config(tmp_path / name, tmp_path / "cache", validation_fraction=0.0)
        path = records_lib.ensure_dataset(config, ("train",))["train"]
        records = fx.read_records(path, "train")
        num_frames = records_lib.piece_info(config, "train")[7].num_frames
        roll[name] = [fx.stitch(records, 7, k, num_frames) for k in ("frames", "onsets")]
    assert roll["ref"][0].sum() > 0
    for ref, var in zip(roll["ref"], roll["variant"], strict=True):
        np.testing.assert_array_equal(ref, var)


def _bad_folder(root):
    """Two train recordings (the second will be broken) and one test recording."""
    fx.make_musicnet(root, train_names=("3000", "3001"), test_names=("3100",), seconds=1.5)
    return fx.audio_path(root, "train", "3001"), fx.labels_path(root, "train", "3001")


def _empty_wav(wav, csv):
    fx.write_empty_file(wav)
    return audio.AudioError, re.escape(f"{wav}: the file is empty")


def _junk_wav(wav, csv):
    fx.write_junk_audio(wav)
    return audio.AudioError, re.escape(f"{wav}: not a readable audio file")


def _truncated_wav(wav, csv):
    fx.truncate_file(wav, 0.6)
    return audio.AudioError, re.escape(f"{wav}: truncated WAV file")


def _missing_labels(wav, csv):
    os.remove(csv)
    return musicnet.LayoutError, re.escape(f"{wav}: no labels found")


def _bad_row(wav, csv):
    line = fx.append_label_row(csv, "100,200,41,sixty,0,1,Quarter")
    return labels_lib.LabelError, re.escape(f"{csv}:{line}: note='sixty' is not a number")


def _short_row(wav, csv):
    line = fx.append_label_row(csv, "100,200,41")
    return labels_lib.LabelError, re.escape(f"{csv}:{line}: expected 7 fields")


def _empty_labels(wav, csv):
    fx.write_empty_file(csv)
    return labels_lib.LabelError, re.escape(f"{csv}: empty label file")


def _labels_of_another_recording(wav, csv):
    fx.append_label_row(csv, f"{int(3.0 * 44100)},{int(3.5 * 44100)},41,60,0,1,Quarter")
    return labels_lib.LabelError, re.escape(csv) + r": note \d+ \(pitch 60\) starts at 3.00 s, past"


@pytest.mark.parametrize(
    "breakage",
    [
        _empty_wav,
        _junk_wav,
        _truncated_wav,
        _missing_labels,
        _bad_row,
        _short_row,
        _empty_labels,
        _labels_of_another_recording,
    ],
)
def test_bad_input_names_the_file_and_leaves_nothing(tmp_path, breakage):
    """Broken audio or labels must stop the build with the file (and row) named, leaving no dataset."""
    wav, csv = _bad_folder(tmp_path / "mn")
    error, pattern = breakage(wav, csv)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache")
    with pytest.raises(error, match=pattern):
        records_lib.ensure_dataset(config, ("train",))
    assert not _finished_datasets(tmp_path / "cache") and not _leftovers(tmp_path / "cache")
    with pytest.raises(records_lib.DatasetNotPreparedError):  # nor does a reader
        pipeline.make_train_iter(config)


def test_missing_folder_is_a_layout_error(tmp_path):
    """A musicnet_dir that does not exist must be named, not rendered or silently empty."""
    config = fx.tiny_config(tmp_path / "nowhere", tmp_path / "cache")
    with pytest.raises(musicnet.LayoutError, match="config.data.musicnet_dir"):
        records_lib.ensure_dataset(config, ("test",))


def test_tolerated_problems_are_counted_and_logged(tmp_path, caplog):
    """Late label ends are clipped, out-of-range pitches kept, low-rate audio warned about."""
    notes = [
        labels_lib.Note(0.1, 0.6, 60, fx.VIOLIN),
        labels_lib.Note(0.2, 0.9, 120, fx.VIOLIN),  # above max_pitch: kept in the records
        labels_lib.Note(0.3, 2.5, 15, fx.CELLO),  # below min_pitch, and ends after the audio
        labels_lib.Note(1.8, 2.0, 62, fx.VIOLIN),  # starts 0.3 s after the end: dropped
    ]
    fx.write_recording(tmp_path / "mn", "train", "1", notes, 1.5, audio_notes=notes[:1])
    fx.write_recording(tmp_path / "mn", "train", "2", notes[:1], 1.5, sr=11025)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache", validation_fraction=0.0)
    with caplog.at_level(logging.INFO):
        path = records_lib.ensure_dataset(config, ("train",))["train"]
    stats = records_lib.read_metadata(path)["stats"]
    assert stats == dict(clipped_notes=1, dropped_notes=1, out_of_range_notes=2, low_rate_files=1)
    text = caplog.text
    assert "train_labels/1.csv: 1 notes end (or 1 start, dropped) after the 1.50 s audio" in text
    assert "train_labels/1.csv: 2 notes outside MIDI 21..108" in text
    assert "train_data/2.wav: sampled at 11025 Hz" in text
    records = fx.read_records(path, "train")
    piece = records_lib.piece_info(config, "train")[1]
    frames = fx.stitch(records, 1, "frames", piece.num_frames)
    assert frames[:, 120].any() and frames[:, 15].any() and not frames[:, 62].any()
    assert max(n.end_s for n in piece.notes) == pytest.approx(1.5)


def test_config_name_encodes_what_changes_records(tmp_path):
    """Any parameter that changes records must change the dataset name; others must not."""
    config = fx.tiny_config(tmp_path / "a", tmp_path / "cache")
    base = musicnet_cqt.builder_config(config, "train").name
    changes = [
        ("cqt", "hop_length", 256),
        ("cqt", "bins_per_octave", 36),
        ("cqt", "sr", 16000),
        ("cqt", "filter_scale", 1.0),
        ("cqt", "fmin_midi", 24),
        ("data", "chunk_frames", 256),
        ("data", "validation_fraction", 0.2),
        ("data", "split_seed", 1),
        ("data", "validation_ids", ("2001",)),
        ("data", "label_format", "midi"),
    ]
    names = {base}
    for section, field, value in changes:
        changed = fx.tiny_config(tmp_path / "a", tmp_path / "cache")
        setattr(changed[section], field, value)
        names.add(musicnet_cqt.builder_config(changed, "train").name)
    assert len(names) == len(changes) + 1
    for section, field, value in [("data", "min_pitch", 30), ("data", "batch_size", 8)]:
        same = fx.tiny_config(tmp_path / "a", tmp_path / "cache")
        setattr(same[section], field, value)
        assert musicnet_cqt.builder_config(same, "train").name == base
    test_name = musicnet_cqt.builder_config(config, "test").name
    assert test_name.startswith("test_") and "val" not in test_name
    a, b = (records_lib.source_data_dir(str(tmp_path), str(tmp_path / n)) for n in "ab")
    assert a != b and a == records_lib.source_data_dir(str(tmp_path), str(tmp_path / "a") + "/")


def test_interrupted_build_leaves_nothing_and_rerun_builds(tmp_path, monkeypatch):
    """A build that dies mid-generation must leave no usable dataset; the rerun must be complete."""
    fx.make_musicnet(tmp_path / "mn", train_names=("1", "2", "3"), test_names=("9",), seconds=1.5)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache", validation_fraction=0.0)
    real_cqt, calls = features.compute_cqt, []

    def dies_on_second_recording(audio_S, cqt):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real_cqt(audio_S, cqt)

    monkeypatch.setattr(features, "compute_cqt", dies_on_second_recording)
    with pytest.raises(RuntimeError, match="simulated crash"):
        records_lib.ensure_dataset(config, ("train",))
    assert not _finished_datasets(tmp_path / "cache") and not _leftovers(tmp_path / "cache")
    monkeypatch.setattr(features, "compute_cqt", real_cqt)
    # A killed process (no exception handler ran) leaves TFDS's temporary folder behind.
    cfg = musicnet_cqt.builder_config(config, "train")
    data_dir = records_lib.source_data_dir(config.data.cache_dir, config.data.musicnet_dir)
    killed = os.path.join(data_dir, musicnet_cqt.NAME, cfg.name, "incomplete.KILLED_1.0.0")
    os.makedirs(killed)
    path = records_lib.ensure_dataset(config, ("train",))["train"]
    assert not os.path.exists(killed)
    records = fx.read_records(path, "train")
    assert sorted({int(r["piece_id"]) for r in records}) == [1, 2, 3]
    assert sum(int(r["num_frames"]) for r in records) == 3 * (1 + int(1.5 * 22050) // 512)


def test_validation_is_held_out_of_train_never_test(built, tmp_path):
    """Validation recordings must come from train_data and appear in no other split."""
    config, root, notes, _ = built
    ids = {s: set(records_lib.piece_info(config, s)) for s in records_lib.SPLITS}
    assert ids["validation"] and not ids["validation"] & ids["train"]
    assert not (ids["train"] | ids["validation"]) & ids["test"]
    assert ids["train"] | ids["validation"] == {2000, 2001, 2002, 2003}
    chosen = fx.tiny_config(root, config.data.cache_dir, validation_ids=("2000",))
    records_lib.ensure_dataset(chosen, ("train",))  # another split: another dataset
    assert set(records_lib.piece_info(chosen, "validation")) == {2000}
    with pytest.raises(ValueError, match="config.data.validation_ids"):
        records_lib.ensure_dataset(
            fx.tiny_config(root, tmp_path, validation_ids=("2100",)), "train"
        )


def test_changed_source_file_rebuilds(tmp_path):
    """Editing a label file after the build must rebuild, never reuse the stale records."""
    fx.write_recording(tmp_path / "mn", "train", "1", [labels_lib.Note(0.1, 0.5, 60)], 1.0)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache", validation_fraction=0.0)
    path = records_lib.ensure_dataset(config, ("train",))["train"]
    assert fx.read_records(path, "train")[0]["frames"][:, 60].any()
    csv = fx.labels_path(tmp_path / "mn", "train", "1")
    labels_lib.write_label_csv(csv, [labels_lib.Note(0.1, 0.5, 64)], 44100)
    os.utime(csv, ns=(1, 1))  # an mtime surely different from the first file's
    assert records_lib.ensure_dataset(config, ("train",))["train"] == path
    frames = fx.read_records(path, "train")[0]["frames"]
    assert frames[:, 64].any() and not frames[:, 60].any()
    # Without its source (a cache copied elsewhere) the finished dataset is still readable.
    os.rename(tmp_path / "mn", tmp_path / "moved")
    assert records_lib.piece_info(config, "train")[1].notes[0].pitch == 64
