"""A sampled acoustic piano: Salamander Grand Piano V3 (Yamaha C5) for rendering training audio.

Owns fetching the samples from npm (`ensure_samples`) and rendering timed notes and
sustain pedal through them (`PianoSampler`). Must not import model, loop or metric code,
nor `corpus` (which may use this module).

The set holds 16 velocity layers of 30 pitches, a sample every 3 semitones from A0 (MIDI
21) to C8 (108), so every key is at most a semitone from a sample (B7 two: the C8 files
sound a semitone high). The piano is stretch-tuned as recorded: A0 about -25 cents, A7
+40. A `Voicing` (voicing.py) makes other pianos of the same samples. The samples are
CC BY 3.0 (Alexander Holm), packaged on npm by Jan Forst (MIT).
"""

import math
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import scipy.fft
import soundfile as sf

from jaxnotes.data import features
from jaxnotes.data.corpus.rendering import CorpusError
from jaxnotes.data.corpus.voicing import RECORDED, Voicing, partial_gain_db, sample_shift_N

PIANO_VERSION = "1.0.5"
PIANO_PACKAGES = tuple(f"@audio-samples/piano-velocity{k}@{PIANO_VERSION}" for k in range(1, 17))
SAMPLE_DIR_NAME = "salamander-v3"
NUM_LAYERS = 16
SAMPLE_PITCHES = tuple(range(21, 109, 3))  # A0, C1, D#1, F#1, A1, ... C8
MIN_PITCH, MAX_PITCH = 21, 108
# The C8 files sound at C#8 (4434 Hz in every layer; A7's sound at a stretched +38 cents),
# so C8 and B7 are shifted down from them by 1 and 2 semitones.
SOUNDING_PITCH = {108: 109}
_NOTE_NAMES = {9: "A", 0: "C", 3: "D#", 6: "F#"}
_SAMPLE_FILE = re.compile(r"(A|C|D#|F#)[0-8]v(1[0-6]|[1-9])\.ogg")


# Attack level (dB RMS over the first 100 ms, mono) of each layer, averaged over the 30
# pitches of the real set: the velocity curve interpolates these, so it is continuous.
LAYER_DB = (-35.6, -30.9, -28.4, -26.5, -25.2, -24.2, -23.1, -22.3, -21.4, -20.5, -19.6)
LAYER_DB += (-18.7, -17.4, -16.2, -14.8, -13.3)
RELEASE_S = (0.4, 0.1)  # damper release (time to fall 60 dB) at A0 and at E6, linear between
UNDAMPED_PITCH = 89  # F6 and above have no dampers: they ring on after the key is released
UNDAMPED_RING_S = 3.0  # ... for at most this long, then fade like a damped E6
RESTRIKE_FADE_S = 0.02  # a repeated key cuts its previous note with this fade
EDGE_FADE_S = 0.002  # fade-in before a sample's trimmed onset, fade-out at its end
ONSET_DB = -40.0  # a sample starts where it first reaches this level re its peak
REBALANCE_PAD = 8192  # samples read past a note's end, and zeros, when filtering partials
GAIN_JITTER_DB, DETUNE_CENTS = 1.0, 3.0  # per-note variation drawn from the seed


def sample_file(pitch: int, layer: int) -> str:
    """File name of a sampled pitch's velocity layer (1..16): 'D#4v7.ogg'."""
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}v{layer}.ogg"


