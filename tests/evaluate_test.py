"""Tests of whole-piece evaluation (jaxnotes/scoring.py) with fake models of known outputs."""

import ml_collections
import numpy as np
import pytest

from configs import common
from jaxnotes.data import Meta, labels
from jaxnotes.evaluate import metrics, scoring
from jaxnotes.inference import decode

FPS = 10.0
META = Meta(n_bins=8, n_pitches=4, min_pitch=60, frames_per_second=FPS)


def _piece_notes():
    """Two pieces' labelled notes (pitches 60..63) and their frame rolls."""
    notes = {
        7: [labels.Note(0.0, 1.0, 60), labels.Note(0.5, 1.5, 62), labels.Note(2.0, 2.6, 63)],
        9: [labels.Note(0.2, 0.9, 61), labels.Note(1.0, 1.4, 61)],
    }
    num_frames = {7: 30, 9: 17}
    rolls = {}
    for pid, n in notes.items():
        frames, _ = labels.notes_to_rolls(n, num_frames[pid], FPS)
        rolls[pid] = labels.fold_pitches(frames, 60, 63, False).astype(np.float32)
    return notes, num_frames, rolls


def _onset_rolls(notes, num_frames):
    out = {}
    for pid, n in notes.items():
        _, onsets = labels.notes_to_rolls(n, num_frames[pid], FPS)
        out[pid] = labels.fold_pitches(onsets, 60, 63, False).astype(np.float32)
    return out


def _batches(rolls, chunk=8, batch_size=3, onsets=None):
    """Eval batches as the pipeline makes them: ordered chunks, last batch padded, mask.

    The fake model reads its answer from the cqt: frame probabilities, then (when
    `onsets` is given) onset probabilities side by side along the bin axis.
    """
    rows = []
    for pid in sorted(rolls):
        roll = rolls[pid] if onsets is None else np.concatenate([rolls[pid], onsets[pid]], axis=1)
        for start in range(0, len(roll), chunk):
            part = roll[start : start + chunk]
            frames = np.zeros((chunk, roll.shape[1]), np.float32)
            frames[: len(part)] = part
            mask = np.zeros(chunk, np.float32)
            mask[: len(part)] = 1
            rows.append((frames, mask, pid, start))
    while len(rows) % batch_size:
        rows.append((np.zeros_like(rows[0][0]), np.zeros(chunk, np.float32), 0, 0))
    for i in range(0, len(rows), batch_size):
        group = rows[i : i + batch_size]
        cqt = np.stack([r[0] for r in group])
        frames = cqt[..., : META.n_pitches]
        yield {
            "cqt": cqt,
            "frames": frames,
            "onsets": np.zeros_like(frames),
            "mask": np.stack([r[1] for r in group]),
            "piece_id": np.array([r[2] for r in group], np.int32),
            "start_frame": np.array([r[3] for r in group], np.int32),
        }


def _oracle(cqt_BxTxF):
    frames = cqt_BxTxF[..., : META.n_pitches]
    onsets = cqt_BxTxF[..., META.n_pitches :]
    return frames.copy(), (onsets.copy() if onsets.size else np.zeros_like(frames))


def _eval_config():
    e = common.evaluation()
    e.thresholds = (0.3, 0.5)
    e.allowed_errors = (0, 1)
    return e


def test_stitching_covers_every_frame_once():
    """Chunks are put back at their start frames; padding rows and frames are ignored.

    The model sees each whole piece at once (frames near chunk edges keep their context).
    """
    _, num_frames, rolls = _piece_notes()
    lengths = []

    def predict_piece(cqt_TxF):
        lengths.append(len(cqt_TxF))
        return _oracle(cqt_TxF)

    pieces = scoring.predict_split(predict_piece, _batches(rolls), num_frames)
    assert sorted(lengths) == sorted(num_frames.values())
    assert sorted(pieces) == [7, 9]
    for pid in rolls:
        np.testing.assert_array_equal(pieces[pid].ref_frames_TxP, rolls[pid])
        np.testing.assert_array_equal(pieces[pid].frame_probs_TxP, rolls[pid])


def test_stitching_detects_double_coverage():
    """A frame covered twice (a pipeline bug) is an error, not a silently skewed metric."""
    _, num_frames, rolls = _piece_notes()
    batches = list(_batches(rolls)) * 2
    with pytest.raises(ValueError, match="covered"):
        scoring.predict_split(_oracle, batches, num_frames)


