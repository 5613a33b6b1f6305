"""benchmarks/grid_scores.py: the 10 ms frame roll and where its frame errors come from."""

import numpy as np

from benchmarks import grid_scores


def _notes(rows):
    rows = np.array(rows, np.float64).reshape(-1, 3)
    return rows[:, :2], rows[:, 2].astype(np.int64)


def test_frame_errors_by_the_notes_they_belong_to():
    """Times sit mid-cell, so each note's 10 ms cells are plain to count: a note matched
    but cut short, one matched but late and too long, a missed note and a false one."""
    ref_int, ref_pitch = _notes(
        [(0.005, 1.005, 60), (0.505, 1.005, 64), (2.005, 2.505, 67)]  # cells 1-100, 51-100, 201-250
    )
    est_int, est_pitch = _notes(
        [(0.005, 0.605, 60), (0.525, 1.305, 64), (3.005, 3.205, 72)]  # 1-60, 53-130, 301-320
    )
    pairs = grid_scores.match(ref_int, ref_pitch, est_int, est_pitch)
    assert sorted(pairs) == [(0, 0), (1, 1)]
    num_frames = 400
    ref_TxK = grid_scores.roll(ref_int, ref_pitch, num_frames)
    est_TxK = grid_scores.roll(est_int, est_pitch, num_frames)
    errors = grid_scores.frame_errors(
        ref_TxK,
        est_TxK,
        grid_scores.roll(ref_int[[0, 1]], ref_pitch[[0, 1]], num_frames),  # the matched ones
        grid_scores.roll(est_int[[0, 1]], est_pitch[[0, 1]], num_frames),
    )
    assert errors == {
        "missed_notes": 50,  # pitch 67, all of it
        "matched_missed": 40 + 2,  # pitch 60's last 40 cells, pitch 64's first 2
        "false_notes": 20,  # pitch 72
        "matched_false": 30,  # pitch 64 past its label
    }
    frames = grid_scores.frame_counts(ref_TxK, est_TxK)
    assert frames.tolist() == [60 + 48, 50, 92]  # tp, fp, fn: every error in one kind
    assert grid_scores.without(frames, errors, "missed_notes") == grid_scores.f1(158, 50, 42)
    assert grid_scores.without(frames, errors, "matched_false") == grid_scores.f1(108, 20, 92)


def test_timing_of_matched_notes_and_recall_by_fifth():
    """Pitch 60 (1.2 s) covered for its first 72 cells, pitch 64 (0.6 s) from its third cell
    on and 0.2 s too long, pitch 67 (0.6 s) missed."""
    ref_int, ref_pitch = _notes([(0.005, 1.205, 60), (0.505, 1.105, 64), (2.005, 2.605, 67)])
    est_int, est_pitch = _notes([(0.005, 0.725, 60), (0.525, 1.305, 64), (3.005, 3.205, 72)])
    pairs = sorted(grid_scores.match(ref_int, ref_pitch, est_int, est_pitch))
    timed = grid_scores.timing(ref_int, est_int, pairs)
    assert [k for k, _, _ in timed] == [3, 2]  # 1-2 s and 0.5-1 s labels
    np.testing.assert_allclose([(on, end) for _, on, end in timed], [(0, -0.48), (0.02, 0.2)])
    est_TxK = grid_scores.roll(est_int, est_pitch, 400)
    fifths = grid_scores.recall_by_fifth(ref_int, ref_pitch, est_TxK)
    assert fifths[3].tolist() == [[24, 24], [24, 24], [24, 24], [0, 24], [0, 24]]
    # 64's and 67's fifths of 12 cells each: 64's first misses 2, 67 is missed.
    assert fifths[2].tolist() == [[10, 24], [12, 24], [12, 24], [12, 24], [12, 24]]
    assert fifths[[0, 1, 4]].sum() == 0
    assert grid_scores.length_bin(0.25) == 1 and grid_scores.length_bin(5.0) == 4
