"""A random acoustic chain that makes dry synthesized audio sound recorded.

Owns the `Acoustics` parameters (a frozen dataclass, JSON-serialisable through
`dataclasses.asdict`), their random draw from a seed (`draw_acoustics`) and their
application to mono audio (`apply_acoustics`). Must not import model, loop or metric code.

The chain, in order, each stage drawn on or off independently:

  room reverb -> microphone/room EQ -> compression -> additive noise -> band limit -> gain

and, where asked for (`draw_acoustics(seed, distant=True)`), the direct sound's travel to a
microphone in the room: the recording lags the keys by the microphone's distance over the
speed of sound, a distance that follows the drawn direct-to-reverberant ratio.

Ranges and probabilities are chosen to cover real recordings, in particular MAPS (a
Disklavier recorded with ambient microphones in a room, 16 kHz) and MusicNet (close and
ambient microphones, 44.1 kHz). `apply_acoustics` is deterministic given the parameters:
the reverb tail and the noise come from seeds stored in them. On one core at 44.1 kHz it
runs at about 300x real time for typical draws and over 100x with every stage on and the
longest reverb; the reverb convolution is the costliest step.
"""

import dataclasses
import math

import numpy as np
import scipy.fft
import scipy.signal

# Room reverb, drawn for 80% of recordings (the rest: close microphones, dry rooms).
# RT60 0.2 s (small treated studio) .. 2.0 s (concert hall), log-uniform; direct-to-
# reverberant ratio -3 dB (far ambient microphone) .. +15 dB (close microphone).
REVERB_PROBABILITY = 0.8
RT60_S = (0.2, 2.0)
RT60_LOW_RATIO = (1.0, 1.4)  # below ~500 Hz rooms ring longer ...
RT60_HIGH_RATIO = (0.3, 0.8)  # ... and above ~4 kHz air and furnishings absorb more
DRR_DB = (-3.0, 15.0)
# A microphone's distance from the piano, where the direct sound's delay is simulated: the
# direct-to-reverberant energy ratio falls as 1/r^2 and is 0 dB at the room's critical
# distance, so r = critical * 10^(-DRR/20); critical distances 1-3 m (rooms to small halls)
# give 0.2-4 m over DRR_DB, 0.5-12 ms of travel at 343 m/s.
CRITICAL_DISTANCE_M = (1.0, 3.0)
SPEED_OF_SOUND_M_S = 343.0
EARLY_TAPS = (3, 8)  # sparse early reflections (walls, lid, floor) ...
EARLY_DELAY_MS = (5.0, 50.0)  # ... within 5-50 ms of the direct sound
EARLY_GAIN = (0.2, 0.7)  # |amplitude| relative to the direct sound, random sign
LOW_BAND_HZ, HIGH_BAND_HZ = 500.0, 4000.0
MAX_IR_S = 2.5  # the tail is cut where its slowest band is 60 dB down, at most this long
# Microphone and room EQ, drawn for 80%: low and high shelves and 1-3 peaking filters,
# +-6 dB each (microphone responses, placement, room modes), as RBJ-cookbook biquads.
EQ_PROBABILITY = 0.8
EQ_DB = 6.0
LOW_SHELF_HZ = (60.0, 400.0)
HIGH_SHELF_HZ = (2000.0, 10000.0)
PEAK_HZ = (100.0, 8000.0)  # log-uniform
PEAK_Q = (0.7, 3.0)
PEAKS = (1, 3)
# Band limit: 30% "band_16k", 20% "lowpass", 50% full band. "band_16k" leaves exactly what a
# 16 kHz recording such as MAPS holds once resampled to the model's rate (audio.py uses soxr_hq):
# flat to 7.5 kHz, nothing from 8 kHz on (80 dB down). It is an elliptic lowpass at the input
# rate, not a scipy.signal.resample_poly round trip through 16 kHz: that one leaves aliases and
# images 10-40 dB down between 8 and 9 kHz that no real 16 kHz file has, and costs 3x more.
# "lowpass" is an 8th-order Butterworth at 4-11 kHz: old recordings, lossy codecs, dull
# microphones.
BAND_LIMITS = ("none", "lowpass", "band_16k")
BAND_LIMIT_PROBABILITIES = (0.5, 0.2, 0.3)
LOWPASS_HZ = (4000.0, 11000.0)
LOWPASS_ORDER = 8
BAND_16K_PASS_HZ, BAND_16K_STOP_HZ = 7500.0, 7950.0
BAND_16K_RIPPLE_DB, BAND_16K_STOP_DB = 0.1, 80.0
# Additive noise, drawn for 70%: white (electronic hiss), pink (ambient room noise) or
# brown (rumble, ventilation) at 20..60 dB SNR against the whole signal's RMS, measured
# before the band limit (which then removes the part of the noise above its cutoff).
NOISES = ("none", "white", "pink", "brown")
NOISE_PROBABILITIES = (0.3, 0.7 / 3, 0.7 / 3, 0.7 / 3)
SNR_DB = (20.0, 60.0)
BROWN_CORNER_HZ = 20.0  # brown noise is integrated white noise, leaky below this
# Pink-noise filter (Robert Bristow-Johnson's 3-pole/3-zero fit to 1/f, within 0.5 dB).
PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)
# Mild compression, drawn for 30% (broadcast and commercial recordings): feed-forward,
# ratio 1.5-4, threshold 6-24 dB below the signal's peak, attack 1-20 ms, release 50-300 ms.
COMPRESS_PROBABILITY = 0.3
COMPRESS_RATIO = (1.5, 4.0)
COMPRESS_THRESHOLD_DB = (-24.0, -6.0)
COMPRESS_ATTACK_MS = (1.0, 20.0)
COMPRESS_RELEASE_MS = (50.0, 300.0)
COMPRESS_HOP_S = 0.001  # the envelope follower runs on 1 ms frames
# Overall gain: output peak -30..-1 dBFS (quiet to hot recordings, never clipping).
PEAK_DBFS = (-30.0, -1.0)
# Reverb is convolved by FFT overlap-add in blocks of about this many IR lengths.
CONVOLVE_BLOCK_IRS = 4


