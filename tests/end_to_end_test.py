"""The README's flow on the tiny default corpus: render, process, train-val, test, transcribe.

Everything is real: scores rendered through fluidsynth, TFDS ArrayRecord records, an Orbax
checkpoint, mir_eval scores, and the command lines a user types.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest

from configs import transformer
from jaxnotes.data import audio, features, pipeline, records
from jaxnotes.data import labels as labels_lib
from jaxnotes.data.corpus import build as corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*argv, timeout=300):
    result = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{argv} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny main job: every action through `python -m jaxnotes.main`, in a fresh cache."""
    cache = tmp_path_factory.mktemp("cache")
    workdir = tmp_path_factory.mktemp("runs") / "transformer"
    out = _run(
        "-m",
        "jaxnotes.main",
        "--config=configs/transformer.py:tiny",
        f"--workdir={workdir}",
        "--action=process-train,process-test,train-val,test",
        f"--config.data.cache_dir={cache}",
    )
    config = transformer.get_config("tiny")
    config.data.cache_dir = str(cache)
    return config, str(workdir), out.stdout


def test_records_of_the_rendered_corpus_match_its_labels(run):
    """Records built from the rendered corpus equal its audio's CQT and its CSV labels, per frame."""
    config, _, _ = run
    root = corpus.corpus_root(config.data)
    cqt = features.CqtConfig.from_config(config.cqt)
    fps = cqt.frames_per_second
    for split, folder in (("train", "train"), ("validation", "train"), ("test", "test")):
        info = records.piece_info(config, split)
        assert info, f"{split} is empty"
        batches = list(pipeline.make_eval_iter(config, split))
        for piece in info.values():
            wav = os.path.join(root, f"{folder}_data", f"{piece.name}.wav")
            sr, _ = audio.audio_info(wav)
            notes = labels_lib.read_label_csv(
                os.path.join(root, f"{folder}_labels", f"{piece.name}.csv"), sr
            )
            frames_Tx128, _ = labels_lib.notes_to_rolls(notes, piece.num_frames, fps)
            expected_TxP = labels_lib.fold_pitches(
                frames_Tx128, config.data.min_pitch, config.data.max_pitch, False
            )
            got_TxP = np.zeros_like(expected_TxP, dtype=np.float32)
            got_TxF = np.zeros((piece.num_frames, cqt.n_bins), np.float32)
            for batch in batches:
                for b in np.nonzero(batch["piece_id"] == piece.piece_id)[0]:
                    start, valid = int(batch["start_frame"][b]), int(batch["mask"][b].sum())
                    got_TxP[start : start + valid] = batch["frames"][b, :valid]
                    got_TxF[start : start + valid] = batch["cqt"][b, :valid]
            np.testing.assert_array_equal(got_TxP, expected_TxP)
            assert expected_TxP.sum() > 0
            cqt_TxF = features.compute_cqt(audio.load_audio(wav, cqt.sr), cqt)
            np.testing.assert_allclose(got_TxF, cqt_TxF, atol=4e-3)  # float16 storage


def test_test_action_writes_every_report_file(run):
    """`test` writes results.json, summary.md, piano rolls, the PR curve, MIDI and thresholds."""
    config, workdir, stdout = run
    report = os.path.join(workdir, "report")
    with open(os.path.join(report, "results.json")) as f:
        results = json.load(f)
    test_ids = sorted(records.piece_info(config, "test"))
    assert sorted(int(k) for k in results["pieces"]) == test_ids
    pooled = results["pooled"]
    for key in (
        "frame/ap",
        "frame/f1",
        "note/f1",
        "note_offset/f1",
        "exact_frame_acc@t=0.5,e=0",
        "exact_frame_acc@t=0.5,e=1",
        "pitch_class_acc@t=0.5,e=0",
    ):
        assert key in pooled and (pooled[key] is None or 0.0 <= pooled[key] <= 1.0), key
    assert results["settings"]["source"] == "validation"
    assert results["checkpoint"]["step"] == config.max_steps
    for pid in test_ids:
        assert os.path.getsize(os.path.join(report, f"piano_roll_{pid}.png")) > 1000
        pretty_midi.PrettyMIDI(os.path.join(report, f"{pid}.mid"))
    assert os.path.getsize(os.path.join(report, "pr_curve.png")) > 1000
    assert "| frame/ap |" in open(os.path.join(report, "summary.md")).read()
    assert os.path.exists(os.path.join(workdir, "thresholds.json"))
    assert "test on 1 pieces" in stdout and "frame/ap" in stdout


def test_transcribe_a_test_piece(run, tmp_path):
    """`jaxnotes-transcribe` turns an unseen test piece into a MIDI file and a notes CSV."""
    config, workdir, _ = run
    root = corpus.corpus_root(config.data)
    wav = sorted(os.listdir(os.path.join(root, "test_data")))[0]
    out = tmp_path / "piece.mid"
    _run(
        "-m",
        "jaxnotes.transcribe",
        os.path.join(root, "test_data", wav),
        "--workdir",
        workdir,
        "-o",
        str(out),
    )
    pretty_midi.PrettyMIDI(str(out))
    assert (tmp_path / "piece.csv").read_text().startswith("start_s,end_s,pitch,program,velocity")
