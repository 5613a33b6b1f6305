"""Prepared datasets: only the process actions build; readers open read-only and never build,
render or delete; a model is only scored on data with its own features and labels."""

import os

import musicnet_fixtures as fx
import pytest

from jaxnotes.data import pipeline, records, spec


def _dataset_files(path) -> dict[str, int]:
    """{relative path: mtime_ns} of every file of a finished dataset."""
    out = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            out[os.path.relpath(full, path)] = os.stat(full).st_mtime_ns
    return out


def test_a_reader_never_builds(tmp_path):
    """Before process-train, every reader fails with one message naming the action to run,
    and nothing is written to the cache."""
    fx.make_musicnet(tmp_path / "mn", notes_per_piece=3)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache")
    readers = {
        "piece_info": lambda: records.piece_info(config, "train"),
        "steps_per_epoch": lambda: pipeline.steps_per_epoch(config, "train"),
        "make_train_iter": lambda: pipeline.make_train_iter(config, "train"),
        "make_eval_iter": lambda: pipeline.make_eval_iter(config, "validation"),
    }
    for read in readers.values():
        with pytest.raises(records.DatasetNotPreparedError, match="--action=process-train"):
            read()
    with pytest.raises(records.DatasetNotPreparedError, match="--action=process-test"):
        records.piece_info(config, "test")
    assert not os.path.exists(tmp_path / "cache")


def test_a_stale_dataset_is_read_not_deleted_until_the_process_action(tmp_path):
    """A source file changed after the build: readers keep reading the finished dataset
    untouched (a running training is never pulled from under it); the process action
    rebuilds it."""
    fx.make_musicnet(tmp_path / "mn", notes_per_piece=3)
    config = fx.tiny_config(tmp_path / "mn", tmp_path / "cache")
    path = records.ensure_dataset(config, ("train",))["train"]
    built = _dataset_files(path)
    train_iter = pipeline.make_train_iter(config, "train")
    next(train_iter)
    label = sorted((tmp_path / "mn" / "train_labels").iterdir())[0]
    stat = os.stat(label)
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "edited"
    assert records.piece_info(config, "train")
    assert pipeline.steps_per_epoch(config, "train") >= 1
    next(train_iter)
    next(pipeline.make_eval_iter(config, "validation"))
    assert _dataset_files(path) == built
    assert records.ensure_dataset(config, ("train",))["train"] == path
    assert _dataset_files(path) != built  # rebuilt by the process action only


@pytest.mark.parametrize(
    "section,field,value",
    [("cqt", "hop_length", 256), ("cqt", "sr", 16000), ("data", "max_pitch", 96)],
)
def test_inputs_of_another_kind_are_named(tmp_path, section, field, value):
    """Any feature or label setting that differs from the model's is a one-line error naming
    the field and both values (not just the bin and output counts)."""
    trained = fx.tiny_config(tmp_path / "mn", tmp_path / "cache")
    given = trained.copy_and_resolve_references()
    given[section][field] = value
    spec.check_same_inputs(trained, trained, "the model")  # the same: no error
    with pytest.raises(ValueError, match=rf"{section}\.{field} .* \(given {value}\)") as e:
        spec.check_same_inputs(trained, given, "the model in W")
    assert "\n" not in str(e.value) and "the model in W" in str(e.value)
