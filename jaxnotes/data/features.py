"""CQT features: one config object shared by the dataset builder and transcription.

Owns `CqtConfig` (every parameter that changes the features) and
`compute_cqt(audio_S, cqt) -> cqt_TxF`. Legend: S audio samples, T frames,
F CQT bins. Must not import model, loop or metric code.

Frames follow librosa's centred convention: frame t is centred on sample
`t * hop_length`, so a recording of S samples has `1 + S // hop_length` frames
and frame t sits at time `t / frames_per_second`.
"""

import dataclasses
import functools
import math
from typing import Any

import numpy as np

NORMALISATIONS = ("db", "db_relative")
CQT_BACKENDS = ("auto", "librosa", "jax")

# 'db' normalisation: 20*log10(|C|) against a fixed reference, floored at
# DB_FLOOR, then mapped affinely so typical music lands near zero mean and unit
# spread. Fixed constants (not per-song z-scores as in the original) keep every
# frame's features independent of the rest of the song, so a live stream is
# normalised exactly as an offline file is. It keeps the recording's level: a
# model trained on it learns the training audio's loudness.
DB_FLOOR = -100.0
DB_CENTRE = -50.0
DB_SCALE = 20.0

# 'db_relative' normalisation: dB against a running reference, the loudest bin
# so far with a slow release: ref_t = max(peak_t, ref_{t-1} - REF_RELEASE_DB_PER_S / fps,
# REF_FLOOR_DB), where peak_t is frame t's loudest bin. Causal, with one number of
# state, so a stream is normalised exactly as a whole file; a gain change of the
# recording moves the bins and the reference alike and cancels (exactly, while the
# reference is above REF_FLOOR_DB: a full-scale sine is about +26 dB, real music's
# frame peaks lie around -15..+15 dB at natural levels). Bins more than REL_RANGE_DB
# below the reference are floored; ref-level bins map to +2, the floor to -2.
REF_RELEASE_DB_PER_S = 2.0
REF_FLOOR_DB = -70.0
REL_RANGE_DB = 80.0
MAG_FLOOR = 1e-8  # -160 dB: a silent bin sits below REF_FLOOR_DB - REL_RANGE_DB, on the floor


@dataclasses.dataclass(frozen=True)
class CqtConfig:
    """Constant-Q transform parameters (defaults follow the original project)."""

    sr: int = 22050
    hop_length: int = 512
    fmin_midi: float = 21.0
    bins_per_octave: int = 48
    n_octaves: int = 8
    filter_scale: float = 0.5
    normalisation: str = "db"

    def __post_init__(self):
        def bad(field, why):
            raise ValueError(f"config.cqt.{field}={getattr(self, field)!r}: {why}")

        if self.sr <= 0:
            bad("sr", "the sample rate must be positive")
        if self.hop_length <= 0:
            bad("hop_length", "must be a positive number of samples")
        if self.bins_per_octave <= 0 or self.bins_per_octave % 12:
            bad("bins_per_octave", "must be a positive multiple of 12 (whole bins per semitone)")
        if self.n_octaves <= 0:
            bad("n_octaves", "must be positive")
        if self.filter_scale <= 0:
            bad("filter_scale", "must be positive")
        if self.normalisation not in NORMALISATIONS:
            bad("normalisation", f"expected one of {NORMALISATIONS}")
        if self.fmax_hz >= self.sr / 2:
            bad(
                "n_octaves",
                f"the top bin ({self.fmax_hz:.0f} Hz) must stay below Nyquist ({self.sr / 2:.0f} Hz)"
                " for sr; lower n_octaves or fmin_midi, or raise sr",
            )

    @classmethod
    def from_config(cls, cfg: Any) -> "CqtConfig":
        """Builds from a `config.cqt` ConfigDict (or any mapping); a CqtConfig passes through."""
        if isinstance(cfg, cls):
            return cfg
        values = dict(cfg.items()) if hasattr(cfg, "items") else dict(cfg)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"config.cqt has unknown fields {unknown}; known: {sorted(names)}")
        return cls(**values)

    @property
    def n_bins(self) -> int:
        return self.bins_per_octave * self.n_octaves

    @property
    def bins_per_semitone(self) -> int:
        return self.bins_per_octave // 12

    @property
    def fmin_hz(self) -> float:
        return midi_to_hz(self.fmin_midi)

    @property
    def fmax_hz(self) -> float:
        return self.fmin_hz * 2.0 ** ((self.n_bins - 1) / self.bins_per_octave)

    @property
    def frames_per_second(self) -> float:
        return self.sr / self.hop_length

    def bin_of_pitch(self, midi_pitch: float) -> float:
        """Fractional CQT bin whose centre frequency is `midi_pitch`."""
        return (midi_pitch - self.fmin_midi) * self.bins_per_semitone

    def num_frames(self, num_samples: int) -> int:
        """Frames of a recording with `num_samples` samples at rate `sr`."""
        return 1 + num_samples // self.hop_length

    def abbrev(self) -> str:
        """A name for datasets built with these features; any change gives a new name."""
        fs = f"{self.filter_scale:g}".replace(".", "p")
        fmin = f"{self.fmin_midi:g}".replace(".", "p")
        return (
            f"sr{self.sr}_hop{self.hop_length}_m{fmin}_bpo{self.bins_per_octave}"
            f"_oct{self.n_octaves}_fs{fs}_{self.normalisation}"
        )


