"""Models without a bounded context (long-range attention) run offline on overlapping segments.

The plan tiles every frame exactly once, from the segment where it is most central; a segment
that covers the piece is one pass; `test`, `jaxnotes-transcribe` and the API work for
long_range='full' and 'criss_cross', and the report says how the model was run.
"""

import json
import os

import musicnet_fixtures as fx
import numpy as np
import pytest
from flax import nnx

from configs import transformer
from jaxnotes import models
from jaxnotes.api import Transcriber
from jaxnotes.data import records, spec
from jaxnotes.evaluate import scoring
from jaxnotes.inference import runner
from jaxnotes.train import loop
from jaxnotes.transcribe import cli

pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.mark.parametrize("num_frames", [1, 42, 43, 44, 100, 1000, 1001])
@pytest.mark.parametrize(("size", "overlap"), [(43, 21), (43, 0), (50, 49), (8, 4)])
def test_plan_predicts_every_frame_once_from_its_most_central_segment(num_frames, size, overlap):
    plan = runner.segment_plan(num_frames, runner.Segments(size, overlap))
    covered = np.zeros(num_frames, int)
    for start, first, end in plan:
        assert 0 <= start <= first < end <= start + size and start + size <= max(num_frames, size)
        covered[first:end] += 1
        # Inner edges keep at least half the overlap of context (rounded down).
        if first > 0:
            assert first - start >= overlap // 2
        if end < num_frames:
            assert start + size - end >= overlap // 2
    np.testing.assert_array_equal(covered, 1)


def test_segments_are_checked():
    for frames, overlap in ((0, 0), (10, 10), (10, -1)):
        with pytest.raises(ValueError, match="segment_s"):
            runner.Segments(frames, overlap)


def _model(long_range):
    config = transformer.get_config("tiny")
    config.model.long_range = long_range
    meta = spec.load_meta(config)
    model = models.get_model("transformer", meta=meta, rngs=nnx.Rngs(0), **config.model)
    model.eval()
    return model, meta


@pytest.mark.parametrize("long_range", ["full", "criss_cross"])
def test_a_segment_covering_the_piece_is_one_pass(long_range):
    model, meta = _model(long_range)
    cqt_TxF = np.random.default_rng(1).normal(size=(90, meta.n_bins)).astype(np.float32)
    one_pass = runner.predictor(model)(cqt_TxF[None])
    got = runner.predict_offline(model, cqt_TxF, segments=runner.Segments(90, 45))
    for g, w in zip(got, one_pass, strict=True):
        np.testing.assert_array_equal(g, w[0])  # the very same call
    # Shorter segments: an approximation, but every frame predicted, in [0, 1].
    short = runner.predict_offline(model, cqt_TxF, segments=runner.Segments(40, 20))
    assert short[0].shape == got[0].shape and np.all((short[0] >= 0) & (short[0] <= 1))
    with pytest.raises(ValueError, match="cannot run on windows"):
        runner.predict_offline(model, cqt_TxF)  # without segments: the clear error


def test_outputs_come_from_the_planned_segment():
    """With a fake predictor that writes each window's start, every output names its segment."""
    segments = runner.Segments(10, 4)

    class Unbounded:
        def receptive_field(self):
            raise ValueError("whole input")

    def predict(windows_BxWxF):
        out = np.broadcast_to(windows_BxWxF[:, :1, :1], windows_BxWxF.shape[:2] + (1,))
        return out.copy(), out.copy()

    cqt_TxF = np.repeat(np.arange(37, dtype=np.float32)[:, None], 2, axis=1)
    frame_TxP, _ = runner.predict_offline(Unbounded(), cqt_TxF, segments=segments, predict=predict)
    for start, first, end in runner.segment_plan(37, segments):
        np.testing.assert_array_equal(frame_TxP[first:end, 0], start)


@pytest.mark.parametrize("long_range", ["full", "criss_cross"])
def test_long_range_models_are_tested_and_transcribed(long_range, tmp_path):
    root = tmp_path / "musicnet"
    fx.make_musicnet(root, seconds=4.0)
    config = fx.tiny_config(root, tmp_path / "cache")
    config.model.long_range = long_range
    workdir = str(tmp_path / "run")
    records.ensure_dataset(config, ("train", "test"))  # the process actions
    loop.train_and_evaluate(config, workdir, validate=True)
    result = scoring.run_test(config, workdir)
    assert result["pooled"]["pieces"] == 1
    with open(os.path.join(workdir, "report", "results.json")) as f:
        how = json.load(f)["checkpoint"]["inference"]
    window = spec.window_frames(config)
    overlap = int(round(window * config.eval.segment_overlap))
    assert f"segment_frames {window}" in how and f"overlap_frames {overlap}" in how
    wav = fx.audio_path(root, "test", "2100")
    out = tmp_path / "song.mid"
    assert cli.main([wav, "--workdir", workdir, "-o", str(out)]) == 0
    assert out.exists()
    api_notes = Transcriber.from_workdir(workdir).transcribe(wav).notes
    assert isinstance(api_notes, list)
    # Streaming still needs a bounded context: one clear line, exit status 1.
    assert cli.main([wav, "--workdir", workdir, "--stream", "--no-pace"]) == 1
