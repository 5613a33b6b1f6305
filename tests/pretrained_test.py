"""The pretrained model shipped in the package, and the Python API around it.

The clip is rendered here by fluidsynth through a General-MIDI piano (FluidR3), a melody and
chords the shipped model has never heard, and scored with mir_eval against the notes sent.
"""

import os
import subprocess

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from flax import nnx

from configs import transformer
from jaxnotes import models, pretrained
from jaxnotes.api import Transcriber
from jaxnotes.data import spec
from jaxnotes.data.corpus import rendering
from jaxnotes.inference import runner
from jaxnotes.transcribe import cli

SR = 44100
# (pitch, start_s, end_s): a C major scale, then chords over two octaves, then a low bass.
CLIP_NOTES = [(60 + step, 0.5 + 0.35 * i, 0.8 + 0.35 * i) for i, step in enumerate((0, 2, 4, 5, 7))]
CLIP_NOTES += [(p, 2.5, 3.4) for p in (48, 64, 67, 72)] + [(p, 3.6, 4.5) for p in (53, 65, 69)]
CLIP_NOTES += [(36, 4.8, 5.6), (79, 4.8, 5.6)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(wav path, samples, notes) of the clip, rendered with fluidsynth's piano."""
    folder = tmp_path_factory.mktemp("clip")
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(80, p, s, e) for p, s, e in CLIP_NOTES]
    midi.instruments.append(piano)
    midi.write(str(folder / "clip.mid"))
    wav = str(folder / "clip.wav")
    font = rendering.find_soundfont("FluidR3_GM.sf2")
    command = [rendering.find_fluidsynth(), "-ni", "-q", "-F", wav, "-r", str(SR)]
    subprocess.run([*command, font, str(folder / "clip.mid")], check=True, capture_output=True)
    samples_SC, _ = sf.read(wav, dtype="float32", always_2d=True)
    return wav, samples_SC, CLIP_NOTES


@pytest.fixture(scope="module")
def shipped():
    return Transcriber.pretrained()


def _onset_f1(notes, reference) -> float:
    ref_intervals = np.array([(s, e) for _, s, e in reference])
    ref_pitches = np.array([pretty_midi.note_number_to_hz(p) for p, _, _ in reference])
    est_intervals = np.array([(n.start_s, n.end_s) for n in notes]).reshape(-1, 2)
    est_pitches = np.array([pretty_midi.note_number_to_hz(n.pitch) for n in notes])
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals, ref_pitches, est_intervals, est_pitches, offset_ratio=None
    )
    return f1


def test_the_package_ships_a_model_with_its_card():
    assert pretrained.available()
    for name in ("MODEL_CARD.md", pretrained.WEIGHTS_FILE, *pretrained.RUN_FILES):
        assert os.path.exists(os.path.join(pretrained.MODEL_DIR, name)), name
    with np.load(os.path.join(pretrained.MODEL_DIR, pretrained.WEIGHTS_FILE)) as weights:
        assert all(weights[k].dtype != object for k in weights.files)  # plain arrays


def test_shipped_model_transcribes_a_rendered_clip(shipped, clip):
    wav, _, reference = clip
    result = shipped.transcribe(wav)
    # An unseen clip of an unseen piano sound: most notes, onsets within 50 ms.
    assert _onset_f1(result.notes, reference) >= 0.8
    assert result.frame_probs_TxP.shape == (len(result.frame_probs_TxP), 88)
    assert result.seconds == pytest.approx(sf.info(wav).duration, abs=0.01)


def test_samples_and_path_give_the_same_notes(shipped, clip):
    wav, samples_SC, _ = clip
    from_path = shipped.transcribe(wav)
    from_samples = shipped.transcribe(samples_SC, sr=SR)
    assert from_samples.notes == from_path.notes
    with pytest.raises(ValueError, match="sr="):
        shipped.transcribe(samples_SC)
    with pytest.raises(ValueError, match="NaN"):
        shipped.transcribe(np.full(SR, np.nan, np.float32), sr=SR)


def test_command_line_uses_the_shipped_model_without_workdir(clip, tmp_path, capsys):
    wav, _, reference = clip
    out = tmp_path / "clip.mid"
    assert cli.main([wav, "-o", str(out)]) == 0
    assert "shipped pretrained model" in capsys.readouterr().err
    notes = pretty_midi.PrettyMIDI(str(out)).instruments[0].notes
    ref_pitches = {p for p, _, _ in reference}
    assert len(ref_pitches & {n.pitch for n in notes}) >= 0.8 * len(ref_pitches)


def test_weights_round_trip_through_npz(tmp_path):
    """save_weights then build_model give a model with the same outputs, bit for bit."""
    config = transformer.get_config("tiny")
    meta = spec.load_meta(config)
    model = models.get_model("transformer", meta=meta, rngs=nnx.Rngs(3), **config.model)
    model.eval()
    path = str(tmp_path / "w.npz")
    pretrained.save_weights(model, path)
    loaded = pretrained.build_model(config, meta, path)
    cqt_TxF = np.random.default_rng(0).normal(size=(100, meta.n_bins)).astype(np.float32)
    got = runner.predict_offline(loaded, cqt_TxF)
    want = runner.predict_offline(model, cqt_TxF)
    np.testing.assert_array_equal(got[0], want[0])  # the same weights, the same code path
    other = transformer.get_config("tiny")
    other.model.embed_dim = 32
    with pytest.raises(ValueError, match="shape"):
        pretrained.build_model(other, meta, path)


def test_missing_model_says_what_to_do(tmp_path):
    with pytest.raises(pretrained.PretrainedMissingError, match="--workdir"):
        pretrained.load(str(tmp_path))
