"""Tests of the CQT features (jaxnotes/data/features.py)."""

import numpy as np
import pytest

from jaxnotes.data import features

# Features are float32 20*log10(magnitude), shifted and scaled to ~[-2.5, 2.5]. numpy picks
# its float32 log10 kernel by CPU features (baseline, AVX2, AVX-512), and they differ by a
# few ulp: with AVX-512, log10(float32(1e-5)) = -5.0000005, so silence maps to -2.5000005,
# not -2.5. Features carry log10's error 1:1 (20*log10, then / 20), and an ulp of log10
# here (|log10| <= 5) is <= 4.8e-7: 1e-5 allows ~20 on any CPU, and is still far below
# what a dependence on other frames or a wrong floor would change.
NUMPY_LOG_TOL = dict(rtol=0, atol=1e-5)


def _sine(freq_hz, seconds, sr, amplitude=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.mark.parametrize("pitch", [33, 57, 69, 81, 100])
def test_sine_peaks_at_its_pitch_bin(pitch):
    """A sine at a MIDI pitch peaks in that pitch's CQT bin (else labels and features disagree)."""
    cqt = features.CqtConfig()
    x_TxF = features.compute_cqt(_sine(features.midi_to_hz(pitch), 2.0, cqt.sr), cqt)
    middle = x_TxF[x_TxF.shape[0] // 2]
    assert int(np.argmax(middle)) == int(cqt.bin_of_pitch(pitch))


def test_frame_count_and_dtype():
    """Frame t sits at t / fps: 1 + S // hop frames, float32, n_bins wide."""
    cqt = features.CqtConfig(bins_per_octave=24)
    audio_S = _sine(440.0, 1.3, cqt.sr)
    x_TxF = features.compute_cqt(audio_S, cqt)
    assert x_TxF.shape == (1 + len(audio_S) // cqt.hop_length, 24 * 8)
    assert x_TxF.dtype == np.float32
    assert cqt.frames_per_second == pytest.approx(22050 / 512)


def test_normalisation_is_per_frame():
    """A frame's features do not depend on the rest of the song (streams match files)."""
    cqt = features.CqtConfig()
    rng = np.random.default_rng(0)
    mag_TxF = rng.uniform(0, 2, size=(10, cqt.n_bins)).astype(np.float32)
    whole = features.normalise(mag_TxF, cqt)
    part = features.normalise(mag_TxF[3:5], cqt)
    np.testing.assert_allclose(whole[3:5], part, **NUMPY_LOG_TOL)
    # Silence maps to the floor, a fixed value.
    silent = features.normalise(np.zeros((1, 4), np.float32), cqt)
    floor = (features.DB_FLOOR - features.DB_CENTRE) / features.DB_SCALE
    np.testing.assert_allclose(silent, floor, **NUMPY_LOG_TOL)


def test_abbrev_changes_with_every_parameter():
    """Changing any CQT parameter gives a new dataset name (no stale datasets)."""
    base = features.CqtConfig()
    variants = [
        features.CqtConfig(sr=16000, n_octaves=7),
        features.CqtConfig(hop_length=256),
        features.CqtConfig(fmin_midi=24),
        features.CqtConfig(bins_per_octave=36),
        features.CqtConfig(n_octaves=7),
        features.CqtConfig(filter_scale=1.0),
    ]
    names = {base.abbrev()} | {v.abbrev() for v in variants}
    assert len(names) == len(variants) + 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"bins_per_octave": 40}, "bins_per_octave"),
        ({"hop_length": 0}, "hop_length"),
        ({"sr": 8000}, "n_octaves"),  # top bin above Nyquist
        ({"normalisation": "zscore"}, "normalisation"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    """Bad CQT settings fail early with the config field named."""
    with pytest.raises(ValueError, match=f"config.cqt.{field}"):
        features.CqtConfig(**kwargs)


def test_from_config_rejects_unknown_fields():
    """A typo in config.cqt is reported, not ignored."""
    with pytest.raises(ValueError, match="hop_lenght"):
        features.CqtConfig.from_config({"hop_lenght": 256})


def test_default_range_covers_musicnet_pitches():
    """Every pitch MusicNet uses (21..104) has its own bins below Nyquist."""
    cqt = features.CqtConfig()
    assert cqt.bin_of_pitch(21) >= 0
    assert cqt.bin_of_pitch(104) < cqt.n_bins
    assert cqt.n_bins == 384
