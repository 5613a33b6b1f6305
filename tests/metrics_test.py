"""Tests of jaxnotes.metrics against hand counts, sklearn and mir_eval."""

import warnings
from collections.abc import Sequence

import mir_eval
import numpy as np
from absl.testing import absltest, parameterized
from sklearn.metrics import average_precision_score

from jaxnotes.data import labels
from jaxnotes.evaluate import metrics, note_metrics

# 4 real frames + 1 padding frame, 3 pitches.
PROBS = np.array(
    [
        [0.9, 0.1, 0.0],  # ref [1,0,0]: right at 0.5 and at 0.3
        [0.4, 0.6, 0.0],  # ref [1,1,0]: 1 wrong at 0.5, right at 0.3
        [0.0, 0.0, 0.0],  # ref [0,0,0]: silence predicted silent: right
        [0.35, 0.7, 0.8],  # ref [0,0,1]: 1 wrong at 0.5, 2 wrong at 0.3
        [0.9, 0.9, 0.9],  # padding: must not count
    ]
)
REF = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32)
MASK = np.array([1, 1, 1, 1, 0], np.float32)


class ExactFrameAccuracyTest(parameterized.TestCase):
    def test_hand_counts(self):
        """Thresholds, allowed errors or the padding mask are applied wrongly."""
        counts = metrics.exact_frame_counts(
            PROBS, REF, MASK, thresholds=(0.5, 0.3), allowed_errors=(0, 1, 2)
        )
        self.assertEqual(counts.total, 4)
        np.testing.assert_array_equal(counts.correct_KxE, [[2, 4, 4], [3, 3, 4]])
        acc = counts.as_dict()
        self.assertAlmostEqual(acc["exact_frame_acc@t=0.5,e=0"], 0.5)
        self.assertAlmostEqual(acc["exact_frame_acc@t=0.3,e=1"], 0.75)

    def test_threshold_is_inclusive(self):
        """A probability equal to the threshold counts as off (the original used p >= t: on)."""
        counts = metrics.exact_frame_counts([[0.5]], [[1]], thresholds=(0.5,))
        self.assertEqual(counts.correct_KxE[0, 0], 1)

    def test_counts_add_across_batches(self):
        """Accuracy depends on how frames are split into batches (means instead of counts)."""
        rng = np.random.default_rng(0)
        probs, ref = rng.random((3, 7, 5)), rng.random((3, 7, 5)) > 0.7
        mask = np.ones((3, 7))
        mask[2, 4:] = 0
        kw = dict(thresholds=(0.2, 0.5), allowed_errors=(0, 2))
        whole = metrics.exact_frame_counts(probs, ref, mask, **kw)
        parts = metrics.exact_frame_counts(probs[:1], ref[:1], mask[:1], **kw)
        parts += metrics.exact_frame_counts(probs[1:], ref[1:], mask[1:], **kw)
        np.testing.assert_array_equal(whole.correct_KxE, parts.correct_KxE)
        self.assertEqual(whole.total, parts.total)
        self.assertEqual(whole.total, 18)

    @parameterized.parameters(1.5, -0.1, "0.5", True, None)
    def test_bad_threshold_names_the_config_field(self, bad):
        """A threshold outside [0, 1] is accepted silently (the original ignored the flag)."""
        with self.assertRaisesRegex(ValueError, r"config\.eval\.thresholds"):
            metrics.exact_frame_counts(PROBS, REF, thresholds=(0.5, bad))

    def test_empty_thresholds_rejected(self):
        """An empty threshold list yields no accuracy at all without saying why."""
        with self.assertRaisesRegex(ValueError, r"config\.eval\.thresholds"):
            metrics.validate_thresholds(())

    @parameterized.parameters(-1, 1.5, "1", False)
    def test_bad_allowed_errors_name_the_config_field(self, bad):
        """Negative or fractional allowed errors are accepted silently."""
        with self.assertRaisesRegex(ValueError, r"config\.eval\.allowed_errors"):
            metrics.exact_frame_counts(PROBS, REF, allowed_errors=(0, bad))


class PitchClassTest(absltest.TestCase):
    def test_fold_is_modulo_12(self):
        """Folding groups neighbouring semitones (the original's defect) instead of octaves."""
        pitches = np.arange(21, 109)
        roll = np.zeros((1, 88))
        roll[0, 60 - 21] = 1  # C4
        roll[0, 69 - 21] = 0.7  # A4
        roll[0, 45 - 21] = 0.9  # A2
        folded = labels.fold_pitch_classes(roll, pitches)
        self.assertEqual(folded.shape, (1, 12))
        expected = np.zeros(12)
        expected[0], expected[9] = 1, 0.9
        np.testing.assert_allclose(folded[0], expected)

    def test_octave_error_is_right_in_pitch_classes(self):
        """Pitch-class accuracy does not forgive octave errors or forgives semitone errors."""
        pitches = [60, 61, 72]
        ref = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]])
        probs = np.array([[0, 0, 0.9], [0, 0.9, 0], [0, 0.9, 0.9]])  # octave, semitone, extra C
        pc = metrics.pitch_class_frame_counts(probs, ref, pitches, allowed_errors=(0, 1))
        np.testing.assert_array_equal(pc.correct_KxE, [[1, 2]])
        exact = metrics.exact_frame_counts(probs, ref, allowed_errors=(0, 1))
        np.testing.assert_array_equal(exact.correct_KxE, [[0, 1]])


