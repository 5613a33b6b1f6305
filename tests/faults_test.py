"""Faults injected into real runs: a signal mid-chain, config typos, a resume's logs, divergence.

The command-line tests run `python -m jaxnotes.main` (or `main.run()` under a launcher that
adds a training hook) in a subprocess on the tiny config and a synthetic MusicNet folder, so
exit codes, stderr and the files left behind are the ones a user sees. Subprocesses share a
JAX compilation cache with fewer XLA passes (what `fast_compiles` does in-process).
"""

import json
import os
import signal
import subprocess
import sys

import musicnet_fixtures as fx
import numpy as np
import pytest

from jaxnotes import files
from jaxnotes.data import pipeline, records
from jaxnotes.train import loop, steps

pytestmark = pytest.mark.usefixtures("fast_compiles")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `main.run()` with a hook that sends the process `signum` after training step `step`: the
# real signal handling, action chain and exit path, stopped at a step chosen in advance
# (a signal sent from outside would land at whatever step the run happens to be at).
_SIGNAL_AT_STEP = """
import os, sys
from jaxnotes import main
from jaxnotes.train import loop
step, signum = int(sys.argv.pop(1)), int(sys.argv.pop(1))
train_and_evaluate = loop.train_and_evaluate
def with_signal(*args, hooks=(), **kwargs):
    def hook(s):
        if s == step:
            os.kill(os.getpid(), signum)
    return train_and_evaluate(*args, hooks=[*hooks, hook], **kwargs)
loop.train_and_evaluate = with_signal
sys.argv[0] = "jaxnotes.main"
main.run()
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(musicnet_dir, cache_dir, jax_cache_dir): the synthetic folder, its records built."""
    root = tmp_path_factory.mktemp("musicnet")
    fx.make_musicnet(root)
    cache = tmp_path_factory.mktemp("cache")
    config = fx.tiny_config(root, cache)
    records.ensure_dataset(config, ("train", "test"))
    assert pipeline.steps_per_epoch(config) == 2, "the tests below assume 2 steps per epoch"
    return str(root), str(cache), str(tmp_path_factory.mktemp("jax_cache"))


def _main(*args, data=None, signal_at=None, timeout=300):
    """`python -m jaxnotes.main --config=configs/transformer.py:tiny ARGS` (on `data`).

    With `signal_at=(step, signum)`, the same under _SIGNAL_AT_STEP.
    """
    argv = ["--config=configs/transformer.py:tiny", *args]
    env = dict(os.environ)
    if data is not None:
        musicnet_dir, cache, jax_cache = data
        argv += [f"--config.data.musicnet_dir={musicnet_dir}", f"--config.data.cache_dir={cache}"]
        env.update(
            JAX_COMPILATION_CACHE_DIR=jax_cache,
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
            JAX_DISABLE_MOST_OPTIMIZATIONS="1",
        )
    prefix = ["-m", "jaxnotes.main"]
    if signal_at:
        prefix = ["-c", _SIGNAL_AT_STEP, *map(str, signal_at)]
    return subprocess.run(
        [sys.executable, *prefix, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_chain_and_a_rerun_resumes(data, tmp_path, signum, code):
    """A signal during train-val saves, skips `test`, exits 128 + signum; a rerun finishes.

    Before: the chain went on to test the half-trained model (report/, thresholds.json) and
    exited 0, so a scheduler saw success and never restarted the job.
    """
    workdir = tmp_path / "run"
    command = [f"--workdir={workdir}", "--action=train-val,test"]
    stopped = _main(*command, data=data, signal_at=(3, int(signum)))
    assert stopped.returncode == code, stopped.stderr[-3000:]
    line = _last_line(stopped.stderr)
    assert "stopped by " + signal.Signals(signum).name in line, line
    assert "skipped --action=test" in line and "rerun the same command" in line, line
    assert "Traceback" not in stopped.stderr
    assert sorted(os.listdir(workdir / files.CHECKPOINTS)) == ["2", "3"]
    assert not (workdir / "report").exists() and not (workdir / "thresholds.json").exists()

    if signum == signal.SIGINT:
        return  # resuming is the same after either signal; once is enough
    finished = _main(*command, data=data)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert sorted(os.listdir(workdir / files.CHECKPOINTS))[-1] == "4"
    assert (workdir / "report").is_dir() and (workdir / "thresholds.json").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        (
            ["--config.optim.lrr=1"],
            "--config.optim.lrr: config.optim has no field 'lrr'; did you mean config.optim.lr?",
        ),
        (["--config.optimm.lr=1"], "config has no field 'optimm'; did you mean config.optim?"),
        (["--config.data.zzz=1"], "config.data has no field 'zzz'; known fields: batch_seconds"),
        (["--config=configs/transformer.py:tyni"], "unknown config variant 'tyni'; expected"),
        (["--config=configs/no_such.py"], "--config=configs/no_such.py: cannot load the config"),
        (["--config.optim.lr=fast"], "--config.optim.lr=fast: could not convert"),
    ],
)
def test_config_mistakes_are_one_line_and_exit_2(override, message, tmp_path):
    """A typo'd field, variant or file is one line naming it (and a close match), exit 2.

    Before: a 57-line traceback from inside absl's flag parsing (a field), or a traceback
    nested in a flags error (a variant), both exit 1.
    """
    result = _main(f"--workdir={tmp_path}", "--action=train", *override)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "override", [["--config.optim.lrr=1"], ["--config=configs/transformer.py:tyni"]]
)
def test_debug_keeps_the_traceback_of_a_config_mistake(override, tmp_path):
    result = _main(f"--workdir={tmp_path}", "--action=train", "--debug", *override)
    assert result.returncode == 1 and "Traceback" in result.stderr, result.stderr


