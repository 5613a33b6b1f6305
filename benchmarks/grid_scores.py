"""Note and frame scores of a test report's transcriptions on a fixed 10 ms grid, and where
the frame errors come from.

The test action's frame scores are on the model's own frame grid (hop 512 at 22,050 Hz,
23.2 ms); published figures (and ../shared/realdev's reference figures) score frames on a
10 ms grid made from note lists. This script reads the MIDI files a test report wrote (one per
piece, the decoded notes) and the folder's labels, and prints both scores on that grid, per
piece and pooled (frame scores over all frames of all pieces, note scores over all notes).

Then the pooled frame errors, split by the notes they belong to (notes matched by onset and
pitch, as the note score matches them): missed frames of missed notes, or of matched notes
(started late or ended early); false frames of false notes, or of matched notes (past the
label's end, or before its start). With each, the frame F1 the model would score if that
kind of error were gone: which lever is worth the most.

Last, the timing of the notes, by label length: how late matched notes start and end
(estimate minus label), and the share of each fifth of the labelled notes that the
transcription covers (frame recall from a note's start to its end).

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
# Frame errors by kind (`frame_errors`), in the order printed.
ERROR_KINDS = (
    ("missed_notes", "missed frames of missed notes", "no note were missed"),
    ("matched_missed", "missed frames of matched notes", "matched notes were as long as labelled"),
    ("false_notes", "false frames of false notes", "no note were false"),
    ("matched_false", "false frames of matched notes", "matched notes ended in time"),
)
MISSED_KINDS = ("missed_notes", "matched_missed")  # the rest are false frames
LENGTH_BINS_S = (0.0, 0.2, 0.5, 1.0, 2.0, np.inf)  # label lengths the timing is split by
FIFTHS = 5


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


def match(ref_int, ref_pitch, est_int, est_pitch) -> list[tuple[int, int]]:
    """(ref, est) index pairs matched by onset (50 ms) and pitch, offsets ignored."""
    return mir_eval.transcription.match_notes(
        ref_int,
        mir_eval.util.midi_to_hz(ref_pitch),
        est_int,
        mir_eval.util.midi_to_hz(est_pitch),
        onset_tolerance=ONSET_TOLERANCE_S,
        offset_ratio=None,
    )


def frame_errors(ref_TxK, est_TxK, matched_ref_TxK, matched_est_TxK) -> dict:
    """Missed and false frames (a cell counted once, however many notes cover it) by the
    notes they belong to, from the rolls of all and of the matched reference and estimated
    notes: a missed frame lies in a matched reference note or only in missed ones; a false
    frame in a matched estimated note or only in false ones."""
    missed_TxK, false_TxK = ref_TxK & ~est_TxK, est_TxK & ~ref_TxK
    return {
        "missed_notes": int((missed_TxK & ~matched_ref_TxK).sum()),
        "matched_missed": int((missed_TxK & matched_ref_TxK).sum()),
        "false_notes": int((false_TxK & ~matched_est_TxK).sum()),
        "matched_false": int((false_TxK & matched_est_TxK).sum()),
    }


def without(frames: np.ndarray, errors: dict, kind: str) -> float:
    """Frame F1 from pooled (tp, fp, fn) with the errors of `kind` gone (missed frames
    found, false frames dropped)."""
    tp, fp, fn = (int(x) for x in frames)
    if kind in MISSED_KINDS:
        return f1(tp + errors[kind], fp, fn - errors[kind])
    return f1(tp, fp - errors[kind], fn)


def length_bin(length_s: float) -> int:
    """Index of the `LENGTH_BINS_S` bin that holds a label `length_s` long."""
    return int(np.searchsorted(LENGTH_BINS_S, length_s, side="right")) - 1


def timing(ref_int, est_int, pairs) -> list[tuple[int, float, float]]:
    """(length bin, onset error s, end error s) of each matched pair: estimate - label."""
    return [
        (
            length_bin(ref_int[i, 1] - ref_int[i, 0]),
            est_int[j, 0] - ref_int[i, 0],
            est_int[j, 1] - ref_int[i, 1],
        )
        for i, j in pairs
    ]


def recall_by_fifth(ref_int, ref_pitch, est_TxK) -> np.ndarray:
    """Bins x FIFTHS x (covered, cells): each labelled note's 10 ms cells, cut into fifths
    from its start to its end, and how many of them the estimated roll covers."""
    out = np.zeros((len(LENGTH_BINS_S) - 1, FIFTHS, 2), np.int64)
    num_frames = len(est_TxK)
    for (start, end), pitch in zip(ref_int, ref_pitch, strict=True):
        first, last = int(np.ceil(start / GRID_S)), min(int(np.ceil(end / GRID_S)), num_frames)
        if last <= first:
            continue
        edges = first + (last - first) * np.arange(FIFTHS + 1) // FIFTHS
        covered = est_TxK[first:last, int(pitch)]
        k = length_bin(end - start)
        for f in range(FIFTHS):
            part = covered[edges[f] - first : edges[f + 1] - first]
            out[k, f] += (part.sum(), len(part))
    return out


def print_timing(timed: list, fifths_BxFx2: np.ndarray) -> None:
    """The timing summary: matched notes' onset and end errors, and recall by fifth."""
    if not timed:
        print("\nno matched notes: no timing")
        return
    bin_M, onset_M, end_M = (np.array(c) for c in zip(*timed, strict=True))
    pct = (10, 50, 90)
    print(
        f"\nmatched notes ({len(onset_M):,}): onset error median {np.median(onset_M) * 1000:+.1f}"
        f" ms (10-90 %: {np.percentile(onset_M, 10) * 1000:+.1f} .. "
        f"{np.percentile(onset_M, 90) * 1000:+.1f} ms)"
    )
    print(f"{'label length':>14s} {'notes':>7s} {'end error 10/50/90 % (s)':>26s}  recall by fifth")
    for k in range(len(LENGTH_BINS_S) - 1):
        lo, hi = LENGTH_BINS_S[k], LENGTH_BINS_S[k + 1]
        name = f"{lo:g}-{hi:g} s" if np.isfinite(hi) else f">= {lo:g} s"
        ends = end_M[bin_M == k]
        errors = " ".join(f"{x:+.2f}" for x in np.percentile(ends, pct)) if len(ends) else "-"
        covered, cells = fifths_BxFx2[k, :, 0], np.maximum(fifths_BxFx2[k, :, 1], 1)
        recall = " ".join(f"{x:.2f}" for x in covered / cells)
        print(f"{name:>14s} {len(ends):7,} {errors:>26s}  {recall}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", help="a report folder with <piece_id>.mid files")
    parser.add_argument("musicnet_dir", help="the folder the report scored (its test split)")
    args = parser.parse_args(argv)
    frames, notes = np.zeros(3, np.int64), np.zeros(3, np.int64)
    errors = dict.fromkeys((kind for kind, _, _ in ERROR_KINDS), 0)
    timed, fifths_BxFx2 = [], np.zeros((len(LENGTH_BINS_S) - 1, FIFTHS, 2), np.int64)
    print(f"{'piece':40s} {'note F1':>8s} {'frame F1':>9s}")
    for rec in musicnet.list_recordings(args.musicnet_dir, "test"):
        rate, num_samples = audio.audio_info(rec.audio_path)
        num_frames = int(num_samples / rate / GRID_S) + 1
        ref = rec.read_notes(rate)
        ref_int = np.array([(n.start_s, n.end_s) for n in ref]).reshape(-1, 2)
        ref_pitch = np.array([n.pitch for n in ref], np.int64)
        path = os.path.join(args.report_dir, f"{musicnet.piece_id_of(rec.name)}.mid")
        est = [n for i in pretty_midi.PrettyMIDI(path).instruments for n in i.notes]
        est_int = np.array([(n.start, n.end) for n in est]).reshape(-1, 2)
        est_pitch = np.array([n.pitch for n in est], np.int64)
        ref_TxK = roll(ref_int, ref_pitch, num_frames)
        est_TxK = roll(est_int, est_pitch, num_frames)
        counts = frame_counts(ref_TxK, est_TxK)
        pairs = match(ref_int, ref_pitch, est_int, est_pitch)
        note_counts = np.array([len(pairs), len(est) - len(pairs), len(ref) - len(pairs)])
        refs, ests = sorted({i for i, _ in pairs}), sorted({j for _, j in pairs})
        piece_errors = frame_errors(
            ref_TxK,
            est_TxK,
            roll(ref_int[refs], ref_pitch[refs], num_frames),
            roll(est_int[ests], est_pitch[ests], num_frames),
        )
        for kind, value in piece_errors.items():
            errors[kind] += value
        timed += timing(ref_int, est_int, pairs)
        fifths_BxFx2 += recall_by_fifth(ref_int, ref_pitch, est_TxK)
        frames += counts
        notes += note_counts
        print(f"{rec.name[:40]:40s} {f1(*note_counts):8.3f} {f1(*counts):9.3f}")
    print(f"{'pooled':40s} {f1(*notes):8.3f} {f1(*frames):9.3f}")
    tp, fp, fn = (int(x) for x in frames)
    print(f"\nframe errors ({fn:,} missed, {fp:,} false; a 10 ms cell each):")
    for kind, what, gone in ERROR_KINDS:
        total = fn if kind in MISSED_KINDS else fp
        share = errors[kind] / max(total, 1)
        print(
            f"  {what:32s} {errors[kind]:>9,} ({share:4.0%}): frame F1 "
            f"{without(frames, errors, kind):.3f} if {gone}"
        )
    print_timing(timed, fifths_BxFx2)


if __name__ == "__main__":
    main()