def ensure_samples(cache_dir: str, progress: bool = True) -> str:
    """Path of `<cache_dir>/salamander-v3/` with all 16 layers, fetched with npm if missing.

    Resumable: each finished layer is kept in `salamander-v3.partial/` (marked by
    `.layer<k>.done`); the folder is renamed into place only once all are there and
    `.complete` is written, so an interrupted run leaves nothing that is used.
    """
    target = os.path.join(cache_dir, SAMPLE_DIR_NAME)
    if os.path.exists(os.path.join(target, ".complete")):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise CorpusError(
            "npm is not installed, and the piano samples are fetched with it: install npm "
            "(`sudo apt-get install npm`), or copy a finished salamander-v3/ folder into "
            f"{cache_dir}"
        )
    from tqdm import tqdm

    staging = f"{target}.partial"
    os.makedirs(staging, exist_ok=True)
    for name in os.listdir(staging):  # a killed run's download
        if name.startswith(".pack"):
            shutil.rmtree(os.path.join(staging, name))
    for layer, package in enumerate(
        tqdm(PIANO_PACKAGES, desc="piano samples", unit="layer", disable=not progress), 1
    ):
        done = os.path.join(staging, f".layer{layer}.done")
        if not os.path.exists(done):
            _fetch_layer(npm, package, layer, staging)
            open(done, "w").close()
    with open(os.path.join(staging, ".complete"), "w") as f:
        f.write("\n".join(PIANO_PACKAGES) + "\n")
    if os.path.exists(target):  # a folder without .complete: left by hand, never by us
        shutil.rmtree(target)
    os.rename(staging, target)
    return target


