"""A jit-compiled CQT magnitude in JAX that matches `features.cqt_magnitude` (librosa.cqt).

Owns `JaxCqt(cqt)`: kernels built once per `CqtConfig`; `magnitude(audio_S) -> mag_TxF`
(numpy in and out, in fixed buffers or chunks), `magnitude_fn(audio_S) -> mag_TxF` (a jax
array of static length, traceable inside other jitted code); and `agreement`, the measure
the tolerance below is stated in. Legend: S audio samples, N padded samples, T frames,
F CQT bins, K frame samples, L decimator block, B blocks, H rfft bins. Must not import
model, loop or metric code, nor librosa (only the tests and benchmark compare with it);
soxr (librosa's resampler) is read once per config, for its filter's gain.

Design: librosa's multirate algorithm and filters; only the resampler differs. librosa
computes octave i (top first) on the audio decimated by d = 2^i with soxr_hq, frames it
at hop/d with K samples (256 by default) and projects each frame's rfft on 48 filters
(Hann-windowed complex exponentials of length Q*sr/f, L1-normalised, FFT'd, each row's
smallest 1% of |FFT| dropped), times sqrt(d) twice, over sqrt(filter length). Here each
octave is one real matmul of time-domain frames with the equivalent kernels (sum over the
kept frequencies k >= 0 of B_k e^{-2 pi i k n / K}: the same projection in exact
arithmetic), and each halving a zero-phase low-pass with soxr_hq's own gain by
overlap-save FFTs, cut to the audio's span as soxr's output is (edge transients then meet
librosa's truncations).

Tolerance (agreement(): bins within 60 dB of their frame's peak and 120 dB of the
recording's; CPU float32): synthetic tones, chirps, clicks and noise: spectral peaks within
1e-5 relative, normalised features (20 dB a unit) within 3e-4. Rendered corpus music (16
recordings, 25-152 s): features within 0.02 (0.4 dB; 1e-3 at the 99.9th percentile),
peaks within 2e-2 (5e-5 in frames less than 40 dB under the recording's peak). The worst
bins sit in quiet fade-ins, 100+ dB under the loudest audio within a decimator block,
where float32 round-off is that size (librosa's own is a third to half of it). The same
on an H200 GPU (jax 0.11.2), whose output is within 1e-6 relative of the CPU's.

Lengths: `magnitude` puts the audio in a zero buffer (with margins for the lowest octave's
frames) of one of BUFFER_SAMPLES, the length a traced scalar and frames cropped after, so
every recording compiles at most four shapes (~1.5 s each on 2 idle CPU cores, kept on disk
by `inference.compile_cache`). Past the largest buffer (95 s at 22.05 kHz) it runs chunks
of `chunk_frames` frames, each with `context_frames` (1.5 s) of audio either side, within
float32 round-off of one pass (2e-5 at peaks, 4e-4 feature units on MAPS piano) and as
fast. Memory: ~16 bytes per buffer sample at the peak (XLA's count): 34 MB for the
largest. `magnitude_fn` (a static length under a caller's jit) pads to N = m * 2^k
samples (m in 4..7: at most 25% padding).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnotes.data import features
from jaxnotes.data.features import CqtConfig

SPARSITY = 0.01  # librosa.cqt's default: each filter drops its smallest 1% of |FFT|
# `magnitude`'s buffers (~6, 24, 48 and 95 s at 22.05 kHz): the only shapes it compiles.
BUFFER_SAMPLES = (2**17, 2**19, 2**20, 2**21)
BLOCK, GUARD = 8192, 256  # decimator block (full-rate samples), guard (output samples)
HIGHEST = jax.lax.Precision.HIGHEST  # TPU/GPU would otherwise use bf16/TF32 passes


def _octave_plan(cqt: CqtConfig):
    """librosa.cqt's octave schedule: [(decimation, hop, kernel_Kx2F)], top octave first.

    Mirrors librosa/core/constantq.py (vqt with gamma=0, hann, norm=1, scale=True,
    tuning=0) and filters.wavelet, in float64, then casts the kernels to float32.
    """
    bpo, sr = cqt.bins_per_octave, float(cqt.sr)
    ratios = 2.0 ** (np.arange(bpo) / bpo)
    freqs_F = np.multiply.outer(2.0 ** np.arange(cqt.n_octaves), ratios).ravel() * cqt.fmin_hz
    logf_F = np.log2(freqs_F)  # librosa's _relative_bandwidth: local bins per octave
    bpo_F = np.empty_like(freqs_F)
    bpo_F[0], bpo_F[-1] = 1 / (logf_F[1] - logf_F[0]), 1 / (logf_F[-1] - logf_F[-2])
    bpo_F[1:-1] = 2 / (logf_F[2:] - logf_F[:-2])
    alpha_F = (2.0 ** (2 / bpo_F) - 1) / (2.0 ** (2 / bpo_F) + 1)
    q_F = cqt.filter_scale / alpha_F
    # Early downsampling (librosa __early_downsample_count): hann's bandwidth is 1.50018 bins.
    cutoff = float(np.max(freqs_F * (1 + 0.5 * 1.50018 / q_F)))
    twos = (cqt.hop_length & -cqt.hop_length).bit_length() - 1
    early = min(
        max(0, int(np.ceil(np.log2(sr / 2 / cutoff)) - 1) - 1), max(0, twos - cqt.n_octaves + 1)
    )
    early_sr, hop, decimation = sr / 2**early, cqt.hop_length // 2**early, 2**early
    lengths_F = q_F * early_sr / freqs_F  # the final 1/sqrt(length) uses the early rate
    plan = []
    for i in range(cqt.n_octaves):
        bins = slice(cqt.n_bins - bpo * (i + 1), cqt.n_bins - bpo * i)
        rate = sr / decimation
        lengths = q_F[bins] * rate / freqs_F[bins]
        n_fft = int(2.0 ** np.ceil(np.log2(lengths.max())))
        basis_FxK = np.zeros((bpo, n_fft), np.complex128)
        for f, (length, freq) in enumerate(zip(lengths, freqs_F[bins], strict=True)):
            n = np.arange(-length // 2, length // 2, dtype=float)
            window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(len(n)) / len(n))  # periodic
            sig = np.exp(1j * n * 2 * np.pi * freq / rate) * window
            start = (n_fft - len(n)) // 2  # librosa.util.pad_center
            basis_FxK[f, start : start + len(n)] = sig / np.abs(sig).sum()
        basis_FxK *= lengths[:, None] / n_fft
        fft_FxH = np.fft.fft(basis_FxK, axis=1)[:, : n_fft // 2 + 1]
        fft_FxH = _sparsify(fft_FxH.astype(np.complex64)).astype(np.complex128)
        # librosa scales by sqrt(early_sr / rate) here and its resampling (scale=True) by
        # sqrt(2) per halving; our decimator keeps amplitude, so both factors go here.
        fft_FxH *= np.sqrt(early_sr / rate) * np.sqrt(decimation) / np.sqrt(lengths_F[bins, None])
        # <B, rfft(frame)> over k = 0..K/2 == <frame, sum_k B_k e^{-2 pi i k n / K}>.
        k_H = np.arange(n_fft // 2 + 1)
        phasor_HxK = np.exp(-2j * np.pi * np.outer(k_H, np.arange(n_fft)) / n_fft)
        kernel_KxF = (fft_FxH @ phasor_HxK).T
        kernel_Kx2F = np.concatenate([kernel_KxF.real, kernel_KxF.imag], axis=1)
        plan.append((decimation, hop, kernel_Kx2F.astype(np.float32)))
        if hop % 2 == 0:  # librosa halves the rate only while the hop stays whole
            hop, decimation = hop // 2, decimation * 2
    return plan


def _sparsify(x_FxH: np.ndarray) -> np.ndarray:
    """librosa.util.sparsify_rows: zero each row's smallest entries summing to < SPARSITY."""
    mags_FxH = np.abs(x_FxH)
    sorted_FxH = np.sort(mags_FxH, axis=1)
    cumulative_FxH = np.cumsum(sorted_FxH / mags_FxH.sum(axis=1, keepdims=True), axis=1)
    threshold_F = sorted_FxH[np.arange(len(x_FxH)), np.argmin(cumulative_FxH < SPARSITY, axis=1)]
    return np.where(mags_FxH >= threshold_F[:, None], x_FxH, 0)


