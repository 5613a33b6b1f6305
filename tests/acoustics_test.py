"""Tests of the random acoustic chain (jaxnotes/data/acoustics.py)."""

import dataclasses
import json

import numpy as np
import scipy.signal

from jaxnotes.data.corpus import acoustics

SR = 16000


def _tones(seconds=2.0, sr=SR):
    """Decaying piano-like tones, a new one every 0.25 s."""
    t_S = np.arange(int(seconds * sr)) / sr
    audio_S = np.zeros_like(t_S)
    for i, hz in enumerate([220.0, 330.0, 440.0, 523.0, 659.0, 784.0, 880.0, 1047.0]):
        onset = i * 0.25
        on_S = t_S >= onset
        audio_S += on_S * np.sin(2 * np.pi * hz * t_S) * np.exp(-3.0 * (t_S - onset) * on_S)
    return (0.3 * audio_S).astype(np.float32)


def _white(seconds, sr, seed=0):
    return np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32)


def _psd(audio_S, sr):
    return scipy.signal.welch(audio_S.astype(np.float64), fs=sr, nperseg=1024)


def _band_db(freqs_F, power_F, lo_hz, hi_hz):
    return 10.0 * np.log10(np.mean(power_F[(freqs_F >= lo_hz) & (freqs_F <= hi_hz)]))


def test_draw_is_deterministic_and_json_serialisable():
    a = acoustics.draw_acoustics(5)
    assert a == acoustics.draw_acoustics(5)
    assert a != acoustics.draw_acoustics(6)
    text = json.dumps(dataclasses.asdict(a))
    assert acoustics.Acoustics(**json.loads(text)) == a


def test_draws_cover_the_stated_ranges():
    drawn = [acoustics.draw_acoustics(seed) for seed in range(400)]
    assert 0.7 < np.mean([a.reverb for a in drawn]) < 0.9
    assert 0.2 < np.mean([a.compress for a in drawn]) < 0.4
    assert 0.2 < np.mean([a.band_limit == "band_16k" for a in drawn]) < 0.4
    assert {a.noise for a in drawn} == {"none", "white", "pink", "brown"}
    rt60s = [a.rt60_s for a in drawn if a.reverb]
    assert 0.2 <= min(rt60s) < 0.3 and 1.7 < max(rt60s) <= 2.0
    for a in drawn:
        assert -30.0 <= a.peak_dbfs <= -1.0
        assert all(5.0 <= d <= 50.0 for d in a.early_delays_ms)
        assert all(abs(db) <= 6.0 and 0.7 <= q <= 3.0 for _, db, q in a.peaks)
        if a.noise != "none":
            assert 20.0 <= a.snr_db <= 60.0


def test_apply_is_deterministic_same_length_finite_float32_at_the_drawn_peak():
    audio_S = _tones(1.5)
    for seed in range(8):
        a = acoustics.draw_acoustics(seed)
        for sr in (SR, 22050):
            out_S = acoustics.apply_acoustics(audio_S, sr, a)
            assert out_S.dtype == np.float32 and out_S.shape == audio_S.shape
            assert np.all(np.isfinite(out_S))
            np.testing.assert_allclose(np.max(np.abs(out_S)), 10 ** (a.peak_dbfs / 20), rtol=1e-5)
            assert np.array_equal(out_S, acoustics.apply_acoustics(audio_S, sr, a))


def test_identity_changes_only_the_gain_and_silence_stays_silent():
    audio_S = _tones(1.0)
    out_S = acoustics.apply_acoustics(audio_S, SR, acoustics.identity_acoustics(-6.0))
    np.testing.assert_allclose(
        out_S, audio_S * (10 ** (-6 / 20) / np.max(np.abs(audio_S))), atol=1e-6
    )
    silence_S = np.zeros(SR, dtype=np.float32)
    assert np.array_equal(
        acoustics.apply_acoustics(silence_S, SR, acoustics.draw_acoustics(3)), silence_S
    )


