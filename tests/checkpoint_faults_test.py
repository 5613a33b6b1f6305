"""Damaged checkpoints and run files (issue 10): one line naming the file, and the fallback.

One tiny run is trained once (checkpoints 2 and 4); each test damages a copy: a file of
the newest checkpoint cut short, zeroed or emptied, or the folder emptied. `load_model`
must say which step folder and file, or with `fallback` return step 2's model; resume
must fall back by default, say so, and write step 4 again.
"""

import asyncio
import gc
import glob
import logging
import os
import re
import shutil
import sys

import jax
import musicnet_fixtures as fx
import numpy as np
import pytest
from flax import nnx

from jaxnotes import files
from jaxnotes.train import checkpoint, damage, loop

pytestmark = pytest.mark.usefixtures("fast_compiles")

NEWEST, OLDER = 4, 2
# (files of the newest checkpoint, relative to its folder; damage; what the error names)
DAMAGE = [
    ("state/_METADATA", "empty", r"state/_METADATA: empty file"),
    ("state/_METADATA", "truncate", r"state/_METADATA: damaged JSON"),
    ("state/_sharding", "zero", r"state/_sharding: only zero bytes"),
    ("state/array_metadatas/*", "truncate", r"state/array_metadatas/process_0: damaged JSON"),
    ("state/manifest.ocdbt", "zero", r"state/manifest\.ocdbt: "),
    ("state/d/*", "truncate", r"state/d/[0-9a-f]+: "),
    ("state/ocdbt.process_0/d/*", "zero", r"state, array params\.[\w.]+: ZSTD"),
    ("info/metadata", "truncate", r"info/metadata: damaged JSON"),
    ("info/metadata", "empty", r"info/metadata: empty file"),
    ("data/*.json", "zero", r"data/process_0-of-1\.json: only zero bytes"),
    ("_CHECKPOINT_METADATA", "truncate", r"_CHECKPOINT_METADATA: damaged JSON"),
    ("_CHECKPOINT_METADATA", "empty", r"_CHECKPOINT_METADATA: empty file"),
    ("*", "remove", r"the folder is empty"),
    ("state", "remove", r"state/ missing"),
]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The tiny config on a synthetic MusicNet folder: 2 epochs of 2 steps, both kept."""
    return fx.epoch_checkpoint_config(tmp_path_factory, num_epochs=2)


@pytest.fixture(scope="module")
def trained(config, tmp_path_factory):
    """A finished run with checkpoints 2 and 4, and the parameters of each."""
    workdir = str(tmp_path_factory.mktemp("trained"))
    loop.train_and_evaluate(config, workdir, validate=False)
    assert sorted(os.listdir(os.path.join(workdir, files.CHECKPOINTS))) == ["2", "4"]
    params = {s: _params(checkpoint.load_model(workdir, step=s)[0]) for s in (OLDER, NEWEST)}
    return workdir, params


@pytest.fixture
def workdir(trained, tmp_path):
    """A copy of the trained run, to damage."""
    path = str(tmp_path / "run")
    shutil.copytree(trained[0], path)
    return path


def _params(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def _assert_same(params, expected):
    jax.tree.map(np.testing.assert_array_equal, params, expected)


def _damage(path: str, how: str) -> None:
    if how == "remove":
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if how == "truncate":
            f.truncate(size // 2)
        elif how == "zero":
            f.write(b"\0" * size)
        else:
            f.truncate(0)


def _damage_step(workdir: str, step: int, pattern: str, how: str) -> str:
    """Damages the files matching `pattern` in checkpoint `step`; returns its folder."""
    step_dir = os.path.join(workdir, files.CHECKPOINTS, str(step))
    paths = glob.glob(os.path.join(step_dir, pattern))
    assert paths, pattern
    for path in paths:
        _damage(path, how)
    return step_dir


def _one_line_naming(error: Exception, step_dir: str, detail: str) -> None:
    text = str(error)
    assert "\n" not in text and len(text) < 500, text
    assert isinstance(error, ValueError)  # the command lines print ValueErrors as one line
    assert f"checkpoint {step_dir} is damaged" in text, text
    assert re.search(detail, text), (detail, text)


@pytest.mark.parametrize("pattern, how, detail", DAMAGE, ids=[f"{p}-{h}" for p, h, _ in DAMAGE])
def test_load_model_names_the_damage_or_falls_back(trained, workdir, pattern, how, detail, capfd):
    """Without fallback one line naming the step folder and file; with it, step 2's model."""
    step_dir = _damage_step(workdir, NEWEST, pattern, how)
    with pytest.raises(checkpoint.CheckpointCorruptError) as raised:
        checkpoint.load_model(workdir)
    _one_line_naming(raised.value, step_dir, detail)
    assert "fallback" in str(raised.value) and f"saved: {OLDER}" in str(raised.value)
    model, _, _, step = checkpoint.load_model(workdir, fallback=True)
    assert step == OLDER
    _assert_same(_params(model), trained[1][OLDER])
    # Nothing left behind on stderr: no 'Exception ignored', no Orbax dump of the file.
    assert "Exception ignored" not in capfd.readouterr().err
    assert sorted(os.listdir(os.path.dirname(step_dir))) == ["2", "4"], "inference moved files"


