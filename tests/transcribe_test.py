"""The transcription command line end to end, with a tiny model trained here on synthetic chords.

The module trains a `:tiny` transformer for 150 steps on tones of four pitches (C4 E4 G4 B4)
alone and in chords; that is enough for it to transcribe a C major chord.
Compiles dominate the time, so XLA runs with fewer optimisation passes here.
"""

import _thread
import csv
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
import types

import musicnet_fixtures as fx
import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from jaxnotes.data import labels, records
from jaxnotes.train import loop
from jaxnotes.transcribe import cli as transcribe_cli
from jaxnotes.transcribe import session

PITCHES = (60, 64, 67, 71)
CHORD = [labels.Note(0.5, 1.5, p) for p in (60, 64, 67)] + [labels.Note(2.0, 2.6, 71)]
TOLERANCE_S = 0.05  # onsets and offsets: two frames
STEPS = 150


def chord_piece(seed: int, seconds: float) -> list[labels.Note]:
    """Tones and chords of 1-3 of PITCHES, 0.2-0.6 s long, short rests between them."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.1
    while t < seconds - 0.7:
        length = round(float(rng.uniform(0.2, 0.6)), 2)
        for p in rng.choice(PITCHES, size=int(rng.integers(1, 4)), replace=False):
            notes.append(labels.Note(round(t, 2), round(t + length, 2), int(p), fx.VIOLIN))
        t = round(t + length + float(rng.uniform(0.05, 0.25)), 2)
    return sorted(notes)


pytestmark = pytest.mark.usefixtures("fast_compiles")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir with a tiny transformer trained on chords (~30 s), and tuned thresholds."""
    root = tmp_path_factory.mktemp("chords")
    names = [str(2000 + i) for i in range(6)]
    for i, name in enumerate(names):
        fx.write_recording(root, "train", name, chord_piece(i, 30.0), 30.0, sr=22050)
    fx.write_metadata(root, {n: {"composer": "Synth", "ensemble": "Violin"} for n in names})
    # 3 minutes of audio make ~11 steps per epoch: the loop saves at every epoch's end.
    config = fx.tiny_config(
        root, tmp_path_factory.mktemp("cache"), batch_size=16, validation_fraction=0.0
    )
    config.max_steps, config.num_epochs = STEPS, 1000
    config.checkpoint_every_steps = 10_000
    config.optim.lr = 1e-2
    config.model.update(dropout=0.0, embed_dim=32, mlp_dim=64, c=2)  # still ~20k parameters
    path = str(tmp_path_factory.mktemp("run"))
    records.ensure_dataset(config, ("train",))  # as the process-train action
    loop.train_and_evaluate(config, path, validate=False)
    # As the test action writes after tuning on validation.
    with open(os.path.join(path, "thresholds.json"), "w") as f:
        json.dump({"frame_threshold": 0.5, "onset_threshold": 0.3, "source": "tests"}, f)
    return path


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """The chord as wav files at several rates and channel counts, plus silence and junk."""
    folder = tmp_path_factory.mktemp("songs")
    paths = {}
    for name, sr, channels in (("chord", 44100, 2), ("ch6", 22050, 6), ("low", 8000, 1)):
        audio_S = fx.render(CHORD, 3.2, sr)
        paths[name] = str(folder / f"{name}.wav")
        sf.write(paths[name], np.repeat(audio_S[:, None], channels, axis=1), sr)
    paths["high"] = str(folder / "high.flac")
    sf.write(paths["high"], fx.render(CHORD, 3.2, 96000), 96000)
    paths["silence"] = str(folder / "silence.wav")
    sf.write(paths["silence"], np.zeros(44100 * 2, np.float32), 44100)
    paths["junk"] = str(folder / "junk.wav")
    fx.write_junk_audio(paths["junk"])
    paths["piece"] = str(folder / "piece.wav")
    sf.write(paths["piece"], fx.render(chord_piece(99, 8.0), 8.0, 22050), 22050)
    return paths


def cli(capsys, *argv):
    """Runs the command line in-process: (exit status, stdout, stderr)."""
    status = transcribe_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def read_csv(path) -> list[labels.Note]:
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["start_s", "end_s", "pitch", "program", "velocity"]
    return [labels.Note(float(r[0]), float(r[1]), int(r[2]), int(r[3])) for r in rows[1:]]


def assert_same_notes(got, want, tolerance_s=TOLERANCE_S):
    """Same pitches in the same order, onsets and offsets within tolerance_s."""
    got = sorted(got, key=lambda n: (round(n.start_s, 1), n.pitch))
    want = sorted(want, key=lambda n: (round(n.start_s, 1), n.pitch))
    assert [n.pitch for n in got] == [n.pitch for n in want], (got, want)
    for g, w in zip(got, want, strict=True):
        assert abs(g.start_s - w.start_s) <= tolerance_s, (g, w)
        assert abs(g.end_s - w.end_s) <= tolerance_s, (g, w)


