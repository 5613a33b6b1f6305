"""Incremental CQT and a bounded-context model runner: notes while the audio arrives.

Owns the streaming side of transcription: `StreamResampler` (any input rate to `cqt.sr`),
`StreamingCqt` (audio blocks -> normalised CQT frames equal to `features.compute_cqt` of the
whole recording), `StreamingTranscriber` (CQT frames -> note events as soon as they are decided) and
`NoteStream` (all three). Must not import training or dataset code. Legend: S samples,
T frames, F CQT bins, P pitches, B windows, W frames per window.

How the CQT streams. librosa's CQT runs octave by octave: the top octave's filters on the
signal, then the signal halved (soxr) for the next octave, and so on down. Frame t depends on
the samples within the lowest octave's FFT frame around it (about half the longest filter,
rounded up to a power of two) plus the tails of the halving filters. `StreamingCqt` keeps a
bounded, hop-aligned segment of recent samples (aligned so every halving keeps librosa's
phase) and recomputes librosa's arithmetic on it, with the filters built once, for the frames
whose look-ahead has arrived; the look-behind keeps the segment's start edge away from them.
At the stream's start and end the segment edges are the recording's edges, zero-padded as
librosa does, so first and last frames match too.

How the model streams. Every model reports an exact `receptive_field() -> (past, future)` and
treats the input's edges as a recording's edges. So output t computed from a window [s, e) is
exact when the window starts at frame 0 or at or before t - past, and ends at the last frame
or after t + future. Both paths cut fixed-size windows that respect this (one compiled shape)
and pad only beyond the outputs they keep.
"""

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from jaxnotes.data import features
from jaxnotes.inference import runner

# librosa.cqt's defaults that features.cqt_magnitude leaves untouched.
_WINDOW, _NORM, _SPARSITY, _RES_TYPE = "hann", 1, 0.01, "soxr_hq"
# Extra look-ahead (and look-behind) for the tails of the soxr halving filters, beyond the
# lowest octave's FFT half-frame (0.743 s at the default config). Measured on music-like audio:
# the largest difference from the offline CQT in bins within 40 dB of the recording's loudest
# falls from 0.014 (0.3 dB) at no margin to 5e-4 (0.01 dB) at 0.05 s.
RESAMPLE_MARGIN_S = 0.05
# |streaming - offline| in normalised units (1 unit = features.DB_SCALE = 20 dB) that the tests
# allow: TOLERANCE (0.04 dB) in bins within LOUD_DB of the recording's loudest bin; quieter
# bins, where float round-off and the cut filter tails weigh more after the log, QUIET_TOLERANCE.
TOLERANCE, LOUD_DB, QUIET_TOLERANCE = 2e-3, 60.0, 0.1


