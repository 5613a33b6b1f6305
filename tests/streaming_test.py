"""Tests of jaxnotes/streaming.py: incremental CQT and windowed model runs equal offline ones."""

import librosa
import numpy as np
import pytest
from flax import nnx

from configs import cnn_mlp, transformer
from jaxnotes import models
from jaxnotes.data import Meta, features
from jaxnotes.inference import decode, runner, streaming

SR = 22050
TINY_CQT = features.CqtConfig(bins_per_octave=24)


def music_like(seconds: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Decaying tones over the whole piano range, faint noise, silence first, a loud low end."""
    rng = np.random.default_rng(seed)
    num = int(seconds * sr) + 333  # not a whole number of hops
    audio_S = np.zeros(num, np.float32)
    for _ in range(int(6 * seconds)):
        f0 = features.midi_to_hz(int(rng.integers(21, 100)))
        start = int(rng.integers(0, num - sr // 4))
        t_S = np.arange(min(int(rng.integers(sr // 8, sr)), num - start)) / sr
        audio_S[start : start + len(t_S)] += 0.1 * np.sin(2 * np.pi * f0 * t_S) * np.exp(-2 * t_S)
    audio_S += 0.001 * rng.standard_normal(num).astype(np.float32)
    audio_S[: min(sr // 4, num // 2)] = 0.0
    t_S = np.arange(min(sr // 2, num // 2)) / sr
    audio_S[-len(t_S) :] += 0.3 * np.sin(2 * np.pi * 55.0 * t_S)  # up to the very last sample
    return audio_S.astype(np.float32)


def stream_cqt(audio_S, cqt, block):
    stream = streaming.StreamingCqt(cqt)
    parts = [stream.push(audio_S[i : i + block]) for i in range(0, len(audio_S), block)]
    return np.concatenate(parts + [stream.flush()])


def assert_close_to_offline(streamed_TxF, offline_TxF):
    """The stated tolerance (streaming.TOLERANCE), on all frames and on the edge frames."""
    assert streamed_TxF.shape == offline_TxF.shape
    loud_TxF = offline_TxF >= offline_TxF.max() - streaming.LOUD_DB / features.DB_SCALE
    # First and last frames include librosa's zero padding at both ends.
    for part in (slice(None), slice(0, 3), slice(-3, None)):
        diff_TxF = np.abs(streamed_TxF[part] - offline_TxF[part])
        assert diff_TxF[loud_TxF[part]].max(initial=0.0) < streaming.TOLERANCE
        assert diff_TxF.max() < streaming.QUIET_TOLERANCE


@pytest.fixture(scope="module")
def tiny_audio():
    audio_S = music_like(4.0)
    return audio_S, features.compute_cqt(audio_S, TINY_CQT)


@pytest.mark.parametrize("block", [1, 333, 512, 4097, 10**6])
def test_streaming_cqt_equals_offline(tiny_audio, block):
    """Streaming the CQT in blocks of any size (odd ones, single samples) gives the offline CQT."""
    audio_S, offline_TxF = tiny_audio
    if block == 1:
        audio_S, offline_TxF = audio_S[: SR * 2], features.compute_cqt(audio_S[: SR * 2], TINY_CQT)
    assert_close_to_offline(stream_cqt(audio_S, TINY_CQT, block), offline_TxF)


def test_streaming_cqt_default_config_equals_offline():
    """The default 384-bin CQT (A0 filter 1.25 s long) streams to the offline features too."""
    audio_S = music_like(3.0, seed=1)
    cqt = features.CqtConfig()
    assert_close_to_offline(stream_cqt(audio_S, cqt, 1000), features.compute_cqt(audio_S, cqt))


@pytest.mark.parametrize("seconds", [0.01, 0.5])
def test_streaming_cqt_short_streams(seconds):
    """Streams about as short as the look-ahead (0.42 s here) still equal the offline CQT."""
    audio_S = music_like(seconds, seed=2)
    offline_TxF = features.compute_cqt(audio_S, TINY_CQT)
    stream = streaming.StreamingCqt(TINY_CQT)
    pushed_TxF = stream.push(audio_S)
    assert len(pushed_TxF) == (0 if seconds < stream.lookahead_s else 5)
    assert_close_to_offline(np.concatenate([pushed_TxF, stream.flush()]), offline_TxF)


def test_streaming_cqt_memory_is_bounded():
    """Buffers stay the same size however long the stream runs (60 s here)."""
    stream = streaming.StreamingCqt(TINY_CQT)
    block, sizes, emitted = 2000, [], 0
    rng = np.random.default_rng(0)
    for _ in range(60 * SR // block):
        emitted += len(stream.push(0.1 * rng.standard_normal(block).astype(np.float32)))
        sizes.append(stream.buffer_samples())
    bound = 2 * stream.lookahead_samples + block + 2 * TINY_CQT.hop_length
    assert max(sizes) <= bound
    assert max(sizes[len(sizes) // 2 :]) <= max(sizes[: len(sizes) // 2])
    assert emitted == TINY_CQT.num_frames(len(sizes) * block) - int(
        np.ceil(stream.lookahead_samples / TINY_CQT.hop_length)
    )


def test_lookahead_of_default_config():
    """The default look-ahead is the A0 octave's FFT half-frame (0.743 s) plus the margin."""
    stream = streaming.StreamingCqt(features.CqtConfig())
    assert stream.lookahead_s == pytest.approx(0.743 + streaming.RESAMPLE_MARGIN_S, abs=1e-3)
    # At least half the longest filter: a frame never comes out before its support arrived.
    cqt = features.CqtConfig()
    q = cqt.filter_scale / (2.0 ** (1.0 / cqt.bins_per_octave) - 1.0)
    longest_filter = q * cqt.sr / cqt.fmin_hz  # the lowest bin's filter, in samples
    assert stream.lookahead_samples >= longest_filter / 2


@pytest.mark.parametrize("in_rate", [8000, 44100, 96000])
def test_resampler_matches_load_audio(in_rate):
    """Block-by-block resampling equals librosa's one-shot resampling used by load_audio."""
    audio_S = music_like(1.0, sr=in_rate)
    offline_S = librosa.resample(audio_S, orig_sr=in_rate, target_sr=SR, res_type="soxr_hq")
    resampler = streaming.StreamResampler(in_rate, SR)
    parts = [resampler.push(audio_S[i : i + 777]) for i in range(0, len(audio_S), 777)]
    streamed_S = np.concatenate(parts + [resampler.flush()])
    assert streamed_S.shape == offline_S.shape
    # Bit-equal on the CI machine (AMD EPYC, AVX2); 1e-6 (~16 float32 ulp of these <= 0.6
    # samples) leaves room for soxr's other SIMD paths, far below any resampling error.
    np.testing.assert_allclose(streamed_S, offline_S, atol=1e-6)


def tiny_model(name="transformer", **overrides):
    module = {"transformer": transformer, "cnn_mlp": cnn_mlp}[name]
    config = module.get_config("tiny")
    config.model.update(overrides)
    meta = Meta(
        n_bins=TINY_CQT.n_bins,
        n_pitches=88,
        min_pitch=21,
        frames_per_second=TINY_CQT.frames_per_second,
        bins_per_semitone=TINY_CQT.bins_per_semitone,
    )
    model = models.get_model(name, meta=meta, rngs=nnx.Rngs(0), **config.model)
    model.eval()
    return model, meta


@pytest.fixture(scope="module")
def tiny():
    """A random tiny transformer (front end 3 frames wide) and its one-pass outputs, cached."""
    model, meta = tiny_model(time_kernel_frames=3)
    rng = np.random.default_rng(1)
    cqt_TxF = rng.standard_normal((120, meta.n_bins)).astype(np.float32)
    passes = {}

    def one_pass(num_frames):
        if num_frames not in passes:
            frame_BxTxP, onset_BxTxP = runner.predictor(model)(cqt_TxF[None, :num_frames])
            passes[num_frames] = frame_BxTxP[0], onset_BxTxP[0]
        return passes[num_frames]

    return model, meta, cqt_TxF, one_pass


@pytest.mark.parametrize("name", ["transformer", "cnn_mlp"])
def test_predict_offline_equals_one_pass(tiny, name, float_tol):
    """Overlapping fixed windows give the whole-sequence outputs, edges included.

    Up to float32 round-off (tests/conftest.py `float_tol`): windows and the whole sequence
    are other shapes, so XLA may sum in other orders.
    """
    model, _, cqt_TxF, one_pass = tiny
    expected = one_pass(len(cqt_TxF))
    if name == "cnn_mlp":
        model, _ = tiny_model(name, time_kernel_frames=3)
        expected = [p[0] for p in runner.predictor(model)(cqt_TxF[None])]
    frame_TxP, onset_TxP = runner.predict_offline(model, cqt_TxF, step_frames=16, batch_size=3)
    np.testing.assert_allclose(frame_TxP, expected[0], **float_tol)
    np.testing.assert_allclose(onset_TxP, expected[1], **float_tol)


@pytest.mark.parametrize("num_frames,block", [(120, 7), (120, 1), (30, 4), (120, 120)])
def test_streaming_transcriber_equals_one_pass(tiny, num_frames, block, float_tol):
    """Frames pushed in blocks give the one-pass probabilities (up to `float_tol`) in a
    bounded buffer."""
    model, meta, cqt_TxF, one_pass = tiny
    cqt_TxF = cqt_TxF[:num_frames]
    runner = streaming.StreamingTranscriber(
        model, meta, decode.NoteDecoder.from_meta(meta), step_frames=8
    )
    kept = []  # what the decoder is given: every output's probabilities, once, in order
    decoder_push = runner.decoder.push
    runner.decoder.push = lambda f, o: (kept.append((f, o)), decoder_push(f, o))[1]
    sizes = []
    for i in range(0, num_frames, block):
        runner.push(cqt_TxF[i : i + block])
        sizes.append(runner.buffer_frames())
        # An output is computed as soon as its future context has arrived.
        assert runner.outputs_done == max(0, min(i + block, num_frames) - runner.future)
    runner.flush()
    assert max(sizes) <= runner.window + block
    frame_TxP, onset_TxP = (np.concatenate(p) for p in zip(*kept, strict=True))
    np.testing.assert_allclose(frame_TxP, one_pass(num_frames)[0], **float_tol)
    np.testing.assert_allclose(onset_TxP, one_pass(num_frames)[1], **float_tol)


def test_unbounded_models_cannot_stream():
    """A model attending over the whole input is refused with a clear message."""
    model, meta = tiny_model(long_range="full")
    with pytest.raises(ValueError, match="cannot run on windows.*long_range"):
        streaming.StreamingTranscriber(model, meta, decode.NoteDecoder.from_meta(meta))


def test_bad_frames_are_refused(tiny):
    """Frames with the wrong number of bins name the expected shape."""
    model, meta, _, _ = tiny
    runner = streaming.StreamingTranscriber(model, meta, decode.NoteDecoder.from_meta(meta))
    with pytest.raises(ValueError, match=f"T x {meta.n_bins}"):
        runner.push(np.zeros((4, meta.n_bins + 1), np.float32))