def midi_to_hz(midi_pitch: float) -> float:
    return 440.0 * 2.0 ** ((midi_pitch - 69.0) / 12.0)


def cqt_magnitude(audio_S: np.ndarray, cqt: CqtConfig) -> np.ndarray:
    """|CQT| of mono audio at `cqt.sr`, as a T x F float32 array."""
    import librosa  # deferred: importing librosa costs ~1 s

    mag_FxT = np.abs(
        librosa.cqt(
            np.asarray(audio_S, dtype=np.float32),
            sr=cqt.sr,
            hop_length=cqt.hop_length,
            fmin=cqt.fmin_hz,
            n_bins=cqt.n_bins,
            bins_per_octave=cqt.bins_per_octave,
            filter_scale=cqt.filter_scale,
            res_type="soxr_hq",
        )
    )
    return np.ascontiguousarray(mag_FxT.T, dtype=np.float32)


class Normaliser:
    """CQT magnitudes -> model inputs, for one recording or stream, frames in order.

    Call it on consecutive blocks of frames (T x F, T >= 0); it carries the running
    reference of 'db_relative' (see REF_* above) from block to block, so any split of a
    recording into blocks gives the same features as one call on the whole of it.
    """

    def __init__(self, cqt: CqtConfig):
        self.cqt = cqt
        self.ref_db = -math.inf  # reference after the last frame seen

    def __call__(self, mag_TxF: np.ndarray) -> np.ndarray:
        if self.cqt.normalisation == "db":
            db_TxF = 20.0 * np.log10(np.maximum(mag_TxF, 10.0 ** (DB_FLOOR / 20.0)))
            return ((db_TxF - DB_CENTRE) / DB_SCALE).astype(np.float32)
        db_TxF = 20.0 * np.log10(np.maximum(mag_TxF, MAG_FLOOR).astype(np.float32))
        ref_T = self._reference(db_TxF.max(axis=1, initial=-np.inf))
        rel_TxF = np.maximum(db_TxF - ref_T[:, None].astype(np.float32), -REL_RANGE_DB)
        return ((rel_TxF + REL_RANGE_DB / 2) / DB_SCALE).astype(np.float32)  # 20 dB a unit

    def _reference(self, peak_T: np.ndarray) -> np.ndarray:
        """ref_t = max(peak_t, ref_{t-1} - release, floor) for the block, in closed form:
        with r = release per frame, ref_t + r*t is a running max of peak_s + r*s."""
        if len(peak_T) == 0:
            return np.zeros(0, np.float64)
        release = REF_RELEASE_DB_PER_S / self.cqt.frames_per_second
        t_T = np.arange(len(peak_T), dtype=np.float64)
        lifted_T = peak_T.astype(np.float64) + release * t_T
        lifted_T[0] = max(lifted_T[0], self.ref_db - release)
        ref_T = np.maximum(np.maximum.accumulate(lifted_T) - release * t_T, REF_FLOOR_DB)
        self.ref_db = float(ref_T[-1])
        return ref_T


def normalise(mag_TxF: np.ndarray, cqt: CqtConfig) -> np.ndarray:
    """Model inputs of a whole recording's CQT magnitudes (see Normaliser)."""
    return Normaliser(cqt)(mag_TxF)


@functools.lru_cache(maxsize=4)
def _jax_cqt(cqt: CqtConfig):
    from jaxnotes.data import jax_cqt  # deferred: imports JAX, builds kernels once per config

    return jax_cqt.JaxCqt(cqt)


def silence_value(cqt: CqtConfig) -> float:
    """The normalised value of a silent bin: the floor of either normalisation."""
    return float(normalise(np.zeros((1, 1), np.float32), cqt)[0, 0])


def compute_cqt(audio_S: np.ndarray, cqt: CqtConfig, backend: str = "librosa") -> np.ndarray:
    """Normalised CQT features (T x F float32) of mono audio sampled at `cqt.sr`.

    `backend` 'librosa' is the reference (the dataset builder's); 'jax' is `jax_cqt.JaxCqt`,
    within its stated tolerance of librosa and faster once compiled (0.35-0.6x librosa's
    time on a 2-core CPU; at most four compiled shapes for any length, which the
    transcription entry points keep on disk: `inference.compile_cache`); 'auto' is 'jax'.
    """
    if audio_S.ndim != 1:
        raise ValueError(f"compute_cqt expects mono audio, got shape {audio_S.shape}")
    if backend not in CQT_BACKENDS:
        raise ValueError(f"CQT backend {backend!r}: expected one of {CQT_BACKENDS}")
    if backend in ("auto", "jax"):
        mag_TxF = _jax_cqt(cqt).magnitude(audio_S)
    else:
        mag_TxF = cqt_magnitude(audio_S, cqt)
    expected = cqt.num_frames(len(audio_S))
    if mag_TxF.shape[0] != expected:  # guards the frame-time convention everything relies on
        raise AssertionError(f"CQT gave {mag_TxF.shape[0]} frames, expected {expected}")
    return normalise(mag_TxF, cqt)
