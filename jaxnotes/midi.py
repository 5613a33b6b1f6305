"""Notes -> files: Standard MIDI (pretty_midi) and a MusicNet-like CSV in seconds.

Owns the conversion of `labels.Note` records (GM programs 1-based, as in MusicNet) to
MIDI files (pretty_midi programs are 0-based). Must not import model, loop or metric code.
Every write is atomic (temporary file in the same folder, then `os.replace`), so a reader
never sees half a file, even if the writer is killed.

Legend: N notes.
"""

import csv
import io
import os
import tempfile
from collections.abc import Iterable

import pretty_midi

NOTES_CSV_COLUMNS = ("start_s", "end_s", "pitch", "program", "velocity")
# Ticks per quarter note: at 120 bpm one tick is ~0.5 ms, well under a 23 ms frame
# (pretty_midi's default 220 would round times to ~2.3 ms).
MIDI_RESOLUTION = 960


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and `os.replace`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _check(note) -> None:
    if not 0 <= note.pitch <= 127:
        raise ValueError(f"pitch {note.pitch} is outside MIDI 0..127: {note}")
    if not note.end_s > note.start_s >= 0:
        raise ValueError(f"a note needs 0 <= start_s < end_s: {note}")


def notes_to_pretty_midi(
    notes: Iterable, *, program: int | None = None, tempo_bpm: float = 120.0
) -> pretty_midi.PrettyMIDI:
    """One pretty_midi instrument per GM program (or all notes on `program`), 1-based."""
    midi = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=tempo_bpm)
    instruments: dict[int, pretty_midi.Instrument] = {}
    for note in notes:
        _check(note)
        gm_program = note.program if program is None else program
        if not 1 <= gm_program <= 128:
            raise ValueError(f"GM program {gm_program} is outside 1..128 (1-based): {note}")
        if gm_program not in instruments:
            instruments[gm_program] = pretty_midi.Instrument(
                program=gm_program - 1, name=pretty_midi.program_to_instrument_name(gm_program - 1)
            )
        instruments[gm_program].notes.append(
            pretty_midi.Note(
                velocity=int(min(max(note.velocity, 1), 127)),
                pitch=int(note.pitch),
                start=float(note.start_s),
                end=float(note.end_s),
            )
        )
    midi.instruments = [instruments[p] for p in sorted(instruments)]
    return midi


def write_midi(
    path: str, notes: Iterable, *, program: int | None = None, tempo_bpm: float = 120.0
) -> None:
    """Writes notes to a Standard MIDI File.

    Args:
      path: the .mid file to (over)write.
      notes: `labels.Note`-like records (start_s, end_s, pitch, program, velocity).
      program: GM program (1-based) for every note; None keeps each note's own program,
        one track per program.
      tempo_bpm: tempo written in the file; note times in seconds are kept either way.
    """
    midi = notes_to_pretty_midi(notes, program=program, tempo_bpm=tempo_bpm)
    buffer = io.BytesIO()
    midi.write(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_notes_csv(path: str, notes: Iterable) -> None:
    """Writes notes as CSV with columns start_s,end_s,pitch,program,velocity (seconds)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(NOTES_CSV_COLUMNS)
    for note in notes:
        _check(note)
        writer.writerow(
            [f"{note.start_s:.6f}", f"{note.end_s:.6f}", note.pitch, note.program, note.velocity]
        )
    atomic_write_bytes(path, text.getvalue().encode())