def test_perfect_model_scores_perfectly():
    """An oracle gets AP, frame F1, note F1 and exact accuracy of 1 (aggregation is right)."""
    notes, num_frames, rolls = _piece_notes()
    batches = _batches(rolls, onsets=_onset_rolls(notes, num_frames))
    pieces = scoring.predict_split(_oracle, batches, num_frames)
    e = _eval_config()
    e.gap_join_s = 0.0
    thresholds = {"frame_threshold": 0.5, "onset_threshold": 0.5, "min_note_s": 0.0, "source": ""}
    result, decoded, _ = scoring.score_split(pieces, notes, {}, META, e, thresholds)
    pooled = result["pooled"]
    assert pooled["frame/ap"] == pytest.approx(1.0)
    assert pooled["frame/f1"] == pytest.approx(1.0)
    assert pooled["note/f1"] == pytest.approx(1.0)
    assert pooled["exact_frame_acc@t=0.5,e=0"] == pytest.approx(1.0)
    assert pooled["pieces"] == 2 and pooled["frames"] == 47
    assert len(decoded[7]) == 3


def test_silent_model_counts_silent_frames():
    """A model that predicts nothing is 'right' exactly on the silent frames (all frames count)."""
    notes, num_frames, rolls = _piece_notes()
    pieces = scoring.predict_split(
        lambda c: (np.zeros_like(c), np.zeros_like(c)), _batches(rolls), num_frames
    )
    thresholds = {"frame_threshold": 0.5, "onset_threshold": 0.5, "min_note_s": 0.05, "source": ""}
    result, _, _ = scoring.score_split(pieces, notes, {}, META, _eval_config(), thresholds)
    all_frames = np.concatenate([rolls[7], rolls[9]])
    silent = float((all_frames.sum(axis=1) == 0).mean())
    at_most_one = float((all_frames.sum(axis=1) <= 1).mean())
    assert result["pooled"]["exact_frame_acc@t=0.5,e=0"] == pytest.approx(silent)
    assert result["pooled"]["exact_frame_acc@t=0.5,e=1"] == pytest.approx(at_most_one)
    assert result["pooled"]["frame/f1"] == 0.0 and result["pooled"]["note/f1"] == 0.0


def test_pooled_ap_is_micro_over_pieces():
    """Pooled AP equals sklearn over all cells of all pieces, not the mean of per-piece APs."""
    from sklearn.metrics import average_precision_score

    notes, num_frames, rolls = _piece_notes()
    rng = np.random.default_rng(0)
    noisy = {pid: np.clip(r * 0.6 + rng.uniform(0, 0.5, r.shape), 0, 1) for pid, r in rolls.items()}
    batches = list(_batches(rolls))
    noisy_batches = list(_batches(noisy))
    for b, nb in zip(batches, noisy_batches, strict=True):
        b["cqt"] = nb["cqt"]
    pieces = scoring.predict_split(_oracle, batches, num_frames)
    thresholds = {"frame_threshold": 0.5, "onset_threshold": 0.5, "min_note_s": 0.05, "source": ""}
    result, _, _ = scoring.score_split(pieces, notes, {}, META, _eval_config(), thresholds)
    expected = average_precision_score(
        np.concatenate([rolls[7], rolls[9]]).ravel(), np.concatenate([noisy[7], noisy[9]]).ravel()
    )
    assert result["pooled"]["frame/ap"] == pytest.approx(expected, rel=1e-6)


def test_thresholds_are_chosen_on_the_given_predictions():
    """With probabilities scaled to 0.4 on notes, the chosen frame threshold drops below 0.5."""
    notes, num_frames, rolls = _piece_notes()
    scaled = scoring.predict_split(
        lambda c: (0.4 * c, np.zeros_like(c)), _batches(rolls), num_frames
    )
    e = _eval_config()
    chosen = scoring.choose_thresholds(scaled, notes, META, e)
    assert chosen["frame_threshold"] <= 0.4 and chosen["validation_frame_f1"] == pytest.approx(1.0)
    e.frame_threshold = 0.7
    assert scoring.choose_thresholds(scaled, notes, META, e)["frame_threshold"] == 0.7


def test_the_shortest_note_is_chosen_on_validation_with_the_onset_threshold():
    """Two-frame notes, which a 3-frame minimum drops, make the chooser take a shorter one."""
    fps = 43.0  # the default CQT's frame rate: the grid is 1, 2, 3 and 4 frames
    meta = Meta(n_bins=8, n_pitches=4, min_pitch=60, frames_per_second=fps)
    rng = np.random.default_rng(0)
    frames_TxP = np.zeros((200, meta.n_pitches), np.float32)
    onsets_TxP = np.zeros_like(frames_TxP)
    notes = []
    for start in range(5, 190, 9):  # staccato: 2 frames sounding
        pitch = int(rng.integers(0, meta.n_pitches))
        frames_TxP[start : start + 2, pitch], onsets_TxP[start, pitch] = 0.9, 0.8
        notes.append(labels.Note(start / fps, (start + 2) / fps, meta.min_pitch + pitch))
    pieces = {1: scoring.PiecePrediction(frames_TxP, onsets_TxP, frames_TxP >= 0.5)}
    e = _eval_config()
    chosen = scoring.choose_thresholds(pieces, {1: notes}, meta, e)
    shortest = decode.NoteDecoder(fps, [0], min_note_s=chosen["min_note_s"]).min_frames
    assert shortest <= 2 and chosen["min_note_s"] in scoring.MIN_NOTE_S_GRID
    assert chosen["validation_note_f1"] == pytest.approx(1.0)
    e.min_note_s = 0.05  # set in the config: kept, and the notes are lost
    chosen = scoring.choose_thresholds(pieces, {1: notes}, meta, e)
    assert chosen["min_note_s"] == 0.05 and chosen["validation_note_f1"] == 0.0
    e.onset_threshold = 0.3  # both set: nothing to choose
    chosen = scoring.choose_thresholds(pieces, {1: notes}, meta, e)
    assert (chosen["onset_threshold"], chosen["min_note_s"]) == (0.3, 0.05)


