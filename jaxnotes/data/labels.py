"""Note labels: MusicNet label CSVs, MIDI label files, and piano rolls.

Owns the label semantics of MusicNet (see shared MUSICNET.md) and the one
place where seconds become frames. Legend: N notes, T frames, P pitches.
Must not import model, loop or metric code.

MusicNet CSV semantics: `start_time`/`end_time` are sample indices at the
recording's own sample rate, half-open [start, end); `instrument` is a General
MIDI program, 1-based; `note` is a MIDI pitch; `start_beat` is a position in
beats and `end_beat` a duration in beats (despite its name).

Frame convention (the original's): a note covers frames round(start * fps) up
to, not including, round(end * fps), and at least its onset frame.
"""

import csv
import dataclasses
import os

import numpy as np

from jaxnotes import files
from jaxnotes.data import NUM_MIDI_PITCHES

CSV_COLUMNS = (
    "start_time",
    "end_time",
    "instrument",
    "note",
    "start_beat",
    "end_beat",
    "note_value",
)


class LabelError(ValueError):
    """A label file that cannot be trusted, with the file (and row) named."""


@dataclasses.dataclass(frozen=True, order=True)
class Note:
    """One labelled note; times in seconds, pitch MIDI, program GM 1-based."""

    start_s: float
    end_s: float
    pitch: int
    program: int = 1
    velocity: int = 80
    start_beat: float = 0.0
    duration_beats: float = 0.0
    note_value: str = "Unknown"


def read_label_csv(path: str, sample_rate: int) -> list[Note]:
    """Reads a MusicNet label CSV whose sample indices are at `sample_rate`.

    A malformed header or row raises `LabelError` naming the file and line: a
    label file with a broken row cannot be trusted, so nothing is guessed.
    """
    if not os.path.exists(path):
        raise LabelError(f"{path}: label file not found")
    notes = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise LabelError(
                f"{path}: empty label file (expected a header {','.join(CSV_COLUMNS)})"
            )
        header = [h.strip() for h in header]
        missing = [c for c in CSV_COLUMNS[:4] if c not in header]
        if missing:
            raise LabelError(f"{path}:1: header lacks columns {missing}; got {header}")
        col = {name: header.index(name) for name in CSV_COLUMNS if name in header}
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            notes.append(_parse_row(path, line, row, col, sample_rate))
    return notes


def _parse_row(path, line, row, col, sample_rate) -> Note:
    where = f"{path}:{line}"
    if len(row) < len(col):
        raise LabelError(f"{where}: expected {len(col)} fields, got {len(row)}: {row}")

    def integer(name):
        text = row[col[name]].strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise LabelError(f"{where}: {name}={text!r} is not a number") from None
            if not value.is_integer():
                raise LabelError(f"{where}: {name}={text!r} is not an integer") from None
            return int(value)

    def number(name, default):
        if name not in col:
            return default
        text = row[col[name]].strip()
        try:
            return float(text) if text else default
        except ValueError:
            raise LabelError(f"{where}: {name}={text!r} is not a number") from None

    start, end = integer("start_time"), integer("end_time")
    program, pitch = integer("instrument"), integer("note")
    if start < 0 or end <= start:
        raise LabelError(f"{where}: need 0 <= start_time < end_time, got {start}, {end}")
    if not 0 <= pitch < NUM_MIDI_PITCHES:
        raise LabelError(f"{where}: note={pitch} is not a MIDI pitch (0..127)")
    if not 1 <= program <= 128:
        raise LabelError(f"{where}: instrument={program} is not a 1-based GM program (1..128)")
    return Note(
        start_s=start / sample_rate,
        end_s=end / sample_rate,
        pitch=pitch,
        program=program,
        start_beat=number("start_beat", 0.0),
        duration_beats=number("end_beat", 0.0),
        note_value=row[col["note_value"]].strip() if "note_value" in col else "Unknown",
    )


def write_label_csv(path: str, notes: list[Note], sample_rate: int) -> None:
    """Writes notes as a MusicNet label CSV (atomically, `files.atomic_path`)."""
    with files.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for n in sorted(notes):
            start = int(round(n.start_s * sample_rate))
            end = max(int(round(n.end_s * sample_rate)), start + 1)
            writer.writerow(
                [
                    start,
                    end,
                    n.program,
                    n.pitch,
                    f"{n.start_beat:g}",
                    f"{n.duration_beats:g}",
                    n.note_value,
                ]
            )


