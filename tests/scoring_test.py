"""Scoring a trained model on a folder of test recordings alone (no train split).

The thresholds are the model's own (its thresholds.json, tuned on its validation split), the
report goes beside the training data's (report-<folder>/) and says where they came from, and
the workdir's thresholds.json is left as it was.
"""

import json
import os
import shutil

import musicnet_fixtures as fx
import pytest

from jaxnotes.data import records
from jaxnotes.evaluate import scoring
from jaxnotes.train import loop

pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config, workdir, cache) of a tiny model trained and tested on a small folder."""
    root = tmp_path_factory.mktemp("musicnet")
    fx.make_musicnet(root, test_names=("2100", "2101"))
    cache = tmp_path_factory.mktemp("cache")
    config = fx.tiny_config(root, cache)
    workdir = str(tmp_path_factory.mktemp("run"))
    records.ensure_dataset(config, ("train", "test"))  # the process actions
    loop.train_and_evaluate(config, workdir, validate=False)
    scoring.run_test(config, workdir)  # tunes and writes thresholds.json
    return config, workdir, str(root)


def _test_only_folder(tmp_path, source: str) -> str:
    folder = tmp_path / "my_recordings"
    for sub in ("test_data", "test_labels"):
        shutil.copytree(os.path.join(source, sub), folder / sub)
    return str(folder)


def test_a_test_only_folder_is_scored_with_the_models_thresholds(trained, tmp_path):
    config, workdir, source = trained
    thresholds_file = os.path.join(workdir, "thresholds.json")
    with open(thresholds_file) as f:
        tuned = json.load(f)
    before = os.stat(thresholds_file).st_mtime_ns
    config = config.copy_and_resolve_references()
    config.data.musicnet_dir = _test_only_folder(tmp_path, source)
    with pytest.raises(records.DatasetNotPreparedError, match="--action=process-test"):
        scoring.run_test(config, workdir)  # the test action never builds
    records.ensure_dataset(config, ("test",))
    result = scoring.run_test(config, workdir)
    assert result["pooled"]["pieces"] == 2
    with open(os.path.join(workdir, "report-my_recordings", "results.json")) as f:
        written = json.load(f)
    settings = written["settings"]
    assert settings["frame_threshold"] == tuned["frame_threshold"]
    assert settings["onset_threshold"] == tuned["onset_threshold"]
    assert settings["min_note_s"] == tuned["min_note_s"]  # tuned on validation too
    assert thresholds_file in settings["source"]
    assert os.stat(thresholds_file).st_mtime_ns == before  # never retuned on test data
    assert os.path.exists(os.path.join(workdir, "report", "results.json"))  # kept


def test_without_thresholds_the_error_says_what_to_do(trained, tmp_path):
    config, workdir, source = trained
    bare = tmp_path / "bare_run"
    shutil.copytree(workdir, bare)
    os.remove(bare / "thresholds.json")
    config = config.copy_and_resolve_references()
    config.data.musicnet_dir = _test_only_folder(tmp_path, source)
    records.ensure_dataset(config, ("test",))
    with pytest.raises(
        ValueError, match="thresholds.json.*gives no frame_threshold.*--config.eval"
    ):
        scoring.run_test(config, str(bare))
    config.eval.frame_threshold, config.eval.onset_threshold = 0.4, 0.3
    result = scoring.run_test(config, str(bare))
    assert result["settings"]["source"] == "config.eval"
    assert not os.path.exists(bare / "thresholds.json")


def test_data_with_another_hop_or_rate_is_a_clear_error(trained):
    """The test action compares every feature and label setting with the model's."""
    config, workdir, _ = trained
    for field, value in (("hop_length", 256), ("sr", 16000)):
        other = config.copy_and_resolve_references()
        other.cqt[field] = value
        with pytest.raises(ValueError, match=rf"{workdir} was trained with cqt\.{field} .*given"):
            scoring.run_test(other, workdir)