def test_chord_is_transcribed_and_midi_round_trips(workdir, songs, tmp_path, capsys):
    """A stereo 44.1 kHz chord gives its notes; the MIDI file reads back with the same notes."""
    out = tmp_path / "chord.mid"
    status, _, err = cli(
        capsys, songs["chord"], "--workdir", workdir, "-o", out, "--program", 41, "--piano-roll"
    )
    assert status == 0, err
    assert "thresholds frame 0.50, onset 0.30" in err and "thresholds.json" in err
    notes = read_csv(tmp_path / "chord.csv")
    assert_same_notes(notes, CHORD)
    midi = pretty_midi.PrettyMIDI(str(out))
    assert [i.program for i in midi.instruments] == [40]  # GM 41 (violin), 0-based in files
    from_midi = [labels.Note(n.start, n.end, n.pitch) for n in midi.instruments[0].notes]
    assert_same_notes(from_midi, notes, tolerance_s=0.002)  # MIDI ticks are ~0.5 ms
    assert (tmp_path / "chord.png").stat().st_size > 1000


def test_offline_and_streaming_agree(workdir, songs, tmp_path, capsys):
    """The whole-file path, the stream (not paced) and the chunked long-file path agree."""
    status, _, err = cli(capsys, songs["piece"], "--workdir", workdir, "-o", tmp_path / "a.mid")
    assert status == 0, err
    offline = read_csv(tmp_path / "a.csv")
    assert len(offline) >= 10
    status, out, err = cli(
        capsys, songs["piece"], "--workdir", workdir, "-o", tmp_path / "b.mid",
        "--stream", "--no-pace", "--block-ms", 37,
    )  # fmt: skip
    assert status == 0, err
    # Streaming differs from offline by float round-off: a threshold crossing may move a frame.
    assert_same_notes(read_csv(tmp_path / "b.csv"), offline, tolerance_s=0.024)
    printed = [line.split() for line in out.splitlines()]
    assert len(printed) == 2 * len(offline) and {p[2] for p in printed} == {"on", "off"}
    times = [float(p[0]) for p in printed]
    assert times == sorted(times)  # events come out in song order
    session.MAX_WHOLE_FILE_S, saved = 1.0, session.MAX_WHOLE_FILE_S
    try:
        status, _, err = cli(capsys, songs["piece"], "--workdir", workdir, "-o", tmp_path / "c.mid")
    finally:
        session.MAX_WHOLE_FILE_S = saved
    assert status == 0, err
    assert_same_notes(read_csv(tmp_path / "c.csv"), offline, tolerance_s=0.024)


def test_rates_and_channels(workdir, songs, tmp_path, capsys):
    """6 channels, 8 kHz and 96 kHz give the chord too; several songs write into a folder."""
    names = ("ch6", "low", "high")
    status, _, err = cli(capsys, *(songs[n] for n in names), "--workdir", workdir, "-o", tmp_path)
    assert status == 0, err
    assert "low.wav is sampled at 8000 Hz" in err
    for name in names:
        assert_same_notes(read_csv(tmp_path / f"{name}.csv"), CHORD)
        assert (tmp_path / f"{name}.mid").exists()


def test_silence_gives_an_empty_valid_midi(workdir, songs, tmp_path, capsys):
    """Silence is no error: a valid MIDI file without notes."""
    status, _, err = cli(capsys, songs["silence"], "--workdir", workdir, "-o", tmp_path / "s.mid")
    assert status == 0, err
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "s.mid"))
    assert sum(len(i.notes) for i in midi.instruments) == 0
    assert read_csv(tmp_path / "s.csv") == []


def test_stdin_pcm_stream(workdir, monkeypatch, tmp_path, capsys):
    """Raw stereo s16le PCM on stdin streams to the chord's events."""
    audio_S = fx.render(CHORD, 3.2, 16000)
    pcm = (np.repeat(audio_S[:, None], 2, axis=1) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(pcm)))
    status, out, err = cli(
        capsys, "-", "--stdin-rate", 16000, "--stdin-channels", 2, "--workdir", workdir,
        "-o", tmp_path / "live.mid",
    )  # fmt: skip
    assert status == 0, err
    assert "delay" in out and len(out.splitlines()) == 2 * len(CHORD)
    assert_same_notes(read_csv(tmp_path / "live.csv"), CHORD)