@dataclasses.dataclass(frozen=True)
class Acoustics:
    """Parameters of the acoustic chain; the defaults change nothing but the gain.

    Parameters of a stage that is off keep their defaults. Lists (from JSON) become tuples.
    """

    # Room reverb.
    reverb: bool = False
    rt60_s: float = 0.5  # mid-band (500 Hz - 4 kHz) reverberation time
    rt60_low_ratio: float = 1.0  # RT60 below 500 Hz / rt60_s
    rt60_high_ratio: float = 1.0  # RT60 above 4 kHz / rt60_s
    drr_db: float = 10.0  # direct-to-reverberant energy ratio of the impulse response
    early_delays_ms: tuple[float, ...] = ()
    early_gains: tuple[float, ...] = ()  # relative to the direct sound, signed
    reverb_seed: int = 0  # of the late tail's noise
    delay_ms: float = 0.0  # the direct sound's travel to the microphone: the audio lags this
    # Microphone/room EQ.
    eq: bool = False
    low_shelf_hz: float = 200.0
    low_shelf_db: float = 0.0
    high_shelf_hz: float = 4000.0
    high_shelf_db: float = 0.0
    peaks: tuple[tuple[float, float, float], ...] = ()  # (center_hz, gain_db, q)
    # Band limit.
    band_limit: str = "none"  # one of BAND_LIMITS
    lowpass_hz: float = 8000.0
    # Additive noise.
    noise: str = "none"  # one of NOISES
    snr_db: float = 40.0
    noise_seed: int = 0
    # Compression.
    compress: bool = False
    compress_ratio: float = 2.0
    compress_threshold_db: float = -12.0  # relative to the signal's peak
    compress_attack_ms: float = 5.0
    compress_release_ms: float = 100.0
    # Overall gain.
    peak_dbfs: float = -1.0

    def __post_init__(self):
        for name in ("early_delays_ms", "early_gains"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "peaks", tuple(tuple(float(v) for v in p) for p in self.peaks))
        if self.band_limit not in BAND_LIMITS:
            raise ValueError(f"band_limit {self.band_limit!r} is not one of {BAND_LIMITS}")
        if self.noise not in NOISES:
            raise ValueError(f"noise {self.noise!r} is not one of {NOISES}")
        if len(self.early_delays_ms) != len(self.early_gains):
            raise ValueError("early_delays_ms and early_gains differ in length")
        if self.peak_dbfs > 0.0:
            raise ValueError(f"peak_dbfs {self.peak_dbfs} would clip: it must be <= 0")