def read_midi_labels(path: str) -> list[Note]:
    """Reads notes from a MIDI file (e.g. MusicNetEM's aligned labels); drums skipped."""
    import pretty_midi

    if not os.path.exists(path):
        raise LabelError(f"{path}: MIDI label file not found")
    try:
        midi = pretty_midi.PrettyMIDI(path)
    except Exception as e:  # mido/pretty_midi raise several types for corrupt files
        raise LabelError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from e
    notes = [
        Note(
            start_s=float(n.start),
            end_s=float(n.end),
            pitch=int(n.pitch),
            program=inst.program + 1,  # pretty_midi programs are 0-based
            velocity=int(n.velocity),
        )
        for inst in midi.instruments
        if not inst.is_drum
        for n in inst.notes
        if n.end > n.start
    ]
    return sorted(notes)


def check_against_duration(
    notes: list[Note], duration_s: float, path: str, tolerance_s: float = 1.0
) -> tuple[list[Note], int]:
    """Checks labels against the audio length; clips late ends.

    Returns the notes with ends clipped to the audio and how many were clipped.
    Raises `LabelError` when a note starts more than `tolerance_s` after the
    audio ends: the labels then belong to another (longer) recording.
    """
    clipped = 0
    kept = []
    for i, n in enumerate(notes):
        if n.start_s >= duration_s:
            if n.start_s > duration_s + tolerance_s:
                raise LabelError(
                    f"{path}: note {i} (pitch {n.pitch}) starts at {n.start_s:.2f} s, past the end"
                    f" of the {duration_s:.2f} s audio: the labels do not match this recording"
                )
            clipped += 1
            continue
        if n.end_s > duration_s:
            n = dataclasses.replace(n, end_s=duration_s)
            clipped += 1
        kept.append(n)
    return kept, clipped


def frame_of(time_s, fps: float):
    """The frame a time rounds to (works on scalars and arrays)."""
    return np.round(np.asarray(time_s) * fps).astype(np.int64)


def notes_to_rolls(notes: list[Note], num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame and onset piano rolls over all 128 MIDI pitches (uint8, T x 128)."""
    frames_TxP = np.zeros((num_frames, NUM_MIDI_PITCHES), np.uint8)
    onsets_TxP = np.zeros((num_frames, NUM_MIDI_PITCHES), np.uint8)
    for n in notes:
        start = int(frame_of(n.start_s, fps))
        end = max(int(frame_of(n.end_s, fps)), start + 1)
        if start >= num_frames:
            continue
        frames_TxP[start : min(end, num_frames), n.pitch] = 1
        onsets_TxP[start, n.pitch] = 1
    return frames_TxP, onsets_TxP


def fold_pitches(
    roll_Tx128: np.ndarray, min_pitch: int, max_pitch: int, only_note_names: bool
) -> np.ndarray:
    """Selects the output pitch range, or folds pitches modulo 12 (C = 0).

    Folding ORs every octave of a pitch class together and uses all 128
    pitches, so pitch classes are counted even outside [min_pitch, max_pitch].
    """
    if only_note_names:
        return fold_pitch_classes(roll_Tx128, np.arange(NUM_MIDI_PITCHES))
    return roll_Tx128[..., min_pitch : max_pitch + 1]


def fold_pitch_classes(roll_TxP: np.ndarray, pitches_P) -> np.ndarray:
    """ORs (max) every octave of a pitch class together: T x P -> T x 12, C = 0.

    `pitches_P` are the MIDI pitches of the columns. Works on probabilities too: max over
    octaves then `>= t` equals OR of `>= t`, so folding probabilities before thresholding
    gives the folded binary prediction.
    """
    roll_TxP = np.asarray(roll_TxP)
    classes_P = np.asarray(pitches_P, dtype=np.int64) % 12
    if classes_P.shape != roll_TxP.shape[-1:]:
        raise ValueError(f"{len(classes_P)} pitches for {roll_TxP.shape[-1]} outputs")
    folded = np.zeros(roll_TxP.shape[:-1] + (12,), roll_TxP.dtype)
    for pc in range(12):
        columns = np.flatnonzero(classes_P == pc)
        if columns.size:
            folded[..., pc] = roll_TxP[..., columns].max(axis=-1)
    return folded
