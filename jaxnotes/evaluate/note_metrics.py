"""The field's note metrics, computed on the host, exact to mir_eval.

Owns matching one piece's transcribed notes against its reference notes as
`mir_eval.transcription` does, onset-only and onset+offset, as additive counts
(`NoteCounts`), and the unweighted mean of any metric over pieces (MT3's way). The frame
metrics, thresholds and the headline figures' names live in `metrics`. Must not import
data, model or loop code, nor `metrics`: callers pass plain arrays of intervals and MIDI
pitches.

Legend: N notes.
"""

import dataclasses
from collections.abc import Mapping

import mir_eval
import numpy as np


@dataclasses.dataclass
class NoteCounts:
    """Additive note-matching counts (mir_eval.transcription.match_notes).

    Pooled note P/R/F1 over pieces = these counts summed over pieces (micro average), so a
    long piece weighs more than a short one. MT3 instead averages per-piece F1; report both
    (`mean_over_pieces`).
    """

    n_ref: int = 0
    n_est: int = 0
    matched: int = 0

    def __add__(self, other: "NoteCounts") -> "NoteCounts":
        return NoteCounts(
            self.n_ref + other.n_ref, self.n_est + other.n_est, self.matched + other.matched
        )

    def as_dict(self, prefix: str = "note") -> dict[str, float]:
        """precision/recall/f1 as mir_eval computes them (0 when undefined)."""
        precision = self.matched / self.n_est if self.n_est else 0.0
        recall = self.matched / self.n_ref if self.n_ref else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {f"{prefix}/precision": precision, f"{prefix}/recall": recall, f"{prefix}/f1": f1}


def note_counts(
    ref_intervals_Nx2: np.ndarray,
    ref_pitches_N: np.ndarray,
    est_intervals_Nx2: np.ndarray,
    est_pitches_N: np.ndarray,
    *,
    onset_tolerance_s: float = 0.05,
    with_offsets: bool = False,
) -> NoteCounts:
    """Matches one piece's notes as `mir_eval.transcription.precision_recall_f1_overlap`.

    Args:
      ref_intervals_Nx2, est_intervals_Nx2: [start, end) in seconds.
      ref_pitches_N, est_pitches_N: MIDI pitches (converted to Hz for mir_eval).
      onset_tolerance_s: onset window (mir_eval's default 50 ms).
      with_offsets: False: onset-only (`offset_ratio=None`); True: onset+offset with
        mir_eval's default offset_ratio 0.2 and 50 ms minimum offset tolerance.
    """
    ref_intervals_Nx2 = np.asarray(ref_intervals_Nx2, np.float64).reshape(-1, 2)
    est_intervals_Nx2 = np.asarray(est_intervals_Nx2, np.float64).reshape(-1, 2)
    n_ref, n_est = len(ref_intervals_Nx2), len(est_intervals_Nx2)
    if n_ref == 0 or n_est == 0:
        return NoteCounts(n_ref, n_est, 0)
    matching = mir_eval.transcription.match_notes(
        ref_intervals_Nx2,
        mir_eval.util.midi_to_hz(np.asarray(ref_pitches_N, np.float64)),
        est_intervals_Nx2,
        mir_eval.util.midi_to_hz(np.asarray(est_pitches_N, np.float64)),
        onset_tolerance=onset_tolerance_s,
        offset_ratio=0.2 if with_offsets else None,
    )
    return NoteCounts(n_ref, n_est, len(matching))


def mean_over_pieces(per_piece: Mapping[object, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric over pieces (MT3's way), NaNs ignored."""
    names = dict.fromkeys(name for metrics in per_piece.values() for name in metrics)
    out = {}
    for name in names:
        values = [m[name] for m in per_piece.values() if name in m and not np.isnan(m[name])]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out