def test_a_failed_restore_leaves_no_reads_behind(monkeypatch):
    """Orbax reads all arrays at once and closes its event loop when one read fails; the
    reads still pending used to print 'Exception ignored in: <coroutine ...>' (a page of
    TensorStore spec each) later, at random, after the one-line error."""
    asyncio_utils = pytest.importorskip("orbax.checkpoint._src.asyncio_utils")
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    async def read(fail: bool):
        try:
            if fail:
                raise ValueError("DATA_LOSS: damaged")
            await asyncio.sleep(3600)
        except BaseException as e:  # as Orbax's _read_array_index_and_device_put does
            raise Exception("Encountered error while reading array index") from e

    async def restore():
        reads = [asyncio.ensure_future(read(fail)) for fail in (False, True)]  # as Orbax keeps
        await asyncio.gather(*reads)

    with pytest.raises(Exception, match="Encountered error"), damage.quiet_orbax():
        asyncio_utils.run_sync(restore())
    gc.collect()  # the pending read, if left behind, is closed here and complains
    assert unraisable == []


def test_fallback_with_every_checkpoint_damaged_names_them_all(workdir):
    """No intact checkpoint: one line naming both, not a silent start from scratch."""
    newest = _damage_step(workdir, NEWEST, "state/_METADATA", "empty")
    _damage_step(workdir, OLDER, "info/metadata", "truncate")
    with pytest.raises(checkpoint.CheckpointCorruptError) as raised:
        checkpoint.load_model(workdir, fallback=True)
    _one_line_naming(raised.value, newest, r"state/_METADATA: empty file")
    assert "older checkpoints 2 (info/metadata: damaged JSON" in str(raised.value)
    assert "no intact checkpoint" in str(raised.value)


def test_only_checkpoint_damaged_says_so(workdir):
    shutil.rmtree(os.path.join(workdir, files.CHECKPOINTS, str(OLDER)))
    step_dir = _damage_step(workdir, NEWEST, "*", "remove")
    with pytest.raises(checkpoint.CheckpointCorruptError, match="it is the only checkpoint"):
        checkpoint.load_model(workdir, fallback=True)
    assert os.path.isdir(step_dir)


RESUME = [
    ("state/ocdbt.process_0/d/*", "zero"),
    ("data/*.json", "truncate"),
    ("*", "remove"),
]


@pytest.mark.parametrize("pattern, how", RESUME, ids=[f"{p}-{h}" for p, h in RESUME])
def test_resume_falls_back_says_so_and_writes_the_step_again(
    config, trained, workdir, pattern, how, caplog
):
    """train/train-val resume from step 2, set the damaged step 4 aside, and train it anew."""
    step_dir = _damage_step(workdir, NEWEST, pattern, how)
    with caplog.at_level(logging.WARNING):
        result = loop.train_and_evaluate(config, workdir, validate=False)
    assert result["step"] == NEWEST
    warned = caplog.text
    assert f"checkpoint {step_dir} is damaged" in warned and "using step 2 instead" in warned
    assert f"{step_dir}{checkpoint.DAMAGED_SUFFIX}" in warned
    saved = sorted(os.listdir(os.path.dirname(step_dir)))
    assert saved == ["2", "4", f"4{checkpoint.DAMAGED_SUFFIX}"], saved
    # Step 4 written again is the uninterrupted run's step 4, bit for bit.
    model, _, _, step = checkpoint.load_model(workdir)
    assert step == NEWEST
    _assert_same(_params(model), trained[1][NEWEST])


def test_resume_with_every_checkpoint_damaged_stops_and_moves_nothing(config, workdir):
    newest = _damage_step(workdir, NEWEST, "state/ocdbt.process_0/d/*", "zero")
    _damage_step(workdir, OLDER, "state/_METADATA", "truncate")
    with pytest.raises(checkpoint.CheckpointCorruptError) as raised:
        loop.train_and_evaluate(config, workdir, validate=False)
    _one_line_naming(raised.value, newest, r"ZSTD")
    assert sorted(os.listdir(os.path.dirname(newest))) == ["2", "4"]


RUN_FILES = [
    (files.CONFIG_FILE, "truncate", "damaged JSON"),
    (files.CONFIG_FILE, "empty", "empty file"),
    (files.META_FILE, "zero", "only zero bytes"),
    (files.META_FILE, "truncate", "damaged JSON"),
]


@pytest.mark.parametrize("name, how, what", RUN_FILES, ids=[f"{n}-{h}" for n, h, _ in RUN_FILES])
def test_damaged_run_files_are_one_line_naming_the_file(workdir, name, how, what):
    path = os.path.join(workdir, name)
    _damage(path, how)
    with pytest.raises(ValueError) as raised:
        checkpoint.load_model(workdir)
    text = str(raised.value)
    assert text.startswith(f"{path}: {what}") and "\n" not in text, text
    assert "restore it, or train again in a new workdir" in text


def test_run_file_that_is_not_an_object_names_the_file(workdir):
    path = os.path.join(workdir, files.META_FILE)
    with open(path, "w") as f:
        f.write("[1, 2]\n")
    with pytest.raises(ValueError, match=r"meta\.json: a JSON list, not an object"):
        files.read_meta(workdir)
    with open(files.thresholds_path(workdir), "w") as f:
        f.write("0.5\n")
    with pytest.raises(ValueError, match=r"thresholds\.json: a JSON float, not an object"):
        files.read_thresholds(workdir)


@pytest.mark.parametrize("how, what", [("truncate", "damaged JSON"), ("empty", "empty file")])
def test_damaged_thresholds_name_the_file(workdir, how, what):
    files.write_thresholds(workdir, {"frame": 0.4, "onset": 0.5})
    path = files.thresholds_path(workdir)
    _damage(path, how)
    with pytest.raises(ValueError) as raised:
        files.read_thresholds(workdir)
    text = str(raised.value)
    assert text.startswith(f"{path}: {what}") and "\n" not in text, text
    assert "delete it or rerun --action=test" in text