def identity_acoustics(peak_dbfs: float = -1.0) -> Acoustics:
    """Parameters that change nothing but the gain (the output peak is `peak_dbfs`)."""
    return Acoustics(peak_dbfs=peak_dbfs)


def draw_acoustics(seed: int, distant: bool = False) -> Acoustics:
    """A random acoustic chain, the same for the same seed.

    Every value is drawn whether its stage is on or not, so that switching one stage does
    not shift the others' draws; stages that are off keep the defaults. With `distant`, a
    chain with a room also delays the audio by the microphone's distance (drawn from a
    stream of its own: the rest of the chain is the same either way).
    """
    rng = np.random.default_rng(seed)

    def log_uniform(lo: float, hi: float) -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    taps = int(rng.integers(EARLY_TAPS[0], EARLY_TAPS[1] + 1))
    reverb = dict(
        reverb=bool(rng.random() < REVERB_PROBABILITY),
        rt60_s=log_uniform(*RT60_S),
        rt60_low_ratio=float(rng.uniform(*RT60_LOW_RATIO)),
        rt60_high_ratio=float(rng.uniform(*RT60_HIGH_RATIO)),
        drr_db=float(rng.uniform(*DRR_DB)),
        early_delays_ms=tuple(sorted(float(d) for d in rng.uniform(*EARLY_DELAY_MS, taps))),
        early_gains=tuple(
            float(g * s)
            for g, s in zip(rng.uniform(*EARLY_GAIN, taps), rng.choice([-1, 1], taps), strict=True)
        ),
        reverb_seed=int(rng.integers(2**31)),
    )
    num_peaks = int(rng.integers(PEAKS[0], PEAKS[1] + 1))
    peaks = [
        (log_uniform(*PEAK_HZ), float(rng.uniform(-EQ_DB, EQ_DB)), float(rng.uniform(*PEAK_Q)))
        for _ in range(PEAKS[1])
    ]
    eq = dict(
        eq=bool(rng.random() < EQ_PROBABILITY),
        low_shelf_hz=log_uniform(*LOW_SHELF_HZ),
        low_shelf_db=float(rng.uniform(-EQ_DB, EQ_DB)),
        high_shelf_hz=log_uniform(*HIGH_SHELF_HZ),
        high_shelf_db=float(rng.uniform(-EQ_DB, EQ_DB)),
        peaks=tuple(peaks[:num_peaks]),
    )
    band = dict(
        band_limit=str(rng.choice(BAND_LIMITS, p=BAND_LIMIT_PROBABILITIES)),
        lowpass_hz=float(rng.uniform(*LOWPASS_HZ)),
    )
    noise = dict(
        noise=str(rng.choice(NOISES, p=NOISE_PROBABILITIES)),
        snr_db=float(rng.uniform(*SNR_DB)),
        noise_seed=int(rng.integers(2**31)),
    )
    compress = dict(
        compress=bool(rng.random() < COMPRESS_PROBABILITY),
        compress_ratio=float(rng.uniform(*COMPRESS_RATIO)),
        compress_threshold_db=float(rng.uniform(*COMPRESS_THRESHOLD_DB)),
        compress_attack_ms=log_uniform(*COMPRESS_ATTACK_MS),
        compress_release_ms=log_uniform(*COMPRESS_RELEASE_MS),
    )
    peak_dbfs = float(rng.uniform(*PEAK_DBFS))
    drawn = {}
    for stage, on in ((reverb, "reverb"), (eq, "eq"), (compress, "compress")):
        if stage[on]:
            drawn |= stage
    if band["band_limit"] != "none":
        drawn |= band
    if noise["noise"] != "none":
        drawn |= noise
    if distant and drawn.get("reverb"):
        critical_m = np.random.default_rng([seed, 1]).uniform(*CRITICAL_DISTANCE_M)
        distance_m = critical_m * 10 ** (-drawn["drr_db"] / 20)
        drawn["delay_ms"] = float(1000 * distance_m / SPEED_OF_SOUND_M_S)
    return Acoustics(**drawn, peak_dbfs=peak_dbfs)