def test_the_sustain_threshold_is_chosen_on_validation_for_the_notes_frames():
    """Notes whose second half fades to 0.3 (below the 0.5 that starts them): validation
    takes a sustain threshold under 0.3, the decoded notes get their whole length, and a
    sustain threshold set in the config is kept (capped by the frame threshold)."""
    fps = 43.0
    meta = Meta(n_bins=8, n_pitches=4, min_pitch=60, frames_per_second=fps)
    frames_TxP = np.zeros((200, meta.n_pitches), np.float32)
    onsets_TxP = np.zeros_like(frames_TxP)
    ref_TxP = np.zeros(frames_TxP.shape, bool)
    notes = []
    for k, start in enumerate(range(5, 180, 20)):
        pitch = k % meta.n_pitches
        frames_TxP[start : start + 8, pitch] = 0.9
        frames_TxP[start + 8 : start + 16, pitch] = 0.3  # the fading tail, still held
        onsets_TxP[start, pitch], ref_TxP[start : start + 16, pitch] = 0.8, True
        notes.append(labels.Note(start / fps, (start + 16) / fps, meta.min_pitch + pitch))
    pieces = {1: scoring.PiecePrediction(frames_TxP, onsets_TxP, ref_TxP)}
    e = _eval_config()
    e.frame_threshold = 0.5  # the frame metric's own choice would be 0.3 here
    chosen = scoring.choose_thresholds(pieces, {1: notes}, meta, e)
    assert chosen["sustain_threshold"] <= 0.3 < chosen["frame_threshold"]
    assert chosen["sustain_threshold"] / 0.5 in scoring.SUSTAIN_GRID
    assert chosen["validation_note_frame_f1"] == pytest.approx(1.0)
    result, decoded, _ = scoring.score_split(pieces, {1: notes}, {}, meta, e, chosen)
    assert [round((n.end_s - n.start_s) * fps) for n in decoded[1]] == [16] * len(notes)
    without = dict(chosen, sustain_threshold=None)  # no hysteresis: the tails are lost
    _, decoded, _ = scoring.score_split(pieces, {1: notes}, {}, meta, e, without)
    assert [round((n.end_s - n.start_s) * fps) for n in decoded[1]] == [8] * len(notes)
    counts = scoring.note_frame_counts(decoded[1], ref_TxP, meta)
    assert counts.f1 == pytest.approx(2 * 0.5 / 1.5)  # precision 1, recall 1/2
    e.sustain_threshold = 0.7  # set in the config: kept, at most the frame threshold
    assert scoring.choose_thresholds(pieces, {1: notes}, meta, e)["sustain_threshold"] == 0.5


def test_pitch_class_reference_notes():
    """With only_note_names, reference notes fold to pitch classes as the outputs do."""
    meta = Meta(n_bins=8, n_pitches=12, min_pitch=21, frames_per_second=FPS, only_note_names=True)
    intervals, pitches = scoring.reference_notes(
        [labels.Note(0, 1, 61), labels.Note(0, 1, 73)], meta
    )
    assert list(pitches) == [decode.PITCH_CLASS_BASE + 1] * 2 and intervals.shape == (2, 2)
    # Out-of-range notes are dropped for MIDI outputs.
    _, pitches = scoring.reference_notes([labels.Note(0, 1, 20), labels.Note(0, 1, 61)], META)
    assert list(pitches) == [61]


def test_bad_thresholds_are_rejected():
    """config.eval.thresholds outside [0, 1] fail with the field named."""
    with pytest.raises(ValueError, match="thresholds"):
        metrics.validate_thresholds((0.5, 1.5))


def test_config_types():
    """The eval section holds the original's options with their meanings' types."""
    e = common.evaluation()
    assert isinstance(e, ml_collections.ConfigDict)
    assert tuple(e.thresholds) == (0.5,) and tuple(e.allowed_errors) == (0, 1)
