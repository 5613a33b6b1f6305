"""The field's frame metrics, computed on the host, exact to the libraries.

Owns every frame-level number jaxnotes reports (see shared MUSICNET.md and ORIGIN.md):

- the original project's exact-frame accuracy (a frame is right when at most `e` of its
  pitches are wrong at probability threshold `t`), on pitches and on pitch classes;
- Thickstun's micro average precision over every (frame, pitch) cell of a split pooled
  (`sklearn.metrics.average_precision_score`), plus per-piece AP and the split's
  precision-recall curve;
- mir_eval multipitch frame metrics (precision, recall, accuracy, total error) and frame F1,
  both through `mir_eval.multipitch.metrics` and as additive counts for threshold tuning;
- the names of the figures every test prints and every table shows (`HEADLINE`, `SUMMARY`).

The note metrics (mir_eval.transcription) live in `note_metrics`. Everything aggregated
across batches or pieces is kept as counts, so the sum over batches equals one big batch
exactly. Must not import data, model or loop code: callers pass plain arrays, and the MIDI
pitch of each output (`pitches_P`) instead of a `Meta`.

Legend: T frames (any leading batch dims are flattened into T), P pitches (outputs).
Reference rolls are 0/1; a prediction is "on" when `prob >= threshold`, as in the
original project.
"""

import dataclasses
import numbers
from collections.abc import Iterable, Mapping, Sequence

import mir_eval
import numpy as np
from sklearn import metrics as sk_metrics

from jaxnotes.data import labels