def apply_acoustics(audio_S: np.ndarray, sr: int, acoustics: Acoustics) -> np.ndarray:
    """The audio as recorded through the chain: float32 mono, the same length as the input."""
    a = acoustics
    x_S = np.asarray(audio_S, dtype=np.float64)
    if x_S.ndim != 1:
        raise ValueError(f"apply_acoustics takes mono audio, got shape {x_S.shape}")
    if a.delay_ms > 0:  # the same length: what the delay pushes past the end is cut
        lag = min(int(round(a.delay_ms * sr / 1000)), len(x_S))
        x_S = np.concatenate([np.zeros(lag), x_S[: len(x_S) - lag]])
    if a.reverb:
        x_S = _convolve(x_S, impulse_response(a, sr))
    if a.eq:
        x_S = scipy.signal.sosfilt(eq_sos(a, sr), x_S)
    if a.compress:
        x_S = _compress(x_S, sr, a)
    if a.noise != "none":
        x_S = x_S + _noise(x_S, sr, a)
    if a.band_limit == "lowpass" and a.lowpass_hz < 0.49 * sr:
        sos = scipy.signal.butter(LOWPASS_ORDER, a.lowpass_hz, fs=sr, output="sos")
        x_S = scipy.signal.sosfilt(sos, x_S)
    elif a.band_limit == "band_16k" and sr > 16000:  # a 16 kHz file is band-limited already
        x_S = scipy.signal.sosfilt(band_16k_sos(sr), x_S)
    peak = np.max(np.abs(x_S)) if len(x_S) else 0.0
    if peak > 0.0:
        x_S = x_S * (10.0 ** (a.peak_dbfs / 20.0) / peak)
    return x_S.astype(np.float32)


def impulse_response(acoustics: Acoustics, sr: int) -> np.ndarray:
    """The room's impulse response: a unit direct sound, early taps and a decaying noise tail.

    The tail is noise split into three bands (below 500 Hz, 500 Hz - 4 kHz, above 4 kHz),
    each decaying by 60 dB in its own RT60, built up over the early reflections. Early taps
    and tail together are scaled so that direct / reverberant energy is `drr_db`.
    """
    a = acoustics
    rt60s = a.rt60_s * np.array([a.rt60_low_ratio, 1.0, a.rt60_high_ratio])
    n = max(2, int(sr * min(float(rt60s.max()), MAX_IR_S)))
    t_S = np.arange(n) / sr
    white_S = np.random.default_rng(a.reverb_seed).standard_normal(n)
    low_S = scipy.signal.sosfilt(scipy.signal.butter(2, LOW_BAND_HZ, fs=sr, output="sos"), white_S)
    high_hz = min(HIGH_BAND_HZ, 0.45 * sr)
    high_S = scipy.signal.sosfilt(
        scipy.signal.butter(2, high_hz, "high", fs=sr, output="sos"), white_S
    )
    bands_BS = np.stack([low_S, white_S - low_S - high_S, high_S])
    # Amplitude falls by 60 dB (a factor 1000) over each band's RT60.
    decay_BS = np.exp(-math.log(1000.0) * t_S[None, :] / rt60s[:, None])
    tail_S = np.sum(bands_BS * decay_BS, axis=0)
    delays_s = np.array(a.early_delays_ms) / 1000.0
    first_s = float(delays_s.min()) if len(delays_s) else 0.005
    last_s = max(float(delays_s.max()) if len(delays_s) else 0.05, first_s + 0.005)
    ramp_S = np.clip((t_S - first_s) / (last_s - first_s), 0.0, 1.0)
    tail_S *= 0.5 - 0.5 * np.cos(np.pi * ramp_S)
    tail_S /= np.sqrt(np.sum(tail_S**2)) + 1e-12
    reverberant_S = tail_S
    for delay_s, gain in zip(delays_s, a.early_gains, strict=True):
        reverberant_S[min(int(round(delay_s * sr)), n - 1)] += gain
    energy = np.sum(reverberant_S**2)
    reverberant_S *= np.sqrt(10.0 ** (-a.drr_db / 10.0) / energy)
    reverberant_S[0] += 1.0  # the direct sound
    return reverberant_S