class StreamResampler:
    """Resamples a mono stream block by block exactly as `audio.load_audio` does at once.

    soxr's streaming resampler is bit-identical to its one-shot call; `flush` trims or pads
    the tail to librosa's length rule, ceil(num_samples * out_rate / in_rate).
    """

    def __init__(self, in_rate: int, out_rate: int):
        import soxr  # deferred with librosa, which depends on it

        self.ratio = out_rate / in_rate
        self._stream = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, "float32", _RES_TYPE)
        self._received = self._emitted = 0

    def push(self, samples_S: np.ndarray) -> np.ndarray:
        """Resamples a block; returns what the resampler can give so far."""
        samples_S = np.ascontiguousarray(samples_S, dtype=np.float32)
        self._received += len(samples_S)
        if self._stream is not None:
            samples_S = self._stream.resample_chunk(samples_S, last=False).astype(np.float32)
        self._emitted += len(samples_S)
        return samples_S

    def flush(self) -> np.ndarray:
        """Ends the stream; returns the tail."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        out_S = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        want = math.ceil(self._received * self.ratio) - self._emitted
        out_S = np.pad(out_S[: max(want, 0)], (0, max(want - len(out_S), 0)))
        self._emitted += len(out_S)
        return out_S.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class _Octave:
    """One octave of librosa's CQT: FFT frames of the octave's signal times its filters."""

    hop: int
    n_fft: int
    basis: Any  # scipy sparse, bins x (n_fft / 2 + 1), complex64
    bins: tuple[int, int, int]  # (first output bin, end bin, first row of basis used)
    halve_after: bool  # librosa halves the signal for the next octave


@dataclasses.dataclass(frozen=True)
class _CqtPlan:
    early_factor: int
    octaves: tuple[_Octave, ...]
    inv_sqrt_len_F: np.ndarray
    reach_samples: int  # how far (either side) a frame's lowest FFT frame reaches


@functools.lru_cache(maxsize=8)
def _plan(cqt: features.CqtConfig) -> _CqtPlan:
    """Mirrors librosa.vqt's set-up once: early downsampling, filters, scaling.

    librosa rebuilds these filters on every call (~0.25 s at 384 bins), which would dominate a
    streaming step; `_segment_magnitude` then repeats only the signal-dependent part.
    """
    import librosa
    from librosa.core import constantq

    # librosa keeps these helpers private; the equality tests against compute_cqt guard them.
    filter_fft = vars(constantq)["__vqt_filter_fft"]
    early_count = vars(constantq)["__early_downsample_count"]
    n_bins, bpo = cqt.n_bins, cqt.bins_per_octave
    n_octaves = math.ceil(n_bins / bpo)
    n_filters = min(bpo, n_bins)
    freqs = librosa.interval_frequencies(
        n_bins=n_bins, fmin=cqt.fmin_hz, intervals="equal", bins_per_octave=bpo, sort=True
    )
    alpha = librosa.filters._relative_bandwidth(freqs=freqs)
    kwargs = dict(window=_WINDOW, filter_scale=cqt.filter_scale, gamma=0, alpha=alpha)
    _, cutoff = librosa.filters.wavelet_lengths(freqs=freqs, sr=cqt.sr, **kwargs)
    factor = 2 ** early_count(cqt.sr / 2.0, cutoff, cqt.hop_length, n_octaves)
    sr, hop = cqt.sr / factor, cqt.hop_length // factor
    lengths, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=sr, **kwargs)
    octaves, my_sr, my_hop, end, reach = [], sr, hop, n_bins, 0
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        basis, n_fft, _ = filter_fft(
            my_sr, freqs[sl], cqt.filter_scale, _NORM, _SPARSITY, window=_WINDOW, gamma=0,
            dtype=np.complex64, alpha=alpha[sl],
        )  # fmt: skip
        basis = (basis * np.sqrt(sr / my_sr)).astype(np.complex64)
        n_oct = basis.shape[0]
        halve = my_hop % 2 == 0
        # As __trim_stack: an octave that does not fit gives only its highest bins.
        bins = (max(end - n_oct, 0), end, max(n_oct - end, 0))
        octaves.append(_Octave(my_hop, n_fft, basis, bins, halve))
        reach = max(reach, round(n_fft // 2 * cqt.sr / my_sr))
        end -= n_oct
        if halve:
            my_hop, my_sr = my_hop // 2, my_sr / 2.0
    inv_sqrt_len_F = (1.0 / np.sqrt(lengths)).astype(np.float32)
    return _CqtPlan(factor, tuple(octaves), inv_sqrt_len_F, reach)


def _segment_magnitude(
    plan: _CqtPlan, y_S: np.ndarray, n_bins: int, first: int, stop: int
) -> np.ndarray:
    """|CQT| frames [first, stop) (T x F) of a segment, computed as librosa.cqt does.

    The same arithmetic as librosa (soxr halving scaled by sqrt(2), centred FFT frames with
    zero padding, the sparse filter bases), but only the frames asked for are transformed.
    """
    import scipy.fft  # librosa's FFT back end: the same round-off

    my_y = y_S
    if plan.early_factor > 1:
        my_y = _librosa_halve(my_y, plan.early_factor)
    out_FxT = np.empty((n_bins, stop - first), np.complex64)
    for octave in plan.octaves:
        half = octave.n_fft // 2
        padded = np.pad(my_y, (half, half))
        num_frames = 1 + len(my_y) // octave.hop
        if num_frames < stop:  # librosa trims every octave to the shortest one
            raise ValueError(f"segment too short: {num_frames} frames < {stop}")
        starts = np.arange(first, stop) * octave.hop
        frames_TxN = np.lib.stride_tricks.sliding_window_view(padded, octave.n_fft)[starts]
        spectra_NxT = scipy.fft.rfft(frames_TxN, axis=-1).T.astype(np.complex64)
        lo, hi, first_row = octave.bins
        out_FxT[lo:hi] = np.asarray(octave.basis.dot(spectra_NxT))[first_row:]
        if octave.halve_after:
            my_y = _librosa_halve(my_y, 2)
    out_FxT *= plan.inv_sqrt_len_F[:, None]
    return np.abs(out_FxT).T.astype(np.float32)


def _librosa_halve(y_S: np.ndarray, factor: int) -> np.ndarray:
    """librosa.resample(y, orig_sr=factor, target_sr=1, res_type='soxr_hq', scale=True)."""
    import soxr

    out_S = soxr.resample(y_S, factor, 1, quality=_RES_TYPE)
    out_S = out_S[: math.ceil(len(y_S) / factor)]  # librosa's fix_length (soxr gives this)
    out_S /= np.sqrt(1.0 / factor)  # in place on float32, as librosa: the same rounding
    return np.asarray(out_S, np.float32)


class StreamingCqt:
    """Audio blocks (mono float32 at `cqt.sr`) -> normalised CQT frames, as soon as decided.

    `push(audio_S) -> cqt_TxF` returns the frames whose dependencies have all arrived (possibly
    none), `flush()` ends the stream and returns the rest. Together they equal
    `features.compute_cqt` of the whole recording within `TOLERANCE` (see there).

    Args:
      cqt: the features' parameters.
      resample_margin_s: look-ahead (and look-behind) beyond the lowest octave's FFT frame,
        for the tails of the halving filters; smaller values trade accuracy for latency.
    """

    def __init__(self, cqt: features.CqtConfig, *, resample_margin_s: float = RESAMPLE_MARGIN_S):
        self.cqt = cqt
        self._plan = _plan(cqt)
        self._normalise = features.Normaliser(cqt)  # carries the running reference
        self.lookahead_samples = self._plan.reach_samples + round(resample_margin_s * cqt.sr)
        self._buf_S = np.zeros(0, np.float32)
        self._buf_start = 0  # stream index of _buf_S[0]; a multiple of hop_length
        self._blocks, self._blocks_len = [], 0  # samples after _buf_S not yet joined to it
        self.samples_received = 0
        self.frames_emitted = 0
        self._finished = False

    @property
    def lookahead_s(self) -> float:
        """Audio that must follow a frame's centre before the frame is emitted."""
        return self.lookahead_samples / self.cqt.sr

    def push(self, audio_S: np.ndarray) -> np.ndarray:
        """Consumes a block of samples; returns the newly decided frames (T x F, T >= 0)."""
        if self._finished:
            raise RuntimeError("StreamingCqt.push after flush: start a new stream")
        audio_S = np.asarray(audio_S, np.float32)
        if audio_S.ndim != 1:
            raise ValueError(f"StreamingCqt expects mono samples, got shape {audio_S.shape}")
        self._blocks.append(audio_S)  # joined only when a frame is due: tiny blocks stay cheap
        self._blocks_len += len(audio_S)
        self.samples_received += len(audio_S)
        decided = self.samples_received - self.lookahead_samples
        return self._frames(decided // self.cqt.hop_length + 1 if decided >= 0 else 0)

    def flush(self) -> np.ndarray:
        """Ends the stream: returns the remaining frames (zero padding after the end)."""
        self._finished = True
        if self.samples_received == 0:
            return np.zeros((0, self.cqt.n_bins), np.float32)
        return self._frames(self.cqt.num_frames(self.samples_received))

    def buffer_samples(self) -> int:
        """Samples held: bounded by look-behind + look-ahead + one block, however long the stream."""
        return len(self._buf_S) + self._blocks_len

    def _frames(self, stop: int) -> np.ndarray:
        first, hop = self.frames_emitted, self.cqt.hop_length
        if stop <= first:
            return np.zeros((0, self.cqt.n_bins), np.float32)
        if self._blocks:
            self._buf_S = np.concatenate([self._buf_S, *self._blocks])
            self._blocks, self._blocks_len = [], 0
        # A segment starting at a multiple of hop_length (itself a multiple of every
        # downsampling factor) keeps librosa's resampling phases; frames closer than the
        # look-behind to a segment start that is not the stream's start would see its edge.
        start = self._aligned_start(first)
        out_TxF = _segment_magnitude(
            self._plan,
            self._buf_S[start - self._buf_start :],
            self.cqt.n_bins,
            first - start // hop,
            stop - start // hop,
        )
        self.frames_emitted = stop
        keep = self._aligned_start(stop)
        self._buf_S = self._buf_S[keep - self._buf_start :].copy()
        self._buf_start = keep
        return self._normalise(out_TxF)

    def _aligned_start(self, frame: int) -> int:
        hop = self.cqt.hop_length
        return max(0, frame * hop - self.lookahead_samples) // hop * hop


class StreamingTranscriber:
    """CQT frames as they come -> note events as soon as the model and decoder decide them.

    Keeps only the frames later outputs can depend on (a bounded buffer of about W frames)
    and runs the model on fixed-size windows of W = past + step_frames + future frames, so it
    compiles once (plus once at the end of a stream shorter than W). An output frame is
    computed as soon as its `future` frames have arrived.

    Args:
      model: an eval-mode model with `receptive_field()`.
      meta: its `data.Meta`.
      decoder: a fresh `decode.NoteDecoder` (its thresholds decide the notes).
      step_frames: most outputs per window; smaller is cheaper per call, larger catches up
        faster after a long block.
    """

    def __init__(self, model, meta, decoder, *, step_frames: int = 16):
        self.meta, self.decoder = meta, decoder
        self.past, self.future = runner.receptive_field(model)
        self.step = int(step_frames)
        self.window = self.past + self.step + self.future
        self._predict = runner.predictor(model)
        self._buf_TxF = np.zeros((0, meta.n_bins), np.float32)
        self._buf_start = 0  # frame index of _buf_TxF[0]
        self.frames_received = 0
        self.outputs_done = 0
        self.model_calls = 0

    def push(self, cqt_TxF: np.ndarray) -> list:
        """Adds frames; returns the note events decided so far (`decode.NoteEvent`)."""
        cqt_TxF = np.asarray(cqt_TxF, np.float32)
        if cqt_TxF.ndim != 2 or cqt_TxF.shape[1] != self.meta.n_bins:
            raise ValueError(
                f"expected T x {self.meta.n_bins} CQT frames (the model's bins), got "
                f"{cqt_TxF.shape}: check config.cqt"
            )
        if not len(cqt_TxF):
            return []
        self._buf_TxF = np.concatenate([self._buf_TxF, cqt_TxF])
        self.frames_received += len(cqt_TxF)
        events = []
        while self.frames_received - self.future > self.outputs_done:
            events += self._run(end_of_stream=False)
        self._trim()
        return events

    def flush(self) -> list:
        """Ends the stream: the last outputs (their future is the stream's end), all events."""
        events = []
        if self.frames_received > self.outputs_done:
            events += self._run(end_of_stream=True)
        return events + self.decoder.flush()

    def buffer_frames(self) -> int:
        """Frames held: at most about W + one block, however long the stream."""
        return len(self._buf_TxF)

    def _run(self, *, end_of_stream: bool) -> list:
        first, n = self.outputs_done, self.frames_received
        if end_of_stream:
            # The window must end at the last frame: the model sees the true end there.
            start, stop = max(0, n - self.window), n
            windows_1xWxF = self._frames(start, n)[None]
        else:
            start = max(0, first - self.past)
            stop = min(n - self.future, start + self.window - self.future, first + self.step)
            # Frames not here yet are zero padding beyond every kept output's future.
            windows_1xWxF = np.zeros((1, self.window, self.meta.n_bins), np.float32)
            have = self._frames(start, min(n, start + self.window))
            windows_1xWxF[0, : len(have)] = have
        frame_1xWxP, onset_1xWxP = self._predict(windows_1xWxF)
        self.model_calls += 1
        frame_TxP = frame_1xWxP[0, first - start : stop - start]
        onset_TxP = onset_1xWxP[0, first - start : stop - start]
        self.outputs_done = stop
        return self.decoder.push(frame_TxP, onset_TxP)

    def _frames(self, start: int, stop: int) -> np.ndarray:
        return self._buf_TxF[start - self._buf_start : stop - self._buf_start]

    def _trim(self) -> None:
        # Later windows start at or after outputs_done - past, or (at the end) at n - W.
        keep = max(0, min(self.outputs_done - self.past, self.frames_received - self.window))
        if keep > self._buf_start:
            self._buf_TxF = self._buf_TxF[keep - self._buf_start :].copy()
            self._buf_start = keep


class NoteStream:
    """Mono audio at any rate -> note events: resampler, streaming CQT, streaming model."""

    def __init__(self, model, meta, cqt: features.CqtConfig, decoder, *, in_rate: int, **kwargs):
        self.cqt = cqt
        self.resampler = StreamResampler(in_rate, cqt.sr)
        self.features = StreamingCqt(cqt)
        self.transcriber = StreamingTranscriber(model, meta, decoder, **kwargs)

    def push(self, samples_S: np.ndarray) -> list:
        """Consumes a block of mono samples at `in_rate`; returns the events decided."""
        return self.transcriber.push(self.features.push(self.resampler.push(samples_S)))

    def flush(self) -> list:
        """Ends the stream; returns the remaining events."""
        events = self.transcriber.push(self.features.push(self.resampler.flush()))
        return events + self.transcriber.push(self.features.flush()) + self.transcriber.flush()

    def warm_up(self) -> None:
        """Compiles the model's window shape and runs the CQT once, before audio arrives."""
        t = self.transcriber
        t._predict(np.zeros((1, t.window, t.meta.n_bins), np.float32))
        silence_S = np.zeros(2 * self.features.lookahead_samples, np.float32)
        _segment_magnitude(self.features._plan, silence_S, self.cqt.n_bins, 0, 1)

    def latency_budget(self) -> dict[str, float]:
        """Seconds each stage holds a note back (compute time and block size excluded)."""
        fps = self.cqt.frames_per_second
        return {
            "cqt_lookahead_s": self.features.lookahead_s,
            "model_future_s": self.transcriber.future / fps,
            "decoder_max_delay_s": self.transcriber.decoder.max_delay_frames / fps,
        }
