"""Note and frame scores of a test report's transcriptions on a fixed 10 ms grid.

The test action's frame scores are on the model's own frame grid (hop 512 at 22,050 Hz,
23.2 ms); published figures (and ../shared/realdev's reference figures) score frames on a
10 ms grid made from note lists. This script reads the MIDI files a test report wrote (one per
piece, the decoded notes) and the folder's labels, and prints both scores on that grid, per
piece and pooled (frame scores over all frames of all pieces, note scores over all notes).

  python benchmarks/grid_scores.py runs/release/report-maps_enstdk_am \
      ../shared/realdev/maps_enstdk_am
"""

import argparse
import os
import sys

import mir_eval
import numpy as np
import pretty_midi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxnotes.data import audio, musicnet  # noqa: E402

GRID_S = 0.01
ONSET_TOLERANCE_S = 0.05


def roll(intervals_Nx2: np.ndarray, pitches_N: np.ndarray, num_frames: int) -> np.ndarray:
    """Frames x 128 booleans: pitch sounding at t = k * GRID_S (half-open note intervals)."""
    out = np.zeros((num_frames, 128), bool)
    for (start, end), pitch in zip(intervals_Nx2, pitches_N, strict=True):
        first, last = int(np.ceil(start / GRID_S)), int(np.ceil(end / GRID_S))
        out[first : min(last, num_frames), int(pitch)] = True
    return out


def frame_counts(ref_TxK: np.ndarray, est_TxK: np.ndarray) -> np.ndarray:
    """(tp, fp, fn) over every cell, as mir_eval.multipitch counts them per frame."""
    tp = np.logical_and(ref_TxK, est_TxK).sum()
    return np.array([tp, est_TxK.sum() - tp, ref_TxK.sum() - tp], np.int64)


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", help="a report folder with <piece_id>.mid files")
    parser.add_argument("musicnet_dir", help="the folder the report scored (its test split)")
    args = parser.parse_args(argv)
    frames, notes = np.zeros(3, np.int64), np.zeros(3, np.int64)
    print(f"{'piece':40s} {'note F1':>8s} {'frame F1':>9s}")
    for rec in musicnet.list_recordings(args.musicnet_dir, "test"):
        rate, num_samples = audio.audio_info(rec.audio_path)
        num_frames = int(num_samples / rate / GRID_S) + 1
        ref = rec.read_notes(rate)
        ref_int = np.array([(n.start_s, n.end_s) for n in ref]).reshape(-1, 2)
        ref_pitch = np.array([n.pitch for n in ref])
        path = os.path.join(args.report_dir, f"{musicnet.piece_id_of(rec.name)}.mid")
        est = [n for i in pretty_midi.PrettyMIDI(path).instruments for n in i.notes]
        est_int = np.array([(n.start, n.end) for n in est]).reshape(-1, 2)
        est_pitch = np.array([n.pitch for n in est])
        counts = frame_counts(
            roll(ref_int, ref_pitch, num_frames), roll(est_int, est_pitch, num_frames)
        )
        matched = len(
            mir_eval.transcription.match_notes(
                ref_int,
                mir_eval.util.midi_to_hz(ref_pitch),
                est_int,
                mir_eval.util.midi_to_hz(est_pitch),
                onset_tolerance=ONSET_TOLERANCE_S,
                offset_ratio=None,
            )
        )
        note_counts = np.array([matched, len(est) - matched, len(ref) - matched])
        frames += counts
        notes += note_counts
        print(f"{rec.name[:40]:40s} {f1(*note_counts):8.3f} {f1(*counts):9.3f}")
    print(f"{'pooled':40s} {f1(*notes):8.3f} {f1(*frames):9.3f}")


if __name__ == "__main__":
    main()