def _fetch_layer(npm: str, package: str, layer: int, staging: str) -> None:
    """Packs one npm package and extracts its ogg files (only those) into `staging`."""
    import tarfile

    with tempfile.TemporaryDirectory(dir=staging, prefix=".pack") as tmp:
        command = [npm, "pack", package, "--pack-destination", tmp, "--loglevel=error"]
        result = subprocess.run(command, capture_output=True, text=True)
        tarballs = [name for name in os.listdir(tmp) if name.endswith(".tgz")]
        if result.returncode != 0 or len(tarballs) != 1:
            lines = [line for line in result.stderr.splitlines() if "complete log" not in line]
            detail = lines[1] if len(lines) > 1 else (lines or ["no tarball written"])[0]
            raise CorpusError(
                f"`npm pack {package}` failed ({result.returncode}: {detail}): check that "
                "the npm registry is reachable (`npm config get registry`, `npm ping`)"
            )
        wanted = {sample_file(pitch, layer) for pitch in SAMPLE_PITCHES}
        extracted = os.path.join(tmp, "audio")
        os.makedirs(extracted)
        with tarfile.open(os.path.join(tmp, tarballs[0]), "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("package/audio/")
                # Regular files named like a sample only: no links, folders or '..' paths.
                if member.isfile() and name in wanted and _SAMPLE_FILE.fullmatch(name):
                    with (
                        tar.extractfile(member) as src,
                        open(os.path.join(extracted, name), "wb") as dst,
                    ):
                        shutil.copyfileobj(src, dst)
        missing = sorted(wanted - set(os.listdir(extracted)))
        if missing:
            raise CorpusError(f"{package} lacks {len(missing)} samples: {missing[:3]}")
        for name in sorted(wanted):
            os.replace(os.path.join(extracted, name), os.path.join(staging, name))


class PianoSampler:
    """Renders notes and sustain pedal through the samples of `sample_dir` at `sr` Hz.

    Samples are decoded when first used and kept (mono float32 at `sr`, ~2.4 MB each,
    1.2 GB if all 480 are used). Rendering is deterministic given `seed`.
    """

    def __init__(self, sample_dir: str, sr: int = 44100):
        if not os.path.exists(os.path.join(sample_dir, ".complete")):
            raise CorpusError(
                f"{sample_dir} is not a complete piano sample folder (no .complete): fetch "
                "it with jaxnotes.data.corpus.piano.ensure_samples(cache_dir)"
            )
        self.sample_dir, self.sr = sample_dir, int(sr)
        self._samples = {}

    def render(
        self,
        notes,
        pedal=(),
        num_samples: int | None = None,
        seed: int = 0,
        voicing: Voicing = RECORDED,
    ) -> np.ndarray:
        """Mono float32 audio at `sr` of `notes`, (pitch, start_s, end_s, velocity 1..127).

        `pedal` holds (down_s, up_s) sustain intervals; `voicing` makes another piano of the
        samples. The audio is `num_samples` long if given, else until the last sound ends;
        it is not normalised and may exceed 1.
        """
        pitch_N, start_N, end_N, velocity_N = _check_notes(notes)
        count, sr = len(pitch_N), self.sr
        # A key's damper falls at its release, or at pedal up if the pedal is down then.
        down_P, up_P = _pedal_intervals(pedal)
        k_N = np.searchsorted(down_P, end_N, side="right") - 1  # last press before release
        up_N = np.append(up_P, -np.inf)[k_N]  # k = -1: no press before
        damper_N = np.where(end_N < up_N, up_N, end_N)
        # The next strike of the same key cuts a note.
        next_N = np.full(count, np.inf)
        order = np.lexsort((start_N, pitch_N))
        same = pitch_N[order][1:] == pitch_N[order][:-1]
        next_N[order[:-1]] = np.where(same, start_N[order][1:], np.inf)
        # Fade (-60 dB) from the damper, or after ringing on for the undamped top notes.
        release_N = np.interp(pitch_N, (MIN_PITCH, UNDAMPED_PITCH - 1), RELEASE_S)
        release_N = release_N * voicing.release_scale
        fade_N = damper_N + np.where(pitch_N >= UNDAMPED_PITCH, UNDAMPED_RING_S, 0.0)
        stop_N = np.minimum(fade_N + release_N, next_N + RESTRIKE_FADE_S)
        # Nearest sample (at most a semitone away), layer and level, with the seed's jitter.
        rng = np.random.default_rng(seed)
        jitter_N2 = rng.uniform(-1, 1, (count, 2))  # row i: note i's, whatever follows it
        gain_db_N, cents_N = jitter_N2[:, 0] * GAIN_JITTER_DB, jitter_N2[:, 1] * DETUNE_CENTS
        cents_N = cents_N + voicing.cents + voicing.stretch_cents * (pitch_N - 69) / 12
        shift_N = sample_shift_N(voicing, pitch_N, MIN_PITCH, MAX_PITCH)
        wanted_N = np.clip(pitch_N + shift_N, MIN_PITCH, MAX_PITCH)
        base_N = MIN_PITCH + 3 * np.round((wanted_N - MIN_PITCH) / 3).astype(int)
        sounding_N = np.where(base_N == 108, SOUNDING_PITCH[108], base_N)
        ratio_N = 2.0 ** ((pitch_N - sounding_N + cents_N / 100) / 12)
        spread = 2.0 ** (voicing.unison_cents / 2 / 1200)  # each unison string's detune
        layer_N = np.clip(velocity_layer(velocity_N) + voicing.layer_shift, 1, NUM_LAYERS)
        gain_N = 10 ** ((velocity_db(velocity_N) - np.take(LAYER_DB, layer_N - 1) + gain_db_N) / 20)

        first_N = np.round(start_N * sr).astype(int)
        length_N = np.round((stop_N - start_N) * sr).astype(int)
        pieces = []
        for i in range(count):
            if num_samples is not None and first_N[i] >= num_samples:
                continue
            sample_S = self._sample(int(base_N[i]), int(layer_N[i]))
            # The sample's own length caps the note: its natural decay.
            n = min(length_N[i], int((len(sample_S) - 2) / (ratio_N[i] * spread)))
            if num_samples is not None:
                n = min(n, num_samples - first_N[i])
            if n > 0:
                pieces.append((i, n, sample_S))
        if voicing.partial_db:
            pieces = self._rebalanced(pieces, base_N, layer_N, ratio_N * spread, voicing)
        total = max((first_N[i] + n for i, n, _ in pieces), default=0)
        audio_S = np.zeros(total if num_samples is None else num_samples, np.float32)
        for i, n, sample_S in pieces:
            if spread == 1.0:
                note_S = _resample_linear(sample_S, ratio_N[i], n)
            else:  # two strings tuned apart, at half the level each
                note_S = _resample_linear(sample_S, ratio_N[i] * spread, n)
                note_S += _resample_linear(sample_S, ratio_N[i] / spread, n)
                note_S *= np.float32(0.5)
            note_S *= np.float32(gain_N[i])
            if voicing.damping_db_per_s > 0:
                rate = np.float32(-voicing.damping_db_per_s * math.log(10) / 20 / sr)
                note_S *= np.exp(np.arange(n, dtype=np.float32) * rate)
            fade = max(int(round((fade_N[i] - start_N[i]) * sr)), 0)
            if fade < n:  # exponential release to -60 dB over release_N
                decay = np.float32(-math.log(1000) / (release_N[i] * sr))
                note_S[fade:] *= np.exp(np.arange(n - fade, dtype=np.float32) * decay)
            cut = int(round((min(next_N[i], stop_N[i]) - start_N[i]) * sr))
            if cut < n:  # the key is struck again
                # n - cut is the fade's width give or take a sample of rounding.
                width = int(RESTRIKE_FADE_S * sr)
                note_S[cut:] *= np.clip(1 - np.arange(n - cut, dtype=np.float32) / width, 0, 1)
            audio_S[first_N[i] : first_N[i] + n] += note_S
        return audio_S

    def _rebalanced(self, pieces, base_N, layer_N, step_N, voicing: Voicing) -> list:
        """`pieces` (note, length, sample) with each sample's partials at `voicing.partial_db`.

        Each (sample, layer) is filtered once, zero-phase, over the part its notes read
        (`step_N`: samples read per output sample) and `REBALANCE_PAD` more.
        """
        reads = {}  # (sample pitch, layer) -> sample samples its notes read
        for i, n, _ in pieces:
            key = (int(base_N[i]), int(layer_N[i]))
            reads[key] = max(reads.get(key, 0), math.ceil(n * step_N[i]) + 2)
        filtered = {}
        for (pitch, layer), read in reads.items():
            sample_S = self._sample(pitch, layer)
            sample_S = sample_S[: min(len(sample_S), read + REBALANCE_PAD)]
            size = scipy.fft.next_fast_len(len(sample_S) + REBALANCE_PAD, real=True)
            f0 = features.midi_to_hz(SOUNDING_PITCH.get(pitch, pitch))
            ratio_H = scipy.fft.rfftfreq(size, 1 / self.sr) / f0
            across = (pitch - MIN_PITCH) / (MAX_PITCH - MIN_PITCH)
            gain_H = 10 ** (partial_gain_db(voicing, ratio_H, across) / 20)
            out_S = scipy.fft.irfft(scipy.fft.rfft(sample_S, size) * gain_H, size)
            filtered[pitch, layer] = out_S[: len(sample_S)].astype(np.float32)
        return [(i, n, filtered[int(base_N[i]), int(layer_N[i])]) for i, n, _ in pieces]

    def _sample(self, pitch: int, layer: int) -> np.ndarray:
        """Decoded sample, mono float32 at `sr`, onset at index 0, one zero appended."""
        key = (pitch, layer)
        if key not in self._samples:
            path = os.path.join(self.sample_dir, sample_file(pitch, layer))
            try:
                audio_SC, rate = sf.read(path, dtype="float32", always_2d=True)
            except (OSError, RuntimeError) as e:  # soundfile.LibsndfileError is a RuntimeError
                raise CorpusError(
                    f"cannot read piano sample {path} ({e}): delete {self.sample_dir} and "
                    "fetch it again with ensure_samples"
                ) from e
            audio_S = _mono(audio_SC, rate)
            if rate != self.sr:
                import soxr

                audio_S = soxr.resample(audio_S, rate, self.sr).astype(np.float32)
            peak = np.abs(audio_S).max(initial=0.0)
            if not peak > 0:
                raise CorpusError(f"piano sample {path} is silent: fetch it again")
            edge = int(EDGE_FADE_S * self.sr)
            onset = int(np.argmax(np.abs(audio_S) >= peak * 10 ** (ONSET_DB / 20)))
            audio_S = audio_S[max(onset - edge, 0) :].copy()
            ramp_E = np.linspace(0, 1, min(edge, len(audio_S)), dtype=np.float32)
            audio_S[: len(ramp_E)] *= ramp_E
            audio_S[len(audio_S) - len(ramp_E) :] *= ramp_E[::-1]
            self._samples[key] = np.append(audio_S, np.float32(0))
        return self._samples[key]


def velocity_layer(velocity_N: np.ndarray) -> np.ndarray:
    """Velocity layer (1..16) of MIDI velocities 1..127, equal spans of 127/16."""
    return np.clip(np.ceil(np.asarray(velocity_N) * NUM_LAYERS / 127), 1, NUM_LAYERS).astype(int)


def velocity_db(velocity_N: np.ndarray) -> np.ndarray:
    """Attack level (dB) a velocity sounds at: LAYER_DB at the layers' centres, linear between."""
    step = 127 / NUM_LAYERS
    centres = step * (np.arange(-1, NUM_LAYERS + 1) + 0.5)
    levels = (2 * LAYER_DB[0] - LAYER_DB[1], *LAYER_DB, 2 * LAYER_DB[-1] - LAYER_DB[-2])
    return np.interp(velocity_N, centres, levels)


def _check_notes(notes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pitch_N, start_N, end_N, velocity_N) of valid notes, or a ValueError naming the first bad one."""
    for i, note in enumerate(notes):
        try:
            pitch, start, end, velocity = (float(x) for x in note)
        except (TypeError, ValueError):
            raise ValueError(f"note {i} {note!r}: not (pitch, start_s, end_s, velocity)") from None
        problem = None
        if not (pitch == round(pitch) and MIN_PITCH <= pitch <= MAX_PITCH):
            problem = f"pitch {note[0]} is not a piano key ({MIN_PITCH}..{MAX_PITCH})"
        elif not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            problem = "needs 0 <= start_s < end_s (finite)"
        elif not (velocity == round(velocity) and 1 <= velocity <= 127):
            problem = f"velocity {note[3]} is not an integer in 1..127"
        if problem:
            raise ValueError(f"note {i} {tuple(note)}: {problem}")
    array_N4 = np.asarray(notes, np.float64).reshape(-1, 4)
    return array_N4[:, 0].astype(int), array_N4[:, 1], array_N4[:, 2], array_N4[:, 3].astype(int)


def _pedal_intervals(pedal) -> tuple[np.ndarray, np.ndarray]:
    """(down_P, up_P): the sustain intervals sorted, overlapping ones merged."""
    intervals = []
    for i, interval in enumerate(pedal):
        try:
            down, up = (float(x) for x in interval)
        except (TypeError, ValueError):
            raise ValueError(f"pedal {i} {interval!r}: not (down_s, up_s)") from None
        if not (math.isfinite(down) and math.isfinite(up) and 0 <= down < up):
            raise ValueError(f"pedal {i} {tuple(interval)}: needs 0 <= down_s < up_s (finite)")
        intervals.append((down, up))
    merged = []
    for down, up in sorted(intervals):
        if merged and down <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], up)
        else:
            merged.append([down, up])
    down_P, up_P = np.array(merged, np.float64).reshape(-1, 2).T
    return down_P, up_P


def _mono(audio_SC: np.ndarray, rate: int) -> np.ndarray:
    """One channel from the stereo pair, the right one shifted onto the left before summing.

    The spaced microphones hear a string up to a few ms apart: a plain sum would cancel
    some partials (L and R correlate at -0.87 on C5), so R is aligned to L first.
    """
    if audio_SC.shape[1] == 1:
        return audio_SC[:, 0].copy()
    left_S, right_S = audio_SC[:, 0], audio_SC[:, 1]
    n, max_lag = min(len(left_S), int(0.3 * rate)), int(0.003 * rate)
    cross = np.fft.rfft(left_S[:n], 2 * n) * np.conj(np.fft.rfft(right_S[:n], 2 * n))
    xcorr = np.fft.irfft(cross, 2 * n)  # xcorr[k] = sum_t L[t + k] R[t]
    lags = np.arange(-max_lag, max_lag + 1)
    lag = int(lags[np.argmax(xcorr[lags])])  # L lags R by `lag` samples
    shifted_S = np.zeros_like(right_S)
    if lag >= 0:
        shifted_S[lag:] = right_S[: len(right_S) - lag]
    else:
        shifted_S[:lag] = right_S[-lag:]
    return (left_S + shifted_S) * np.float32(0.5)


def _resample_linear(sample_S: np.ndarray, ratio: float, n: int) -> np.ndarray:
    """`n` samples of `sample_S` read `ratio` times faster, linearly interpolated."""
    position_S = np.arange(n, dtype=np.float64) * ratio
    index_S = position_S.astype(np.int64)
    frac_S = (position_S - index_S).astype(np.float32)
    before_S = sample_S[index_S]
    return before_S + frac_S * (sample_S[index_S + 1] - before_S)