class FrameMetricsTest(absltest.TestCase):
    def test_hand_counts(self):
        """TP/FP/FN or mir_eval's substitution/miss/false-alarm counts are wrong."""
        c = metrics.frame_counts(PROBS, REF, MASK, threshold=0.5)
        # Frames: tp 1/1/0/1, n_est 1/1/0/2, n_ref 1/2/0/1.
        self.assertEqual((c.tp, c.fp, c.fn), (3, 1, 1))
        self.assertEqual((c.substitutions, c.misses, c.false_alarms), (0, 1, 1))
        self.assertAlmostEqual(c.f1, 0.75)

    def test_counts_equal_mir_eval_multipitch(self):
        """Count-based frame metrics disagree with mir_eval.multipitch on a toy roll."""
        rng = np.random.default_rng(1)
        pitches = np.array([40, 41, 52, 60, 64, 67])
        probs, ref = rng.random((30, 6)), (rng.random((30, 6)) > 0.6).astype(np.float32)
        for threshold in (0.3, 0.5, 0.8):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = mir_eval_frame_metrics(probs, ref, pitches, 43.0, threshold=threshold)
            got = metrics.frame_counts(probs, ref, threshold=threshold).as_dict()
            self.assertEqual(set(got), set(expected))
            for name in expected:
                self.assertAlmostEqual(got[name], expected[name], places=12, msg=name)

    def test_wrapper_calls_mir_eval_on_the_roll(self):
        """The roll -> (times, Hz lists) conversion feeds mir_eval wrong frequencies."""
        times, freqs = metrics.roll_to_multipitch([[1, 0], [0, 1]], [69, 81], 10.0)
        np.testing.assert_allclose(times, [0.0, 0.1])
        np.testing.assert_allclose(freqs[0], [440.0])
        np.testing.assert_allclose(freqs[1], [880.0])
        out = mir_eval_frame_metrics([[0.9, 0.0], [0.9, 0.0]], [[1, 0], [0, 1]], [69, 81], 10.0)
        ref = mir_eval.multipitch.evaluate(
            times, freqs, times, [np.array([440.0]), np.array([440.0])]
        )
        self.assertAlmostEqual(out["frame/precision"], ref["Precision"])
        self.assertAlmostEqual(out["frame/total_error"], ref["Total Error"])

    def test_choose_threshold_maximises_f1(self):
        """The tuned threshold is not the one with the best frame F1."""
        probs = np.array([[0.9, 0.6, 0.35, 0.2]])
        ref = np.array([[1, 1, 1, 0]])
        counts = metrics.frame_counts_by_threshold(probs, ref, thresholds=(0.1, 0.3, 0.5, 0.7))
        counts = metrics.add_counts(counts, counts)  # summing batches keeps the argmax
        threshold, f1 = metrics.choose_threshold(counts)
        self.assertEqual(threshold, 0.3)
        self.assertAlmostEqual(f1, 1.0)

    def test_choose_threshold_breaks_ties_towards_half(self):
        """Tied thresholds give an arbitrary (dict-order dependent) choice."""
        counts = {0.2: metrics.FrameCounts(tp=1), 0.6: metrics.FrameCounts(tp=1)}
        self.assertEqual(metrics.choose_threshold(counts)[0], 0.6)


class AveragePrecisionTest(absltest.TestCase):
    def test_pooled_and_per_piece_equal_sklearn(self):
        """Micro AP is averaged per piece, or chunks/padding of a piece are mixed up."""
        rng = np.random.default_rng(2)
        acc = metrics.APAccumulator()
        pieces = {}
        for piece_id, num_frames in ((7, 40), (3, 25), (11, 33)):
            probs, ref = rng.random((num_frames, 8)), rng.random((num_frames, 8)) > 0.8
            pieces[piece_id] = (probs, ref)
            # Two chunks, the second padded with 5 frames of garbage and mask 0.
            half = num_frames // 2
            acc.add(piece_id, probs[:half], ref[:half])
            pad_probs = np.concatenate([probs[half:], np.ones((5, 8))])
            pad_ref = np.concatenate([ref[half:], np.ones((5, 8))])
            mask = np.r_[np.ones(num_frames - half), np.zeros(5)]
            acc.add(piece_id, pad_probs, pad_ref, mask)
        all_probs = np.concatenate([p for p, _ in pieces.values()])
        all_ref = np.concatenate([r for _, r in pieces.values()])
        expected = average_precision_score(all_ref.ravel(), all_probs.ravel())
        self.assertAlmostEqual(acc.pooled_ap(), expected, places=6)
        per_piece = acc.per_piece_ap()
        self.assertEqual(list(per_piece), [7, 3, 11])
        for piece_id, (probs, ref) in pieces.items():
            want = average_precision_score(ref.ravel(), probs.ravel())
            self.assertAlmostEqual(per_piece[piece_id], want, places=6)
        self.assertNotAlmostEqual(acc.pooled_ap(), np.mean(list(per_piece.values())), places=6)
        curve = acc.pr_curve(max_points=50)
        self.assertLessEqual(len(curve["recall"]), 52)
        self.assertEqual(curve["recall"][-1], 0.0)
        self.assertEqual(curve["recall"][0], 1.0)

    def test_silent_piece_is_nan(self):
        """A piece without reference notes gets sklearn's misleading AP of 0."""
        acc = metrics.APAccumulator()
        acc.add("silent", np.random.default_rng(0).random((4, 3)), np.zeros((4, 3)))
        self.assertTrue(np.isnan(acc.per_piece_ap()["silent"]))


