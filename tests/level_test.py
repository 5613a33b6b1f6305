"""Level-invariant inputs: 'db_relative' features and a model's outputs ignore the recording's gain.

The running reference moves with the gain, so the features of a recording and of the same
recording 20 dB softer or louder are equal up to float32 round-off, wherever the reference is
above its floor; a stream split into any blocks is normalised exactly as the whole file.
"""

import dataclasses

import musicnet_fixtures as fx
import numpy as np
import pytest
from flax import nnx

from configs import transformer
from jaxnotes import models
from jaxnotes.data import features, labels, spec
from jaxnotes.inference import runner

SR = 22050
CQT = features.CqtConfig(sr=SR, bins_per_octave=24, normalisation="db_relative")
# A melody with chords, loud and soft, starting at once (no lead-in silence whose noise floor
# would sit below the reference's floor at -20 dB).
NOTES = [
    labels.Note(0.0, 0.8, 60),
    labels.Note(0.0, 0.8, 64),
    labels.Note(0.8, 1.4, 67),
    labels.Note(1.4, 3.0, 72),
    labels.Note(1.6, 3.0, 48),
]
GAINS_DB = (-20.0, -10.0, 10.0, 20.0)
# float32: 20*log10 of a gained magnitude differs from 20*log10(magnitude) + gain by a few
# ulps of ~100 dB (~1e-5 dB); the CQT of gained audio by float32 round-off of the filters.
# 1e-3 normalised units = 0.02 dB: far below anything a note changes (>= 0.5 units).
FEATURE_TOL = 1e-3
# Model outputs (probabilities) of inputs within FEATURE_TOL of each other.
PROB_TOL = 1e-3


def _audio(gain_db: float = 0.0) -> np.ndarray:
    return fx.render(NOTES, 3.5, SR) * np.float32(10 ** (gain_db / 20))


def test_features_ignore_gain():
    base_TxF = features.compute_cqt(_audio(), CQT)
    for gain in GAINS_DB:
        gained_TxF = features.compute_cqt(_audio(gain), CQT)
        np.testing.assert_allclose(gained_TxF, base_TxF, atol=FEATURE_TOL, err_msg=f"{gain} dB")
    # The fixed-reference 'db' features move by the gain: what the old models learnt.
    db = dataclasses.replace(CQT, normalisation="db")
    moved = features.compute_cqt(_audio(20.0), db) - features.compute_cqt(_audio(), db)
    assert np.median(moved[base_TxF > 0]) == pytest.approx(20.0 / features.DB_SCALE, abs=0.01)


def test_reference_follows_the_music_and_floors_silence():
    mag_TxF = features.cqt_magnitude(_audio(), CQT)
    out_TxF = features.normalise(mag_TxF, CQT)
    assert out_TxF.max() == pytest.approx(2.0, abs=1e-5)  # the loudest bin so far is the ref
    assert out_TxF.min() >= -2.0
    assert features.silence_value(CQT) == -2.0
    # A long pause: the reference releases at REF_RELEASE_DB_PER_S, so soft notes after it
    # come up again (by 2 dB/s here), bounded by the floor.
    normaliser = features.Normaliser(CQT)
    normaliser(mag_TxF)
    before = normaliser.ref_db
    normaliser(np.zeros((int(5 * CQT.frames_per_second), CQT.n_bins), np.float32))
    fallen = before - normaliser.ref_db
    assert fallen == pytest.approx(5 * features.REF_RELEASE_DB_PER_S, abs=0.1)


@pytest.mark.parametrize("split", [1, 7, 100])
def test_blocks_normalise_as_the_whole(split):
    mag_TxF = features.cqt_magnitude(_audio(), CQT)
    whole_TxF = features.normalise(mag_TxF, CQT)
    normaliser = features.Normaliser(CQT)
    parts = [normaliser(mag_TxF[i : i + split]) for i in range(0, len(mag_TxF), split)]
    # The same float64 reference, frame by frame, whatever the blocks: bit-identical.
    np.testing.assert_array_equal(np.concatenate(parts), whole_TxF)


def test_model_outputs_ignore_gain():
    """A transformer's probabilities on a recording 20 dB softer or louder stay within PROB_TOL."""
    config = transformer.get_config("tiny")
    config.cqt.normalisation = "db_relative"
    meta = spec.load_meta(config)
    cqt = features.CqtConfig.from_config(config.cqt)
    model = models.get_model("transformer", meta=meta, rngs=nnx.Rngs(0), **config.model)
    model.eval()
    audio_S = fx.render(NOTES, 3.5, cqt.sr)
    base, _ = runner.predict_offline(model, features.compute_cqt(audio_S, cqt))
    for gain in GAINS_DB:
        gained_S = audio_S * np.float32(10 ** (gain / 20))
        probs, _ = runner.predict_offline(model, features.compute_cqt(gained_S, cqt))
        assert np.abs(probs - base).max() < PROB_TOL, f"{gain} dB"


@pytest.mark.parametrize("block", [256, 5000])
def test_stream_normalises_as_the_file(block):
    """StreamingCqt carries the reference: a stream's features are the file's (streaming.TOLERANCE)."""
    from jaxnotes.inference import streaming

    audio_S = _audio(-12.0)
    offline_TxF = features.compute_cqt(audio_S, CQT)
    stream = streaming.StreamingCqt(CQT)
    parts = [stream.push(audio_S[i : i + block]) for i in range(0, len(audio_S), block)]
    streamed_TxF = np.concatenate([*parts, stream.flush()])
    assert streamed_TxF.shape == offline_TxF.shape
    diff_TxF = np.abs(streamed_TxF - offline_TxF)
    loud_TxF = offline_TxF >= offline_TxF.max() - streaming.LOUD_DB / features.DB_SCALE
    assert diff_TxF[loud_TxF].max() < streaming.TOLERANCE
    assert diff_TxF.max() < streaming.QUIET_TOLERANCE