# Candidate frame thresholds for `choose_threshold` when the caller gives none.
# The figures a test prints (HEADLINE) and the four every table shows (SUMMARY): keys of
# results.json's "pooled" and "pieces" entries.
SUMMARY = ("frame/ap", "frame/f1", "note/f1", "note_offset/f1")
HEADLINE = (
    *SUMMARY,
    "exact_frame_acc@t=0.5,e=0",
    "exact_frame_acc@t=0.5,e=1",
    "pitch_class_acc@t=0.5,e=0",
)
DEFAULT_THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def validate_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Returns the thresholds as floats; raises ValueError unless each lies in [0, 1]."""
    return _validated(
        thresholds,
        numbers.Real,
        lambda t: 0.0 <= float(t) <= 1.0,
        float,
        "config.eval.thresholds",
        "probabilities in [0, 1]",
    )


def validate_allowed_errors(allowed_errors: Iterable[int]) -> tuple[int, ...]:
    """Returns the allowed errors as ints; raises ValueError unless each is an int >= 0."""
    return _validated(
        allowed_errors,
        numbers.Integral,
        lambda e: e >= 0,
        int,
        "config.eval.allowed_errors",
        "non-negative integers",
    )


def _validated(values, kind, ok, cast, field: str, what: str) -> tuple:
    """`values` (one value or several) as a tuple of `cast`, each a `kind` passing `ok`."""
    values = (values,) if isinstance(values, kind) else tuple(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, kind) or not ok(v):
            raise ValueError(f"{field} must be {what}; got {v!r} in {values!r}")
    if not values:
        raise ValueError(f"{field} is empty; give at least one value ({what})")
    return tuple(cast(v) for v in values)


def _flatten(probs_TxP, ref_TxP, mask_T):
    """Flattens leading dims into T and keeps only real (mask = 1) frames."""
    probs_TxP = np.asarray(probs_TxP)
    ref_TxP = np.asarray(ref_TxP)
    if probs_TxP.shape != ref_TxP.shape:
        raise ValueError(f"prediction shape {probs_TxP.shape} != reference {ref_TxP.shape}")
    num_pitches = probs_TxP.shape[-1]
    probs_TxP = probs_TxP.reshape(-1, num_pitches)
    ref_TxP = ref_TxP.reshape(-1, num_pitches) >= 0.5
    if mask_T is not None:
        mask_T = np.asarray(mask_T).reshape(-1)
        if mask_T.shape[0] != probs_TxP.shape[0]:
            raise ValueError(f"mask has {mask_T.shape[0]} frames, predictions {len(probs_TxP)}")
        keep_T = mask_T > 0.5
        probs_TxP, ref_TxP = probs_TxP[keep_T], ref_TxP[keep_T]
    return probs_TxP, ref_TxP


@dataclasses.dataclass
class ExactFrameCounts:
    """The original project's accuracy as counts: frames right at each (threshold, errors).

    Attributes:
      thresholds: the K probability thresholds.
      allowed_errors: the E numbers of wrong pitches a frame may have and still count.
      correct_KxE: frames with at most `allowed_errors[e]` wrong pitches at `thresholds[k]`.
      total: real frames seen (silence included, padding excluded).
    """

    thresholds: tuple[float, ...]
    allowed_errors: tuple[int, ...]
    correct_KxE: np.ndarray
    total: int = 0

    def __add__(self, other: "ExactFrameCounts") -> "ExactFrameCounts":
        if (self.thresholds, self.allowed_errors) != (other.thresholds, other.allowed_errors):
            raise ValueError("cannot add accuracy counts made with different settings")
        return ExactFrameCounts(
            self.thresholds,
            self.allowed_errors,
            self.correct_KxE + other.correct_KxE,
            self.total + other.total,
        )

    def accuracy_KxE(self) -> np.ndarray:
        """Fraction of frames right; NaN when no frame was seen."""
        if self.total == 0:
            return np.full(self.correct_KxE.shape, np.nan)
        return self.correct_KxE / self.total

    def as_dict(self, name: str = "exact_frame_acc") -> dict[str, float]:
        """Flat `{name@t=0.5,e=0: accuracy}` dict (keys without spaces)."""
        acc_KxE = self.accuracy_KxE()
        return {
            f"{name}@t={t:g},e={e}": float(acc_KxE[k, j])
            for k, t in enumerate(self.thresholds)
            for j, e in enumerate(self.allowed_errors)
        }


def exact_frame_counts(
    probs_TxP: np.ndarray,
    ref_TxP: np.ndarray,
    mask_T: np.ndarray | None = None,
    *,
    thresholds: Iterable[float] = (0.5,),
    allowed_errors: Iterable[int] = (0,),
) -> ExactFrameCounts:
    """Counts frames whose whole on/off vector is right, up to `allowed_errors` wrong pitches.

    Args:
      probs_TxP: predicted probabilities (leading dims, e.g. B x T, are flattened).
      ref_TxP: reference roll, 0/1.
      mask_T: 1 for real frames, 0 for padding; every real frame counts, silent or not.
      thresholds: probabilities in [0, 1]; a pitch is predicted on when `prob >= t`.
      allowed_errors: non-negative ints; a frame is right when at most e pitches are wrong.

    Returns:
      ExactFrameCounts, which add across batches and pieces exactly.
    """
    thresholds = validate_thresholds(thresholds)
    allowed_errors = validate_allowed_errors(allowed_errors)
    probs_TxP, ref_TxP = _flatten(probs_TxP, ref_TxP, mask_T)
    correct_KxE = np.zeros((len(thresholds), len(allowed_errors)), np.int64)
    for k, t in enumerate(thresholds):
        wrong_T = ((probs_TxP >= t) != ref_TxP).sum(axis=-1)
        for j, e in enumerate(allowed_errors):
            correct_KxE[k, j] = int((wrong_T <= e).sum())
    return ExactFrameCounts(thresholds, allowed_errors, correct_KxE, int(len(probs_TxP)))


def pitch_class_frame_counts(
    probs_TxP: np.ndarray,
    ref_TxP: np.ndarray,
    pitches_P: Sequence[int],
    mask_T: np.ndarray | None = None,
    *,
    thresholds: Iterable[float] = (0.5,),
    allowed_errors: Iterable[int] = (0,),
) -> ExactFrameCounts:
    """The exact-frame accuracy on pitch classes (pitch mod 12, octaves ORed).

    This is the real pitch-class accuracy, not the original's "accuracy in notes", which
    grouped 8 neighbouring semitones. Name it with `.as_dict("pitch_class_acc")`.
    """
    return exact_frame_counts(
        labels.fold_pitch_classes(probs_TxP, pitches_P),
        labels.fold_pitch_classes(np.asarray(ref_TxP) >= 0.5, pitches_P),
        mask_T,
        thresholds=thresholds,
        allowed_errors=allowed_errors,
    )


@dataclasses.dataclass
class FrameCounts:
    """Additive frame counts giving mir_eval.multipitch's pooled numbers exactly.

    With n_ref(t), n_est(t), tp(t) the reference, estimated and correct pitches of frame t,
    the error counts are summed over frames as in `mir_eval.multipitch.compute_err_score`:
    substitutions min(n_ref, n_est) - tp, misses max(n_ref - n_est, 0), false alarms
    max(n_est - n_ref, 0). Pooled over pieces they equal mir_eval on the concatenated split.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    substitutions: int = 0
    misses: int = 0
    false_alarms: int = 0

    def __add__(self, other: "FrameCounts") -> "FrameCounts":
        return FrameCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self))
        )

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    @property
    def accuracy(self) -> float:
        """mir_eval's (Dixon's) accuracy TP / (TP + FP + FN); not the exact-frame accuracy."""
        denominator = self.tp + self.fp + self.fn
        return self.tp / denominator if denominator else 0.0

    def as_dict(self, prefix: str = "frame") -> dict[str, float]:
        """mir_eval-named numbers; errors are 0 when the reference is empty, as mir_eval."""
        n_ref = self.tp + self.fn
        errors = (self.substitutions, self.misses, self.false_alarms)
        e_sub, e_miss, e_fa = (x / n_ref if n_ref else 0.0 for x in errors)
        return {
            f"{prefix}/precision": self.precision,
            f"{prefix}/recall": self.recall,
            f"{prefix}/f1": self.f1,
            f"{prefix}/accuracy": self.accuracy,
            f"{prefix}/substitution_error": e_sub,
            f"{prefix}/miss_error": e_miss,
            f"{prefix}/false_alarm_error": e_fa,
            f"{prefix}/total_error": e_sub + e_miss + e_fa,
        }


