"""Tests of label semantics (jaxnotes/data/labels.py)."""

import numpy as np
import pytest

from jaxnotes.data import labels

HEADER = "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"


def _write(tmp_path, text, name="1.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_semantics_on_hand_written_labels(tmp_path):
    """Sample indices at the file's rate, 1-based programs, end_beat as a duration."""
    path = _write(
        tmp_path,
        HEADER
        + "0,22050,41,69,0.0,1.0,Quarter\n"
        + "11025,44100,43,48,0.5,1.5,Dotted Quarter\n"
        + "44100,88200,1,72,2,2.0,Half\n",
    )
    notes = labels.read_label_csv(path, sample_rate=44100)
    assert [(n.start_s, n.end_s, n.pitch, n.program) for n in notes] == [
        (0.0, 0.5, 69, 41),
        (0.25, 1.0, 48, 43),
        (1.0, 2.0, 72, 1),
    ]
    assert notes[1].duration_beats == 1.5 and notes[1].start_beat == 0.5
    assert notes[1].note_value == "Dotted Quarter"
    # The same indices at another rate are other times.
    assert labels.read_label_csv(path, sample_rate=22050)[0].end_s == 1.0


def test_rolls_are_half_open_with_rounding():
    """A note covers frames round(start*fps) .. round(end*fps)-1; onsets mark the first."""
    fps = 10.0
    notes = [
        labels.Note(0.0, 0.5, 60),  # frames 0..4
        labels.Note(0.26, 0.34, 62),  # start 3, end 3 -> at least one frame
        labels.Note(0.94, 2.0, 64),  # runs past the end: clipped
    ]
    frames_TxP, onsets_TxP = labels.notes_to_rolls(notes, num_frames=12, fps=fps)
    assert frames_TxP.shape == (12, 128) and frames_TxP.dtype == np.uint8
    np.testing.assert_array_equal(np.nonzero(frames_TxP[:, 60])[0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(np.nonzero(frames_TxP[:, 62])[0], [3])
    np.testing.assert_array_equal(np.nonzero(frames_TxP[:, 64])[0], [9, 10, 11])
    assert onsets_TxP.sum() == 3 and onsets_TxP[9, 64] == 1 and onsets_TxP[3, 62] == 1


def test_seconds_frames_round_trip():
    """frame_of inverts t / fps for every frame (one place converts seconds to frames)."""
    fps = 22050 / 512
    t = np.arange(1000)
    np.testing.assert_array_equal(labels.frame_of(t / fps, fps), t)


def test_write_then_read_round_trip(tmp_path):
    """write_label_csv produces a file read back to the same notes."""
    notes = [
        labels.Note(
            0.5, 1.25, 60, 41, start_beat=1.0, duration_beats=1.5, note_value="Dotted Quarter"
        )
    ]
    path = str(tmp_path / "x.csv")
    labels.write_label_csv(path, notes, 44100)
    back = labels.read_label_csv(path, 44100)
    assert back[0].start_s == 0.5 and back[0].end_s == 1.25 and back[0].program == 41
    assert back[0].note_value == "Dotted Quarter" and back[0].duration_beats == 1.5


def test_fold_pitches_modulo_12():
    """only_note_names ORs octaves into 12 classes; otherwise the range is sliced."""
    roll = np.zeros((2, 128), np.uint8)
    roll[0, [60, 72, 64]] = 1
    roll[1, 21] = 1  # A0
    folded = labels.fold_pitches(roll, 21, 108, only_note_names=True)
    assert folded.shape == (2, 12)
    np.testing.assert_array_equal(np.nonzero(folded[0])[0], [0, 4])
    np.testing.assert_array_equal(np.nonzero(folded[1])[0], [9])
    sliced = labels.fold_pitches(roll, 21, 108, only_note_names=False)
    assert sliced.shape == (2, 88) and sliced[1, 0] == 1 and sliced[0, 60 - 21] == 1


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty label file"),
        ("a,b,c\n1,2,3\n", "header lacks columns"),
        (
            HEADER + "0,100,41,60,0,1,Quarter\nzero,100,41,60,0,1,Quarter\n",
            r":3: start_time='zero'",
        ),
        (HEADER + "100,50,41,60,0,1,Quarter\n", ":2: need 0 <= start_time < end_time"),
        (HEADER + "0,100,41,130,0,1,Quarter\n", ":2: note=130 is not a MIDI pitch"),
        (HEADER + "0,100,0,60,0,1,Quarter\n", ":2: instrument=0"),
        (HEADER + "0,100,41\n", ":2: expected 7 fields"),
        (HEADER + "0,100.5,41,60,0,1,Quarter\n", ":2: end_time='100.5' is not an integer"),
    ],
)
def test_malformed_csv_names_file_and_row(tmp_path, text, match):
    """A broken label file fails with the file and line named, never a bare traceback."""
    path = _write(tmp_path, text)
    with pytest.raises(labels.LabelError, match=match) as info:
        labels.read_label_csv(path, 44100)
    assert path in str(info.value)


def test_missing_label_file(tmp_path):
    """A missing label file is an error that names it."""
    with pytest.raises(labels.LabelError, match="not found"):
        labels.read_label_csv(str(tmp_path / "nope.csv"), 44100)


def test_labels_past_the_end():
    """Late ends are clipped and counted; notes starting well after the audio are an error."""
    notes = [labels.Note(0.0, 1.0, 60), labels.Note(1.5, 2.5, 62), labels.Note(2.05, 2.2, 64)]
    kept, clipped = labels.check_against_duration(notes, 2.0, "x.csv")
    assert clipped == 2 and [n.end_s for n in kept] == [1.0, 2.0]
    with pytest.raises(labels.LabelError, match="x.csv: note 1 .* past the end"):
        labels.check_against_duration([notes[0], labels.Note(9.0, 10.0, 60)], 2.0, "x.csv")


def test_midi_labels(tmp_path):
    """MIDI label files (MusicNetEM) give notes with 1-based programs; drums are skipped."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    violin = pretty_midi.Instrument(program=40)
    violin.notes.append(pretty_midi.Note(velocity=90, pitch=67, start=0.5, end=1.0))
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(velocity=90, pitch=38, start=0.0, end=0.1))
    midi.instruments += [violin, drums]
    path = str(tmp_path / "1.mid")
    midi.write(path)
    notes = labels.read_midi_labels(path)
    assert len(notes) == 1
    n = notes[0]
    assert (n.pitch, n.program, n.velocity) == (67, 41, 90)
    assert n.start_s == pytest.approx(0.5, abs=1e-3) and n.end_s == pytest.approx(1.0, abs=1e-3)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(labels.LabelError, match="bad.mid: not a readable MIDI file"):
        labels.read_midi_labels(str(bad))
