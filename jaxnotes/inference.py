"""Running a trained model over CQT frames: batches, and whole pieces in exact windows.

Owns the one way jaxnotes turns CQT into probabilities at inference time, shared by the
test action (`evaluate`) and transcription (`streaming`, `transcribe`), so a piece scored
by `test` gets the same probabilities as the same audio transcribed. Must not import
training or dataset code. Legend: B windows, T frames, F CQT bins, P pitches, W frames per
window.

Every model reports an exact `receptive_field() -> (past, future)` and treats the input's
edges as a recording's edges, so output t computed from a window [s, e) equals the output
of one pass over the whole piece when the window starts at frame 0 or at or before
t - past, and ends at the last frame or after t + future.
"""

import weakref

import jax
import numpy as np


def make_predict_fn(model):
    """A jitted `cqt_BxTxF -> (frame_probs_BxTxP, onset_probs_BxTxP)` of an eval-mode model.

    The weights are captured now: later changes to `model` are not seen.
    """
    from flax import nnx

    graphdef, state = nnx.split(model)

    @jax.jit
    def predict(state, cqt_BxTxF):
        out = nnx.merge(graphdef, state)(cqt_BxTxF)
        return jax.nn.sigmoid(out["frame"]), jax.nn.sigmoid(out["onset"])

    def predict_fn(cqt_BxTxF):
        frame_BxTxP, onset_BxTxP = predict(state, cqt_BxTxF)
        return np.asarray(frame_BxTxP), np.asarray(onset_BxTxP)

    return predict_fn


# One jitted predictor per model object, so every stream and file of a run (and every test)
# shares its compiled shapes. It captures the weights when first made: models are inference-only.
_PREDICTORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def predictor(model):
    """The model's jitted `cqt_BxTxF -> (frame, onset) probabilities`, made once per model."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = make_predict_fn(model)
    return _PREDICTORS[model]


def receptive_field(model) -> tuple[int, int]:
    """(past, future) frames of the model, with a clear error for unbounded models."""
    try:
        past, future = model.receptive_field()
    except ValueError as e:
        raise ValueError(f"this model cannot run on windows: {e}") from e
    return int(past), int(future)


def predict_offline(
    model, cqt_TxF: np.ndarray, *, step_frames: int = 512, batch_size: int = 4, predict=None
) -> tuple[np.ndarray, np.ndarray]:
    """Frame and onset probabilities (T x P each) of a whole CQT, window by window.

    Windows hold W = past + step_frames + future frames (one compiled shape, batches of
    `batch_size`); window i gives outputs [i * step, (i + 1) * step) and starts `past` frames
    before them, or at frame 0, or W frames before the end, so every output sees exactly what
    it would see in one pass over the whole sequence. A sequence shorter than W runs at once.
    """
    predict = predict or predictor(model)
    past, future = receptive_field(model)
    num_frames, window = len(cqt_TxF), past + step_frames + future
    if num_frames <= window:
        frame_BxTxP, onset_BxTxP = predict(np.asarray(cqt_TxF, np.float32)[None])
        return frame_BxTxP[0], onset_BxTxP[0]
    jobs = []  # (window start, first output, end output)
    for first in range(0, num_frames, step_frames):
        start = min(max(0, first - past), num_frames - window)
        jobs.append((start, first, min(first + step_frames, num_frames)))
    frame_TxP = onset_TxP = None
    for b in range(0, len(jobs), batch_size):
        batch = jobs[b : b + batch_size]
        windows_BxWxF = np.zeros((batch_size, window, cqt_TxF.shape[1]), np.float32)
        for i, (start, _, _) in enumerate(batch):
            windows_BxWxF[i] = cqt_TxF[start : start + window]
        frame_BxWxP, onset_BxWxP = predict(windows_BxWxF)
        if frame_TxP is None:
            frame_TxP = np.empty((num_frames, frame_BxWxP.shape[2]), np.float32)
            onset_TxP = np.empty_like(frame_TxP)
        for i, (start, first, end) in enumerate(batch):
            frame_TxP[first:end] = frame_BxWxP[i, first - start : end - start]
            onset_TxP[first:end] = onset_BxWxP[i, first - start : end - start]
    return frame_TxP, onset_TxP
