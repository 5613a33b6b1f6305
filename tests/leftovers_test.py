"""Killed, cut or misdirected writes leave nothing behind and say which file they mean.

Fault injection: kill -9 during a corpus render (no fluidsynth outlives it, the next build
cleans its temporary files), unwritable outputs, text posing as audio, truncated WAV files
(one policy for the builder and the readers), and TFDS's scratch folders.
"""

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import musicnet_fixtures as fx
import numpy as np
import pytest
import soundfile as sf

from jaxnotes import files
from jaxnotes.data import audio, records


def _children(pid: int) -> set[int]:
    """Every descendant process of `pid` (Linux /proc)."""
    out, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for path in glob.glob(f"/proc/{parent}/task/*/children"):
            try:
                kids = {int(k) for k in open(path).read().split()}
            except OSError:
                continue
            todo += sorted(kids - out)
            out |= kids
    return out


def _command(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_kill_9_during_a_render_leaves_no_fluidsynth_and_no_temporary_files(tmp_path):
    command = [sys.executable, "-m", "jaxnotes.data.corpus", "--size=tiny", f"--out={tmp_path}"]
    render = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    synth, deadline = None, time.monotonic() + 120
    while synth is None and render.poll() is None and time.monotonic() < deadline:
        synth = next((p for p in _children(render.pid) if "fluidsynth" in _command(p)), None)
        time.sleep(0.005)
    assert synth is not None, "no fluidsynth seen while rendering"
    os.kill(render.pid, signal.SIGKILL)
    render.wait()
    for _ in range(5):  # the kernel delivers the parent-death signal at once; a render
        if not _alive(synth):  # left alone would run on for longer than this
            break
        time.sleep(0.01)
    assert not _alive(synth), "fluidsynth outlived the killed render"
    # Stand-ins for what a kill at another moment leaves: half-written files of the writers.
    root = glob.glob(str(tmp_path / "corpus" / "*"))[0]
    for leftover in ("train_data/.2.tmp999.wav", "midi/.2.mid.tmp999.wav", ".x.tmp999.csv"):
        open(os.path.join(root, leftover), "wb").write(b"half")
    subprocess.run(command, check=True, capture_output=True)
    left = [p for p in glob.glob(f"{root}/**/.*", recursive=True) if ".tmp" in p]
    assert not left, left
    assert os.path.exists(os.path.join(root, ".complete"))


def test_unwritable_outputs_name_the_output(tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = {
        str(tmp_path / "afile" / "x.mid"): "afile is a file, not a folder",
        str(tmp_path): "it is a folder",
        "/proc/jaxnotes_test.mid": "cannot write /proc/jaxnotes_test.mid",
    }
    for path, message in cases.items():
        with pytest.raises(OSError, match=message) as e:
            files.write_bytes(path, b"MThd")
        assert ".tmp" not in str(e.value), "the message names our temporary file"
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # nothing else left


def test_text_posing_as_audio_is_named_plainly(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 40)
    for read in (audio.load_audio, audio.audio_info):
        with pytest.raises(audio.AudioError, match="notes.wav: not a readable audio file") as e:
            read(str(path))
        assert not str(e.value).rstrip().endswith(":"), str(e.value)


def test_a_truncated_wav_is_an_error_for_every_reader(tmp_path):
    """One policy: the builder, transcription and the API all refuse a cut-off WAV."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(22050, np.float32), 22050)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    for read in (audio.load_audio, audio.audio_info, audio.load_audio_with_rate):
        with pytest.raises(audio.AudioError, match=r"cut\.wav: truncated WAV file"):
            read(str(cut))
    assert audio.audio_info(str(whole)) == (22050, 22050)


def test_a_dataset_build_leaves_no_scratch_folders(tmp_path):
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "tmp*tfds")))
    fx.make_musicnet(tmp_path / "mn", notes_per_piece=3)
    records.ensure_dataset(fx.tiny_config(tmp_path / "mn", tmp_path / "cache"), ("test",))
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "tmp*tfds")))
    assert after <= before