def test_checkpoint_folder(workdir, songs, tmp_path, capsys):
    """--checkpoint WORKDIR/checkpoints/STEP loads that step."""
    step_dir = os.path.join(workdir, "checkpoints", str(STEPS))
    status, _, err = cli(capsys, songs["chord"], "--checkpoint", step_dir, "-o", tmp_path / "k.mid")
    assert status == 0, err
    assert f"step {STEPS}" in err
    assert_same_notes(read_csv(tmp_path / "k.csv"), CHORD)


@pytest.mark.parametrize(
    "case,message",
    [
        ("junk", "not a readable audio file"),
        ("missing_song", "no such audio file"),
        ("missing_workdir", "no such folder"),
        ("mismatch", "does not match the model"),
        ("no_checkpoint", "not a jaxnotes workdir"),
    ],
)
def test_bad_inputs_give_one_clear_line(workdir, songs, tmp_path, capsys, case, message):
    """Bad inputs exit with status 1 and one line on stderr naming the problem."""
    song, run = songs["chord"], workdir
    if case == "junk":
        song = songs["junk"]
    elif case == "missing_song":
        song = str(tmp_path / "nope.wav")
    elif case == "missing_workdir":
        run = str(tmp_path / "no_run")
    elif case == "mismatch":  # a config whose model is wider than the checkpoint's
        run = str(tmp_path / "run")
        shutil.copytree(workdir, run)
        with open(os.path.join(run, "config.json")) as f:
            config = json.load(f)
        config["model"]["embed_dim"] *= 2
        with open(os.path.join(run, "config.json"), "w") as f:
            json.dump(config, f)
    elif case == "no_checkpoint":
        run = str(tmp_path)
    status, _, err = cli(capsys, song, "--workdir", run, "-o", tmp_path / "x.mid")
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "x.mid").exists()


def test_usage_errors(capsys):
    """Missing arguments are usage errors (status 2) with a hint."""
    with pytest.raises(SystemExit) as e:
        transcribe_cli.main(["--workdir", "w"])
    assert e.value.code == 2 and "SONG" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        transcribe_cli.main(["-", "--workdir", "w"])
    assert e.value.code == 2 and "--stdin-rate" in capsys.readouterr().err


def test_live_extras_degrade_clearly(workdir, songs, tmp_path, capsys, monkeypatch):
    """Without sounddevice/python-rtmidi, --input-device and --midi-out say what to install."""
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    status, _, err = cli(capsys, "--input-device", "default", "--workdir", workdir)
    assert status == 1 and "pip install 'jaxnotes[live]'" in err
    monkeypatch.setitem(sys.modules, "mido", None)
    status, _, err = cli(
        capsys, songs["chord"], "--workdir", workdir, "--stream", "--no-pace", "--midi-out", "x",
        "-o", tmp_path / "m.mid",
    )  # fmt: skip
    assert status == 1 and "pip install 'jaxnotes[live]'" in err


class FakeSoundCard:
    """A `sounddevice` stand-in: plays audio into the callback, then presses Ctrl-C."""

    def __init__(self, audio_S, rate):
        self.audio_S, self.rate, self.stopped = audio_S, rate, threading.Event()

    def query_devices(self, device, kind):
        return {"default_samplerate": self.rate}

    def InputStream(self, *, callback, blocksize, **kwargs):  # noqa: N802 - sounddevice's name
        card = self

        class Stream:
            def __enter__(self):
                threading.Thread(target=self.play, daemon=True).start()

            def __exit__(self, *exc):
                card.stopped.set()

            def play(self):
                for i in range(0, len(card.audio_S), blocksize):
                    callback(card.audio_S[i : i + blocksize, None], blocksize, None, None)
                    time.sleep(blocksize / card.rate / 2)  # twice real time
                time.sleep(1.5)  # let the transcriber catch up, then Ctrl-C
                if not card.stopped.is_set():
                    _thread.interrupt_main()

        return Stream()


def test_sound_card_until_ctrl_c(workdir, monkeypatch, tmp_path, capsys):
    """--input-device streams a sound card's audio; Ctrl-C ends it and writes the notes."""
    card = FakeSoundCard(fx.render(CHORD, 3.2, 16000), 16000)
    monkeypatch.setitem(sys.modules, "sounddevice", card)
    # The fake card's Ctrl-C is a simulated SIGINT, which Python drops where SIGINT is ignored
    # (e.g. a job started with `&` by a non-interactive shell): Python's own handler here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status, out, err = cli(
            capsys, "--input-device", "default", "--workdir", workdir, "-o", tmp_path / "card.mid"
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert status == 0, err
    assert "listening at 16000 Hz" in err and "stopped" in err
    assert len(out.splitlines()) == 2 * len(CHORD)
    assert_same_notes(read_csv(tmp_path / "card.csv"), CHORD)