def test_reverb_lengthens_the_decay_at_the_drawn_rt60():
    burst_S = _white(1.2, SR) * (np.arange(int(1.2 * SR)) < 0.1 * SR)
    dry = acoustics.identity_acoustics()
    wet = dataclasses.replace(dry, reverb=True, rt60_s=1.0, drr_db=0.0, reverb_seed=1)
    wet = dataclasses.replace(wet, early_delays_ms=(7.0, 19.0, 31.0), early_gains=(0.5, -0.4, 0.3))
    dry_S = acoustics.apply_acoustics(burst_S, SR, dry)
    wet_S = acoustics.apply_acoustics(burst_S, SR, wet)

    def energy_db(audio_S, lo_s, hi_s):
        return 10 * np.log10(np.sum(audio_S[int(lo_s * SR) : int(hi_s * SR)] ** 2) + 1e-30)

    assert energy_db(wet_S, 0.3, 0.4) - energy_db(wet_S, 0.0, 0.1) > -30.0
    assert energy_db(dry_S, 0.3, 0.4) - energy_db(dry_S, 0.0, 0.1) < -150.0
    # The tail decays by 60 dB per RT60 (1 s): fit the slope of 50 ms energies over 0.2-0.8 s.
    starts_s = np.arange(0.2, 0.8, 0.05)
    slope = np.polyfit(starts_s, [energy_db(wet_S, s, s + 0.05) for s in starts_s], 1)[0]
    assert -66.0 < slope < -54.0


def test_impulse_response_has_the_drawn_direct_to_reverberant_ratio():
    a = dataclasses.replace(acoustics.draw_acoustics(2), reverb=True, drr_db=4.0)
    ir_S = acoustics.impulse_response(a, SR)
    assert ir_S[0] == 1.0 and len(ir_S) <= acoustics.MAX_IR_S * SR  # the direct sound
    reverberant = np.sum(ir_S[1:] ** 2)
    np.testing.assert_allclose(10 * np.log10(1.0 / reverberant), 4.0, atol=0.01)


def test_16k_band_limit_removes_everything_above_8k_and_keeps_below_7k():
    for sr in (22050, 44100):
        noise_S = _white(2.0, sr)
        a = dataclasses.replace(acoustics.identity_acoustics(), band_limit="band_16k")
        freqs_F, before_F = _psd(noise_S, sr)
        _, after_F = _psd(acoustics.apply_acoustics(noise_S, sr, a), sr)
        gain_F = 10 * np.log10(after_F / before_F)
        gain_F -= np.mean(gain_F[(freqs_F > 500) & (freqs_F < 7000)])  # the output is normalised
        assert np.all(np.abs(gain_F[(freqs_F > 100) & (freqs_F < 7000)]) < 1.0)
        assert 10 * np.log10(np.mean(10 ** (gain_F[freqs_F > 8100] / 10))) < -30.0
    # At 16 kHz there is nothing above 8 kHz to remove: only the gain changes.
    noise_S = _white(1.0, SR)
    out_S = acoustics.apply_acoustics(noise_S, SR, a)
    np.testing.assert_allclose(
        out_S, noise_S * (np.max(np.abs(out_S)) / np.max(np.abs(noise_S))), atol=1e-6
    )


def test_lowpass_band_limit_removes_energy_above_the_cutoff():
    noise_S = _white(2.0, SR)
    a = dataclasses.replace(acoustics.identity_acoustics(), band_limit="lowpass", lowpass_hz=4000.0)
    freqs_F, after_F = _psd(acoustics.apply_acoustics(noise_S, SR, a), SR)
    assert _band_db(freqs_F, after_F, 200, 3000) - _band_db(freqs_F, after_F, 6000, 8000) > 30.0


def test_noise_is_added_at_the_drawn_snr():
    audio_S = _tones(2.0).astype(np.float64)
    for colour, snr_db in (("white", 20.0), ("pink", 35.0), ("brown", 50.0)):
        a = dataclasses.replace(
            acoustics.identity_acoustics(), noise=colour, snr_db=snr_db, noise_seed=4
        )
        out_S = acoustics.apply_acoustics(audio_S, SR, a).astype(np.float64)
        # The output is gain * (audio + noise): project the audio out to find the noise.
        gain = np.dot(out_S, audio_S) / np.dot(audio_S, audio_S)
        noise_S = out_S - gain * audio_S
        measured_db = 10 * np.log10(np.sum((gain * audio_S) ** 2) / np.sum(noise_S**2))
        assert abs(measured_db - snr_db) < 1.0, (colour, measured_db)