def frame_counts(
    probs_TxP: np.ndarray,
    ref_TxP: np.ndarray,
    mask_T: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
) -> FrameCounts:
    """Frame TP/FP/FN and mir_eval error counts at one threshold (`prob >= threshold`)."""
    (threshold,) = validate_thresholds((threshold,))
    probs_TxP, ref_TxP = _flatten(probs_TxP, ref_TxP, mask_T)
    est_TxP = probs_TxP >= threshold
    tp_T = (est_TxP & ref_TxP).sum(axis=-1)
    n_est_T = est_TxP.sum(axis=-1)
    n_ref_T = ref_TxP.sum(axis=-1)
    return FrameCounts(
        tp=int(tp_T.sum()),
        fp=int((n_est_T - tp_T).sum()),
        fn=int((n_ref_T - tp_T).sum()),
        substitutions=int((np.minimum(n_ref_T, n_est_T) - tp_T).sum()),
        misses=int(np.maximum(n_ref_T - n_est_T, 0).sum()),
        false_alarms=int(np.maximum(n_est_T - n_ref_T, 0).sum()),
    )


def frame_counts_by_threshold(
    probs_TxP: np.ndarray,
    ref_TxP: np.ndarray,
    mask_T: np.ndarray | None = None,
    *,
    thresholds: Iterable[float] = DEFAULT_THRESHOLD_GRID,
) -> dict[float, FrameCounts]:
    """`frame_counts` at each threshold; add the dicts over batches with `add_counts`."""
    return {
        t: frame_counts(probs_TxP, ref_TxP, mask_T, threshold=t)
        for t in validate_thresholds(thresholds)
    }


def add_counts(
    a: Mapping[float, FrameCounts], b: Mapping[float, FrameCounts]
) -> dict[float, FrameCounts]:
    """Adds two `frame_counts_by_threshold` results (same thresholds) key by key."""
    if set(a) != set(b):
        raise ValueError(f"threshold sets differ: {sorted(a)} vs {sorted(b)}")
    return {t: a[t] + b[t] for t in a}