def _convolve(x_S: np.ndarray, ir_S: np.ndarray) -> np.ndarray:
    """x convolved with the IR, cut to x's length: FFT overlap-add in float32.

    What `scipy.signal.oaconvolve` does, but with the IR's spectrum computed once and FFTs
    a few IR lengths long: three times faster on long audio. float32 halves the cost again;
    its error, ~1e-7 of the peak, is far below any recording's noise floor.
    """
    n, taps = len(x_S), len(ir_S)
    size = scipy.fft.next_fast_len(max(CONVOLVE_BLOCK_IRS * taps, 2**14) + taps - 1, real=True)
    step = size - taps + 1
    ir_spectrum = scipy.fft.rfft(ir_S.astype(np.float32), size)
    x32_S = x_S.astype(np.float32)
    y_S = np.zeros(n + size, dtype=np.float32)
    for start in range(0, n, step):
        block_S = scipy.fft.irfft(
            scipy.fft.rfft(x32_S[start : start + step], size) * ir_spectrum, size
        )
        y_S[start : start + size] += block_S
    return y_S[:n].astype(np.float64)


def band_16k_sos(sr: int) -> np.ndarray:
    """The "band_16k" elliptic lowpass at rate `sr` (above 16 kHz), as second-order sections."""
    order, edge_hz = scipy.signal.ellipord(
        BAND_16K_PASS_HZ, BAND_16K_STOP_HZ, BAND_16K_RIPPLE_DB, BAND_16K_STOP_DB, fs=sr
    )
    return scipy.signal.ellip(
        order, BAND_16K_RIPPLE_DB, BAND_16K_STOP_DB, edge_hz, fs=sr, output="sos"
    )