def _tiny(data, **overrides):
    """The tiny config on the module's folder: 3 epochs of 2 steps, logged every 2 steps."""
    musicnet_dir, cache, _ = data
    config = fx.tiny_config(musicnet_dir, cache)
    config.num_epochs, config.max_steps = 3, -1
    config.checkpoint_every_steps = 100  # epoch ends, the end, and stops on a signal
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _logged_lines(workdir) -> list[dict]:
    """metrics.jsonl without wall-clock timings, which no two runs share."""
    with open(os.path.join(workdir, files.METRICS_FILE)) as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def _signal_at(step):
    def hook(s):
        if s == step:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def test_resumed_run_logs_what_an_uninterrupted_run_logs(data, tmp_path):
    """Stops at steps 3 and 5 (mid log window) must not shorten the windows logged at 4 and 6.

    Before: the window restarted at the restored step, so train/loss at step 4 averaged step
    4 alone (136.2999 against 136.5829 uninterrupted) though the parameters were identical.
    """
    config = _tiny(data)
    reference = str(tmp_path / "reference")
    assert loop.train_and_evaluate(config, reference, validate=True)["step"] == 6
    workdir = str(tmp_path / "resumed")
    for stop in (3, 5):
        result = loop.train_and_evaluate(config, workdir, validate=True, hooks=[_signal_at(stop)])
        assert (result["stopped"], result["step"]) == ("SIGTERM", stop)
    assert loop.train_and_evaluate(config, workdir, validate=True)["step"] == 6
    expected = _logged_lines(reference)
    assert [r["step"] for r in expected if "train/loss" in r] == [2, 4, 6]
    assert _logged_lines(workdir) == expected


def test_checkpoint_without_the_saved_window_still_resumes(data, tmp_path):
    """Checkpoints written before the window was saved resume (their first window is short)."""
    config = _tiny(data)
    workdir = tmp_path / "old"
    loop.train_and_evaluate(config, str(workdir), validate=False, hooks=[_signal_at(3)])
    path = workdir / files.CHECKPOINTS / "3" / "info" / "metadata"  # Orbax's JSON item file
    info = json.loads(path.read_text())
    assert [step for step, _ in info.pop(loop.WINDOW_KEY)] == [3]
    path.write_text(json.dumps(info))
    assert loop.train_and_evaluate(config, str(workdir), validate=False)["step"] == 6
    assert [r["step"] for r in _logged_lines(workdir) if "train/loss" in r] == [2, 4, 6]


def test_divergence_before_the_first_save_says_what_to_try(data, tmp_path, monkeypatch):
    """A NaN at step 1 (nothing saved yet) must not say 'the last good checkpoint is step None'."""
    real_to_device = steps.to_device

    def nan_batch(batch, mesh):
        return real_to_device({**batch, "cqt": np.full_like(batch["cqt"], np.nan)}, mesh)

    monkeypatch.setattr(steps, "to_device", nan_batch)
    with pytest.raises(loop.TrainingDivergedError) as error:
        loop.train_and_evaluate(_tiny(data), str(tmp_path / "nan"), validate=False)
    message = str(error.value)
    assert "step 1 " in message and "None" not in message, message
    assert "No checkpoint was saved yet" in message and "config.optim.lr" in message, message
