"""Notes -> files: Standard MIDI (pretty_midi) and a MusicNet-like CSV in seconds.

Owns the conversion of `labels.Note` records (GM programs 1-based, as in MusicNet) to
MIDI files (pretty_midi programs are 0-based). Must not import model, loop or metric code.
Every write is atomic (`files.atomic_path`), so a reader never sees half a file, even if
the writer is killed. Used by the corpus (scores as MIDI), reports and transcription.

Legend: N notes.
"""

import csv
import io
from collections.abc import Iterable, Sequence

import pretty_midi

from jaxnotes import files

NOTES_CSV_COLUMNS = ("start_s", "end_s", "pitch", "program", "velocity")
# Ticks per quarter note: at 120 bpm one tick is ~0.5 ms, well under a 23 ms frame
# (pretty_midi's default 220 would round times to ~2.3 ms).
MIDI_RESOLUTION = 960


def _check(note) -> None:
    if not 0 <= note.pitch <= 127:
        raise ValueError(f"pitch {note.pitch} is outside MIDI 0..127: {note}")
    if not note.end_s > note.start_s >= 0:
        raise ValueError(f"a note needs 0 <= start_s < end_s: {note}")


def notes_to_pretty_midi(
    notes: Iterable,
    *,
    program: int | None = None,
    tempo_bpm: float = 120.0,
    tracks: Sequence[str] | None = None,
) -> pretty_midi.PrettyMIDI:
    """One pretty_midi instrument per GM program (or all notes on `program`), 1-based.

    `tracks`, one name per note, splits notes further into named instruments (a score's
    parts); by default each instrument is named after its program.
    """
    midi = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=tempo_bpm)
    instruments: dict[tuple[str, int], pretty_midi.Instrument] = {}
    notes = list(notes)
    if tracks is not None and len(tracks) != len(notes):
        raise ValueError(f"{len(tracks)} track names for {len(notes)} notes")
    for i, note in enumerate(notes):
        _check(note)
        gm_program = note.program if program is None else program
        if not 1 <= gm_program <= 128:
            raise ValueError(f"GM program {gm_program} is outside 1..128 (1-based): {note}")
        name = tracks[i] if tracks is not None else ""
        key = (name, gm_program)
        if key not in instruments:
            instruments[key] = pretty_midi.Instrument(
                program=gm_program - 1,
                name=name or pretty_midi.program_to_instrument_name(gm_program - 1),
            )
        instruments[key].notes.append(
            pretty_midi.Note(
                velocity=int(min(max(note.velocity, 1), 127)),
                pitch=int(note.pitch),
                start=float(note.start_s),
                end=float(note.end_s),
            )
        )
    midi.instruments = [instruments[k] for k in sorted(instruments, key=lambda k: (k[1], k[0]))]
    return midi


def write_midi(
    path: str,
    notes: Iterable,
    *,
    program: int | None = None,
    tempo_bpm: float = 120.0,
    tracks: Sequence[str] | None = None,
) -> None:
    """Writes notes to a Standard MIDI File.

    Args:
      path: the .mid file to (over)write.
      notes: `labels.Note`-like records (start_s, end_s, pitch, program, velocity).
      program: GM program (1-based) for every note; None keeps each note's own program,
        one track per program.
      tempo_bpm: tempo written in the file; note times in seconds are kept either way.
      tracks: a track name per note (see `notes_to_pretty_midi`).
    """
    midi = notes_to_pretty_midi(notes, program=program, tempo_bpm=tempo_bpm, tracks=tracks)
    buffer = io.BytesIO()
    midi.write(buffer)
    files.write_bytes(path, buffer.getvalue())


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
    files.write_bytes(path, text.getvalue().encode())