class NoteMetricsTest(absltest.TestCase):
    REF_INTERVALS = np.array([[0.0, 1.0], [1.0, 1.5], [2.0, 3.0], [2.0, 2.5]])
    REF_PITCHES = np.array([60, 62, 64, 67])
    EST_INTERVALS = np.array([[0.03, 1.0], [1.07, 1.5], [2.01, 2.3], [2.0, 2.5], [4.0, 4.5]])
    EST_PITCHES = np.array([60, 62, 64, 67, 70])

    def test_equal_mir_eval(self):
        """Note P/R/F1 disagree with mir_eval (onset-only or onset+offset)."""
        for with_offsets, offset_ratio in ((False, None), (True, 0.2)):
            counts = note_metrics.note_counts(
                self.REF_INTERVALS,
                self.REF_PITCHES,
                self.EST_INTERVALS,
                self.EST_PITCHES,
                with_offsets=with_offsets,
            )
            p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
                self.REF_INTERVALS,
                mir_eval.util.midi_to_hz(self.REF_PITCHES),
                self.EST_INTERVALS,
                mir_eval.util.midi_to_hz(self.EST_PITCHES),
                offset_ratio=offset_ratio,
            )
            got = counts.as_dict()
            self.assertAlmostEqual(got["note/precision"], p)
            self.assertAlmostEqual(got["note/recall"], r)
            self.assertAlmostEqual(got["note/f1"], f)
        # By hand: onset-only matches 60, 64, 67 (62 is 70 ms late); with offsets 64 ends early.
        onset = note_metrics.note_counts(
            self.REF_INTERVALS, self.REF_PITCHES, self.EST_INTERVALS, self.EST_PITCHES
        )
        self.assertEqual((onset.n_ref, onset.n_est, onset.matched), (4, 5, 3))

    def test_pooled_is_sum_of_counts(self):
        """Pooling pieces averages F1 instead of summing matched counts, or empties crash."""
        a = note_metrics.note_counts(
            self.REF_INTERVALS, self.REF_PITCHES, self.EST_INTERVALS, self.EST_PITCHES
        )
        b = note_metrics.note_counts(np.zeros((0, 2)), [], self.EST_INTERVALS[:2], [60, 62])
        self.assertEqual((b.n_ref, b.n_est, b.matched), (0, 2, 0))
        pooled = (a + b).as_dict()
        self.assertAlmostEqual(pooled["note/precision"], 3 / 7)
        self.assertAlmostEqual(pooled["note/recall"], 3 / 4)
        mean = note_metrics.mean_over_pieces({1: a.as_dict(), 2: b.as_dict()})
        self.assertAlmostEqual(mean["note/precision"], (3 / 5 + 0) / 2)


if __name__ == "__main__":
    absltest.main()


def mir_eval_frame_metrics(
    probs_TxP: np.ndarray,
    ref_TxP: np.ndarray,
    pitches_P: Sequence[int],
    frames_per_second: float,
    *,
    threshold: float = 0.5,
) -> dict[str, float]:
    """mir_eval.multipitch.metrics of one piece at `threshold`, named as `FrameCounts`: the
    reference `metrics.frame_counts` must equal (mir_eval is slow, per-frame Python). For pitch classes (P = 12) pass the decoder's pitches
    (`60 + pc`, `decode.output_pitches`), so reference and estimate share one octave.
    """
    (threshold,) = metrics.validate_thresholds((threshold,))
    ref_times, ref_freqs = metrics.roll_to_multipitch(ref_TxP, pitches_P, frames_per_second)
    est_times, est_freqs = metrics.roll_to_multipitch(
        np.asarray(probs_TxP) >= threshold, pitches_P, frames_per_second
    )
    scores = mir_eval.multipitch.metrics(ref_times, ref_freqs, est_times, est_freqs)
    names = ("precision", "recall", "accuracy")
    names += ("substitution_error", "miss_error", "false_alarm_error", "total_error")
    out = {f"frame/{name}": float(v) for name, v in zip(names, scores[: len(names)], strict=True)}
    p, r = out["frame/precision"], out["frame/recall"]
    out["frame/f1"] = 2 * p * r / (p + r) if p + r else 0.0
    return out