def test_eq_changes_white_noise_spectrum_as_the_parameters_say():
    noise_S = _white(4.0, SR)
    a = dataclasses.replace(
        acoustics.identity_acoustics(),
        eq=True,
        low_shelf_hz=300.0,
        low_shelf_db=-5.0,
        peaks=((2000.0, 6.0, 1.4),),
    )
    freqs_F, before_F = _psd(noise_S, SR)
    _, after_F = _psd(acoustics.apply_acoustics(noise_S, SR, a), SR)
    gain_F = after_F / before_F

    def gain_db(lo_hz, hi_hz):
        return 10 * np.log10(np.mean(gain_F[(freqs_F >= lo_hz) & (freqs_F <= hi_hz)]))

    reference_db = gain_db(700.0, 800.0)  # between the shelf and the peak: ~0 dB
    assert abs(gain_db(1980.0, 2020.0) - reference_db - 6.0) < 1.5
    assert abs(gain_db(20.0, 50.0) - reference_db + 5.0) < 1.5


def test_compression_narrows_the_dynamic_range_by_the_ratio():
    t_S = np.arange(2 * SR) / SR
    audio_S = np.sin(2 * np.pi * 440.0 * t_S) * np.where(t_S < 1.0, 1.0, 0.1)  # 20 dB apart
    a = dataclasses.replace(
        acoustics.identity_acoustics(),
        compress=True,
        compress_ratio=4.0,
        compress_threshold_db=-12.0,
        compress_attack_ms=5.0,
        compress_release_ms=100.0,
    )
    out_S = acoustics.apply_acoustics(audio_S, SR, a)

    def level_db(lo_s, hi_s):
        return 20 * np.log10(np.max(np.abs(out_S[int(lo_s * SR) : int(hi_s * SR)])))

    # The loud part is 12 dB over the threshold: cut by 12 * (1 - 1/4) = 9 dB.
    assert abs(level_db(0.5, 0.9) - level_db(1.5, 1.9) - 11.0) < 1.0


def test_a_distant_microphone_hears_the_room_later_by_its_distance():
    drawn = [
        (acoustics.draw_acoustics(s), acoustics.draw_acoustics(s, distant=True)) for s in range(400)
    ]
    for near, far in drawn:  # the same chain, with the travel where it has a room
        assert dataclasses.replace(far, delay_ms=0.0) == near
        assert (far.delay_ms > 0) == far.reverb
    delays_ms = np.array([far.delay_ms for _, far in drawn if far.reverb])
    drr_db = np.array([far.drr_db for _, far in drawn if far.reverb])
    # r = critical * 10^(-DRR/20), critical 1-3 m, at 343 m/s.
    lo, hi = acoustics.CRITICAL_DISTANCE_M
    meters = delays_ms / 1000 * acoustics.SPEED_OF_SOUND_M_S
    assert np.all(meters >= lo * 10 ** (-drr_db / 20) - 1e-9)
    assert np.all(meters <= hi * 10 ** (-drr_db / 20) + 1e-9)
    assert 0.4 < delays_ms.min() < 1.0 and 9.0 < delays_ms.max() < 12.4
    assert np.corrcoef(drr_db, np.log(delays_ms))[0, 1] < -0.8  # farther: less direct sound
    # Applied, the audio lags by the delay, the same length, the rest of the chain unchanged.
    audio_S = _tones(1.0)
    dry = acoustics.Acoustics(peak_dbfs=-6.0)
    late = dataclasses.replace(dry, delay_ms=10.0)
    out_S = acoustics.apply_acoustics(audio_S, SR, late)
    lag = int(round(0.010 * SR))
    assert out_S.shape == audio_S.shape and not np.any(out_S[:lag])
    np.testing.assert_array_equal(out_S[lag:], acoustics.apply_acoustics(audio_S, SR, dry)[:-lag])