def choose_threshold(counts_by_threshold: Mapping[float, FrameCounts]) -> tuple[float, float]:
    """Picks the frame threshold with the best frame F1; returns (threshold, f1).

    The counts must come from VALIDATION data: choosing on test inflates every test number.
    That is the caller's responsibility; this function cannot tell the splits apart. Ties
    go to the threshold closest to 0.5 (then the lower one), so the choice is deterministic.
    """
    if not counts_by_threshold:
        raise ValueError("no thresholds to choose from")
    best = max(
        counts_by_threshold.items(),
        key=lambda item: (item[1].f1, -abs(item[0] - 0.5), -item[0]),
    )
    return float(best[0]), float(best[1].f1)


def roll_to_multipitch(
    roll_TxP: np.ndarray, pitches_P: Sequence[int], frames_per_second: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 0/1 roll as mir_eval.multipitch's (times, frequency lists): t / fps and Hz."""
    roll_TxP = np.asarray(roll_TxP) >= 0.5
    freqs_P = mir_eval.util.midi_to_hz(np.asarray(pitches_P, dtype=np.float64))
    times_T = np.arange(len(roll_TxP)) / frames_per_second
    return times_T, [freqs_P[row] for row in roll_TxP]


class APAccumulator:
    """Collects (score, label) cells per piece for Thickstun's micro average precision.

    Pooled AP is `sklearn.metrics.average_precision_score` over every (frame, pitch) cell
    of every piece concatenated (micro AP, as MusicNet's authors report it). Pieces may be
    added in chunks, in any order. Thickstun scored 128 pitches; cells outside the model's
    P outputs are not scored here (they would be reference-silent in MusicNet anyway).
    """

    def __init__(self):
        self._scores: dict[object, list[np.ndarray]] = {}
        self._labels: dict[object, list[np.ndarray]] = {}

    def add(
        self,
        piece_id,
        probs_TxP: np.ndarray,
        ref_TxP: np.ndarray,
        mask_T: np.ndarray | None = None,
    ) -> None:
        """Adds a piece's (chunk of) frames; padding (mask 0) is dropped."""
        probs_TxP, ref_TxP = _flatten(probs_TxP, ref_TxP, mask_T)
        self._scores.setdefault(piece_id, []).append(probs_TxP.astype(np.float32).ravel())
        self._labels.setdefault(piece_id, []).append(ref_TxP.ravel())

    @property
    def piece_ids(self) -> list:
        return list(self._scores)

    def _cells(self, piece_ids) -> tuple[np.ndarray, np.ndarray]:
        labels = [x for p in piece_ids for x in self._labels[p]]
        scores = [x for p in piece_ids for x in self._scores[p]]
        if not scores:
            return np.zeros(0, bool), np.zeros(0, np.float32)
        return np.concatenate(labels), np.concatenate(scores)

    @staticmethod
    def _ap(labels, scores) -> float:
        # sklearn returns 0 with a warning when nothing is positive; NaN says "undefined".
        if not labels.any():
            return float("nan")
        return float(sk_metrics.average_precision_score(labels, scores))

    def pooled_ap(self) -> float:
        """Micro AP over all cells of all pieces; NaN if the reference is silent."""
        return self._ap(*self._cells(self.piece_ids))

    def per_piece_ap(self) -> dict:
        """AP of each piece on its own cells; NaN for a silent piece."""
        return {p: self._ap(*self._cells([p])) for p in self.piece_ids}

    def pr_curve(self, max_points: int | None = 2000) -> dict[str, np.ndarray]:
        """The pooled precision-recall curve (sklearn), thinned to about `max_points`.

        Returns:
          dict with `precision`, `recall` (decreasing recall, as sklearn) and `thresholds`
          (one fewer entry; sklearn's convention).
        """
        labels, scores = self._cells(self.piece_ids)
        if not labels.any():
            empty = np.zeros(0)
            return {"precision": empty, "recall": empty, "thresholds": empty}
        precision, recall, thresholds = sk_metrics.precision_recall_curve(labels, scores)
        if max_points and len(thresholds) > max_points:
            # Thin evenly but keep both ends, so the picture still spans recall 0..1.
            keep = np.unique(np.linspace(0, len(thresholds) - 1, max_points).astype(int))
            precision = np.append(precision[keep], precision[-1])
            recall = np.append(recall[keep], recall[-1])
            thresholds = thresholds[keep]
        return {"precision": precision, "recall": recall, "thresholds": thresholds}
