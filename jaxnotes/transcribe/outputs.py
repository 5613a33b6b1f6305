"""What jaxnotes-transcribe writes: output paths, MIDI and CSV files, piano rolls, a MIDI port.

Owns naming a song's outputs (`outputs_for`), writing its notes as a MIDI file, a notes CSV
and optionally a PNG piano roll (`write_outputs`), and opening a live MIDI output port
(`midi_port`). The file formats live in `data.midi` and `evaluate.report`. Functions take
explicit parameters, never the command line's namespace. Must not import training code, or
cli/session. Legend: T frames, P pitches.
"""

import os

import numpy as np

from jaxnotes import files
from jaxnotes.data import midi
from jaxnotes.inference import decode
from jaxnotes.transcribe.sources import UserError


def outputs_for(
    song: str, output: str | None, csv: str | None, piano_roll: str | None, several: bool
) -> dict:
    """Output paths of one song: midi, csv and (optionally) png.

    `output` is -o (a MIDI file, or a folder; always a folder when `several` songs are
    written), `csv` and `piano_roll` are --csv and --piano-roll ("" for beside the MIDI file,
    None for no piano roll).
    """
    stem = "stdin" if song == "-" else "live" if song.startswith("<") else None
    stem = stem or os.path.splitext(os.path.basename(song))[0]
    if output is None:
        mid = f"{stem}.mid"
    elif several or output.endswith(os.sep) or os.path.isdir(output):
        if output.lower().endswith((".mid", ".midi")):
            raise UserError(f"-o {output}: with several songs, -o names a folder")
        mid = os.path.join(output, f"{stem}.mid")
    else:
        mid = output
    base = os.path.splitext(mid)[0]
    png = None if piano_roll is None else piano_roll or f"{base}.png"
    return {"midi": mid, "csv": csv or f"{base}.csv", "png": png}


def write_outputs(paths: dict, notes, meta, *, program: int, tempo: float, probs=None) -> None:
    """MIDI, CSV and (optionally) a piano roll: probabilities, decoded notes outlined.

    `program` (GM, 1..128) is given to every note; `tempo` (bpm) is written in the MIDI file;
    `probs` is (frame_TxP, onset_TxP) of the whole song, or None to draw the notes alone.
    """
    notes = [n.__class__(n.start_s, n.end_s, n.pitch, program, n.velocity) for n in notes]
    midi.write_midi(paths["midi"], notes, program=program, tempo_bpm=tempo)
    midi.write_notes_csv(paths["csv"], notes)
    if paths["png"]:
        from jaxnotes.data import labels
        from jaxnotes.evaluate import report

        end_s = max([n.end_s for n in notes] + [1.0])
        num_frames = probs[0].shape[0] if probs else int(end_s * meta.frames_per_second) + 1
        frames_Tx128, _ = labels.notes_to_rolls(notes, num_frames, meta.frames_per_second)
        pitches = decode.output_pitches(meta)
        roll_TxP = frames_Tx128[:, pitches].astype(np.float32)
        shown_TxP = probs[0] if probs else roll_TxP  # long files: the notes alone
        png = report.piano_roll_png(
            shown_TxP,
            roll_TxP,
            pitches,
            meta.frames_per_second,
            title=os.path.basename(paths["midi"]),
            outlined="decoded notes",
        )
        files.write_bytes(paths["png"], png)


def midi_port(name: str):
    """An open mido output port (UserError when it cannot be opened); the caller closes it."""
    import mido  # checked by sources.check_live_extras

    try:
        return mido.open_output(name)
    except (OSError, ValueError) as e:
        raise UserError(f"--midi-out {name!r}: cannot open the MIDI port ({e})") from e
