"""Running a trained model over CQT frames: batches, and whole pieces in exact windows.

Owns the one way jaxnotes turns CQT into probabilities at inference time, shared by the
test action (`evaluate`) and transcription (`streaming`, `transcribe`), so a piece scored
by `test` gets the same probabilities as the same audio transcribed. Must not import
training or dataset code. Legend: B windows, T frames, F CQT bins, P pitches, W frames per
window.

Models with a bounded context report an exact `receptive_field() -> (past, future)` and
treat the input's edges as a recording's edges, so output t computed from a window [s, e)
equals the output of one pass over the whole piece when the window starts at frame 0 or at
or before t - past, and ends at the last frame or after t + future: `predict_offline` is
then exact. Models whose outputs depend on the whole input (long-range attention) raise in
`receptive_field()`; `predict_offline` runs them on overlapping segments of a fixed length
instead and keeps each segment's centre (`segment_plan`), an approximation whose cost and
choice are described in `Segments`. Streaming (`streaming`) needs a bounded context.
"""

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Segments:
    """How a model without a bounded context runs offline: segments of `frames` frames,
    consecutive ones overlapping by `overlap` frames, each output taken from the segment
    in which it lies most central (`segment_plan`).

    A long-range model sees at most `frames` frames of context, as it did in training when
    `frames` is the training window; longer segments give it more context than it was
    trained on. The cost is frames / (frames - overlap) times one pass (2x at half
    overlap). A piece no longer than `frames` runs in one pass, exactly.
    """

    frames: int
    overlap: int

    def __post_init__(self):
        if self.frames < 1 or not 0 <= self.overlap < self.frames:
            raise ValueError(
                f"segments of {self.frames} frames overlapping by {self.overlap}: need "
                "frames >= 1 and 0 <= overlap < frames (config.eval.segment_s, segment_overlap)"
            )

    def describe(self, frames_per_second: float) -> dict:
        return {
            "mode": "segments",
            "segment_frames": self.frames,
            "overlap_frames": self.overlap,
            "segment_s": round(self.frames / frames_per_second, 3),
        }


EXACT = {"mode": "exact windows (bounded receptive field)"}


def segments_of(eval_config, training_window_frames: int, frames_per_second: float) -> Segments:
    """`config.eval.segment_s` (None: the training window) and `segment_overlap` as Segments."""
    seconds = eval_config.segment_s
    frames = training_window_frames if seconds is None else int(round(seconds * frames_per_second))
    return Segments(frames, int(round(frames * eval_config.segment_overlap)))


def run_mode(model, model_config, eval_config) -> tuple[Segments | None, dict]:
    """(segments or None, how the model runs offline, for reports): None for a bounded
    context (exact windows), else `segments_of` the config's eval and training window."""
    from jaxnotes.data import spec  # the data contract: window and frame rate of a config

    try:
        model.receptive_field()
    except ValueError:
        fps = spec.load_meta(model_config).frames_per_second
        segments = segments_of(eval_config, spec.window_frames(model_config), fps)
        return segments, segments.describe(fps)
    return None, dict(EXACT)


def segment_plan(num_frames: int, segments: Segments) -> list[tuple[int, int, int]]:
    """(segment start, first output, end output) per segment; the outputs tile [0, T) once.

    Segments start every frames - overlap frames (the last one ends at the last frame);
    each keeps the outputs nearer its centre than any neighbour's, half the overlap in
    from each inner edge.
    """
    size, overlap = segments.frames, segments.overlap
    if num_frames <= size:
        return [(0, 0, num_frames)]
    starts = list(range(0, num_frames - size, size - overlap)) + [num_frames - size]
    plan = []
    for i, start in enumerate(starts):
        first = 0 if i == 0 else plan[-1][2]
        if i + 1 == len(starts):
            end = num_frames
        else:  # halfway through the overlap with the next segment
            end = (starts[i + 1] + start + size + 1) // 2
        plan.append((start, first, end))
    return plan


def predict_offline(
    model,
    cqt_TxF: np.ndarray,
    *,
    step_frames: int = 512,
    batch_size: int | None = None,
    predict=None,
    segments: Segments | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame and onset probabilities (T x P each) of a whole CQT, window by window.

    Windows hold W = past + step_frames + future frames (one compiled shape, batches of
    `batch_size`); window i gives outputs [i * step, (i + 1) * step) and starts `past` frames
    before them, or at frame 0, or W frames before the end, so every output sees exactly what
    it would see in one pass over the whole sequence. A sequence shorter than W runs at once.
    A model without a bounded receptive field runs on `segments` (see Segments; required).
    `batch_size` None: 1 on a CPU (XLA already spreads one window over the cores, and a
    batch of 4 ran 30% slower on 2 cores), 8 on an accelerator.
    """
    predict = predict or predictor(model)
    if batch_size is None:
        batch_size = 1 if jax.default_backend() == "cpu" else 8
    num_frames = len(cqt_TxF)
    try:
        past, future = receptive_field(model)
    except ValueError:
        if segments is None:
            raise
        jobs, window = segment_plan(num_frames, segments), min(segments.frames, num_frames)
    else:
        window = past + step_frames + future
        jobs = []  # (window start, first output, end output)
        for first in range(0, num_frames, step_frames):
            start = min(max(0, first - past), num_frames - window)
            jobs.append((start, first, min(first + step_frames, num_frames)))
    if num_frames <= window:
        frame_BxTxP, onset_BxTxP = predict(np.asarray(cqt_TxF, np.float32)[None])
        return frame_BxTxP[0], onset_BxTxP[0]
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