def _biquad_peaking(center_hz: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * center_hz / sr
    alpha = math.sin(w0) / (2.0 * q)
    cos = math.cos(w0)
    b = [1.0 + alpha * amp, -2.0 * cos, 1.0 - alpha * amp]
    a = [1.0 + alpha / amp, -2.0 * cos, 1.0 - alpha / amp]
    return np.array(b + a) / a[0]


def _biquad_shelf(corner_hz: float, gain_db: float, sr: int, high: bool) -> np.ndarray:
    """RBJ-cookbook shelf with slope S = 1."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * corner_hz / sr
    cos, root = math.cos(w0), 2.0 * math.sqrt(amp) * math.sin(w0) / 2.0 * math.sqrt(2.0)
    sign = -1.0 if high else 1.0  # the high shelf is the low shelf with cos(w0) negated
    b = [
        amp * ((amp + 1) - sign * (amp - 1) * cos + root),
        sign * 2 * amp * ((amp - 1) - sign * (amp + 1) * cos),
        amp * ((amp + 1) - sign * (amp - 1) * cos - root),
    ]
    a = [
        (amp + 1) + sign * (amp - 1) * cos + root,
        -sign * 2 * ((amp - 1) + sign * (amp + 1) * cos),
        (amp + 1) + sign * (amp - 1) * cos - root,
    ]
    return np.array(b + a) / a[0]


def eq_sos(acoustics: Acoustics, sr: int) -> np.ndarray:
    """The EQ as second-order sections (shelves, then peaks); corners above 0.45 sr are clamped."""
    a = acoustics
    top_hz = 0.45 * sr
    sections = [
        _biquad_shelf(min(a.low_shelf_hz, top_hz), a.low_shelf_db, sr, high=False),
        _biquad_shelf(min(a.high_shelf_hz, top_hz), a.high_shelf_db, sr, high=True),
    ]
    sections += [_biquad_peaking(min(hz, top_hz), db, q, sr) for hz, db, q in a.peaks]
    return np.stack(sections)


def _noise(x_S: np.ndarray, sr: int, acoustics: Acoustics) -> np.ndarray:
    """Noise of the drawn colour at `snr_db` below x's RMS (none if x is silent)."""
    a = acoustics
    rms = np.sqrt(np.mean(x_S**2)) if len(x_S) else 0.0
    if rms == 0.0:
        return np.zeros_like(x_S)
    noise_S = np.random.default_rng(a.noise_seed).standard_normal(len(x_S), dtype=np.float32)
    noise_S = noise_S.astype(np.float64)
    if a.noise == "pink":
        noise_S = scipy.signal.lfilter(PINK_B, PINK_A, noise_S)
    elif a.noise == "brown":
        # Leaky integration: -6 dB/octave above BROWN_CORNER_HZ, flat below.
        pole = math.exp(-2.0 * math.pi * BROWN_CORNER_HZ / sr)
        noise_S = scipy.signal.lfilter([1.0], [1.0, -pole], noise_S)
    noise_S -= noise_S.mean()
    noise_S *= rms * 10.0 ** (-a.snr_db / 20.0) / (np.sqrt(np.mean(noise_S**2)) + 1e-30)
    return noise_S


def _compress(x_S: np.ndarray, sr: int, acoustics: Acoustics) -> np.ndarray:
    """Feed-forward compression: an envelope follower on 1 ms frames drives the gain.

    The envelope is a peak detector with instant attack and exponential release (computed
    without a loop, as a running maximum in the log domain); the gain reduction above the
    threshold, (1 - 1/ratio) dB per dB, is then smoothed with the attack time.
    """
    a = acoustics
    peak = np.max(np.abs(x_S)) if len(x_S) else 0.0
    if peak == 0.0:
        return x_S
    hop = max(1, int(round(COMPRESS_HOP_S * sr)))
    frames = -(-len(x_S) // hop)
    padded_S = np.pad(np.abs(x_S), (0, frames * hop - len(x_S)))
    level_F = np.log(np.maximum(padded_S.reshape(frames, hop).max(axis=1), peak * 1e-6))
    # Release: env[i] = max_j (level[j] - (i - j) r) = cummax(level[j] + j r) - i r.
    release = hop / (sr * a.compress_release_ms / 1000.0)  # natural-log units per frame
    index_F = np.arange(frames)
    envelope_F = np.maximum.accumulate(level_F + index_F * release) - index_F * release
    envelope_db_F = 20.0 / math.log(10.0) * envelope_F - 20.0 * math.log10(peak)
    over_db_F = np.maximum(envelope_db_F - a.compress_threshold_db, 0.0)
    gain_db_F = -over_db_F * (1.0 - 1.0 / a.compress_ratio)
    attack = math.exp(-hop / (sr * a.compress_attack_ms / 1000.0))
    gain_db_F = scipy.signal.lfilter(
        [1.0 - attack], [1.0, -attack], gain_db_F, zi=[gain_db_F[0] * attack]
    )[0]
    # Linear interpolation between frame centres, frame by frame (np.interp is slower).
    gain_F = 10.0 ** (gain_db_F / 20.0)
    next_F = np.append(gain_F[1:], gain_F[-1])
    fraction_H = (np.arange(hop) + 0.5) / hop
    gain_S = (gain_F[:, None] + (next_F - gain_F)[:, None] * fraction_H[None, :]).ravel()
    gain_S = gain_S[: len(x_S)]
    return x_S * gain_S