class JaxCqt:
    """|CQT| of mono audio at `cqt.sr` in JAX, as features.cqt_magnitude computes it."""

    def __init__(self, cqt: CqtConfig):
        self.cqt = cqt
        plan = _octave_plan(cqt)
        self._octaves = tuple((decimation, hop) for decimation, hop, _ in plan)
        self._kernels = tuple(jnp.asarray(kernel_Kx2F) for _, _, kernel_Kx2F in plan)
        self._max_decimation = max(decimation for decimation, _ in self._octaves)
        self._gains, rate = {}, 1  # gain_H of the resampling step that reaches a decimation
        for decimation, _ in self._octaves:
            if decimation > rate:  # one step per librosa resample call (the early one: > 2)
                # Blocks of ~BLOCK full-rate samples at every rate keep float32 FFT
                # round-off as local in time as soxr's (and never under 4 guards long).
                block = max(BLOCK // rate, 4 * GUARD * (decimation // rate))
                self._gains[decimation] = _soxr_gain(decimation // rate, block)
                rate = decimation
        # Zeros each side of the audio: the frames centred on its first and last samples
        # reach half a frame out, at the lowest rate; whole samples at every rate.
        reach = max(kernel_Kx2F.shape[0] // 2 * d for d, _, kernel_Kx2F in plan)
        self.margin = -(-reach // self._max_decimation) * self._max_decimation
        # Chunks see this many frames of audio either side: twice the frames' own reach,
        # which leaves them within float32 round-off of one pass (jax_cqt_test).
        hop = cqt.hop_length
        self.context_frames = -(-2 * self.margin // hop)
        buffers = [n for n in BUFFER_SAMPLES if n > 2 * self.margin + hop]
        least = 2 * self.margin + (4 * self.context_frames + 1) * hop  # chunks >= 2 contexts
        if not buffers or buffers[-1] < least:
            buffers.append(self.bucket_samples(least - 2 * self.margin))
        self.buffers = tuple(buffers)
        self.chunk_frames = (self.buffers[-1] - 2 * self.margin) // hop - 2 * self.context_frames
        self._padded = jax.jit(self._padded_magnitude)

    def bucket_samples(self, num_samples: int) -> int:
        """Buffer length N for a recording of `num_samples`: the least m * 2^k, m in 4..7."""
        need = num_samples + 2 * self.margin
        # need <= 8 * 2^k, and 2^k a multiple of 2 * the largest decimation (whole halvings).
        k = max((need - 1).bit_length() - 3, (2 * self._max_decimation).bit_length() - 1)
        return min(m << k for m in (4, 5, 6, 7, 8) if (m << k) >= need)

    def magnitude(self, audio_S: np.ndarray) -> np.ndarray:
        """T x F float32 |CQT| of mono numpy audio, T = cqt.num_frames(len(audio_S)).

        In one of `buffers` when the audio fits one, else in chunks of `chunk_frames`
        frames, each computed with `context_frames` frames of audio either side (the
        recording's own edges where it has them) in the largest buffer: any length runs
        through at most `len(buffers)` compiled shapes, in bounded memory.
        """
        audio_S = np.asarray(audio_S, np.float32)
        if audio_S.ndim != 1:
            raise ValueError(f"JaxCqt expects mono audio, got shape {audio_S.shape}")
        num_frames, hop = self.cqt.num_frames(len(audio_S)), self.cqt.hop_length
        if len(audio_S) <= self.buffers[-1] - 2 * self.margin:
            return self._in_buffer(audio_S)[:num_frames]
        mag_TxF = np.empty((num_frames, self.cqt.n_bins), np.float32)
        chunk, context = self.chunk_frames, self.context_frames
        for first in range(0, num_frames, chunk):
            start, end = max(0, first - context), first + chunk + context
            part_S = (
                audio_S[start * hop : end * hop] if end < num_frames else audio_S[start * hop :]
            )
            count = min(chunk, num_frames - first)
            mag_TxF[first : first + count] = self._in_buffer(part_S)[first - start :][:count]
        return mag_TxF

    def _in_buffer(self, audio_S: np.ndarray) -> np.ndarray:
        """|CQT| of every frame of the smallest of `buffers` that holds `audio_S`."""
        size = min(n for n in self.buffers if n - 2 * self.margin >= len(audio_S))
        buffer_N = np.zeros(size, np.float32)
        buffer_N[self.margin : self.margin + len(audio_S)] = audio_S
        return np.asarray(self._padded(buffer_N, np.int32(len(audio_S))))

    def magnitude_fn(self, audio_S: jax.Array) -> jax.Array:
        """T x F |CQT| of a 1-D jax array, traceable (its length is static under jit)."""
        num_samples = audio_S.shape[0]
        pad = (self.margin, self.bucket_samples(num_samples) - self.margin - num_samples)
        buffer_N = jnp.pad(audio_S.astype(jnp.float32), pad)
        return self._padded_magnitude(buffer_N, num_samples)[: self.cqt.num_frames(num_samples)]

    def _padded_magnitude(self, buffer_N: jax.Array, num_samples) -> jax.Array:
        """|CQT| of every frame a buffer holds (audio at `margin`, `num_samples` long)."""
        num_frames = 1 + (buffer_N.shape[0] - 2 * self.margin) // self.cqt.hop_length
        signal_M, rate = buffer_N, 1  # signal_M: the buffer decimated by `rate`
        mags = []
        for (decimation, hop), kernel_Kx2F in zip(self._octaves, self._kernels, strict=True):
            start = self.margin // decimation
            if decimation > rate:
                signal_M = _decimate(signal_M, decimation // rate, self._gains[decimation])
                rate = decimation
                span = (num_samples + decimation - 1) // decimation  # soxr: ceil(S / d)
                index_M = jnp.arange(signal_M.shape[0])
                signal_M = jnp.where((index_M >= start) & (index_M < start + span), signal_M, 0)
            length = kernel_Kx2F.shape[0]
            frames_TxK = _frames(signal_M, start - length // 2, hop, num_frames, length)
            # The barrier keeps XLA from fusing the framing into the matmul's operand,
            # which made the hop-4 octave's matmul 20x slower on the CPU.
            frames_TxK = jax.lax.optimization_barrier(frames_TxK)
            out_Tx2F = jnp.dot(frames_TxK, kernel_Kx2F, precision=HIGHEST)
            bins = kernel_Kx2F.shape[1] // 2
            mags.append(jnp.hypot(out_Tx2F[:, :bins], out_Tx2F[:, bins:]))
        return jnp.concatenate(mags[::-1], axis=1)  # lowest octave first, as librosa's bins


def _soxr_gain(factor: int, block: int) -> np.ndarray:
    """soxr_hq's gain for `factor`:1 on the rfft grid of `block`, up to the new Nyquist.

    Read off soxr's impulse response (an impulse at each phase mod `factor`), as librosa
    calls it: zero-phase (soxr compensates its delay), flat to 0.91 of the new Nyquist,
    -6 dB at 0.957, -60 dB at 0.99. Copying the transition band matters: the sparsified
    filters' slowly decaying sidelobes see it, and an erfc fit within 0.003 of this gain
    left 10-20x larger errors on onsets and noise.
    """
    import soxr  # librosa's resampler (one of its dependencies); only for this table

    n = 4 * block
    h_N = np.zeros(n)  # full-rate impulse response, tap 0 at index 0 (circular)
    for phase in range(factor):
        impulse_N = np.zeros(n)
        impulse_N[n // 2 + phase] = 1.0
        out_M = soxr.resample(impulse_N, factor, 1, quality="HQ")
        h_N[(factor * np.arange(len(out_M)) - n // 2 - phase) % n] = out_M
    return np.fft.rfft(h_N).real[:: n // block][: block // (2 * factor) + 1].astype(np.float32)


def _decimate(signal_M: jax.Array, factor: int, gain_H: np.ndarray) -> jax.Array:
    """signal_M low-passed with soxr_hq's gain below the new Nyquist, every `factor`-th kept.

    Overlap-save in blocks of L = 2 * factor * (len(gain_H) - 1) samples, GUARD output
    samples discarded each side (soxr's impulse response is below 3e-8 there). Short FFTs
    keep float32 round-off local, as soxr's is (one FFT of a whole recording spread loud
    passages' round-off over quiet ones), and ran ~2x faster here.
    """
    n, guard, block = signal_M.shape[0], GUARD * factor, (len(gain_H) - 1) * 2 * factor
    step = block - 2 * guard
    num_blocks = -(-n // step)
    padded_M = jnp.pad(signal_M, (guard, num_blocks * step + guard - n))
    blocks_BxL = _frames(padded_M, 0, step, num_blocks, block)
    # irfft at length L/factor divides by L/factor, rfft's inverse by L: hence 1/factor.
    spectrum_BxH = jnp.fft.rfft(blocks_BxL)[:, : len(gain_H)] * gain_H
    out_BxL = jnp.fft.irfft(spectrum_BxH, block // factor)
    out_BxL = out_BxL[:, guard // factor : (guard + step) // factor] / factor
    return out_BxL.reshape(-1)[: n // factor]


def _frames(signal_M: jax.Array, start: int, hop: int, num_frames: int, length: int):
    """frames_TxK[t] = signal_M[start + t*hop :][:length], one gather for any hop.

    A gather compiles in ~0.1 s; the hop-4 octave's 64 strided slices took over 1 s.
    """
    index_TxK = start + hop * jnp.arange(num_frames)[:, None] + jnp.arange(length)
    return signal_M[index_TxK]


def agreement(
    reference_TxF: np.ndarray,
    mag_TxF: np.ndarray,
    cqt: CqtConfig,
    range_db: float = 60.0,
    depth_db: float = 120.0,
) -> dict[str, float]:
    """How closely mag_TxF follows reference_TxF (librosa's |CQT|): the stated tolerance.

    Over bins within `range_db` of their frame's loudest and `depth_db` of the recording's
    loudest (deeper is float32 round-off in both, e.g. digital silence at -135 dB):
    peak: max |mag - ref| / ref over spectral peaks (local maxima over frequency within
    20 dB of their frame's loudest bin); feature, feature_p999: max and 99.9th percentile
    of |difference of features.normalise(., cqt)| (20 dB a unit).
    """
    ref_TxF = reference_TxF
    ref_db_TxF = 20 * np.log10(np.maximum(ref_TxF, features.MAG_FLOOR))
    top_T1 = ref_db_TxF.max(axis=1, keepdims=True, initial=-np.inf)
    deep_TxF = ref_db_TxF >= ref_db_TxF.max(initial=-np.inf) - depth_db
    diff_TxF = np.abs(features.normalise(ref_TxF, cqt) - features.normalise(mag_TxF, cqt))
    diff_L = diff_TxF[(ref_db_TxF >= top_T1 - range_db) & deep_TxF]
    around_TxF = np.pad(ref_TxF, ((0, 0), (1, 1)), constant_values=-np.inf)
    peaks_TxF = (ref_TxF >= around_TxF[:, :-2]) & (ref_TxF >= around_TxF[:, 2:])
    peaks_TxF &= (ref_db_TxF >= top_T1 - 20) & deep_TxF
    rel_TxF = np.abs(mag_TxF - ref_TxF) / np.maximum(ref_TxF, features.MAG_FLOOR)
    return {
        "peak": float(rel_TxF[peaks_TxF].max(initial=0)),
        "feature": float(diff_L.max(initial=0)),
        "feature_p999": float(np.percentile(diff_L, 99.9)) if diff_L.size else 0.0,
    }
