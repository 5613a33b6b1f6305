"""The command line's answers to mistakes: one line naming what to fix, no traceback."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args):
    return subprocess.run(
        [sys.executable, "-m", "jaxnotes.main", "--config=configs/transformer.py:tiny", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--action=process-train", "--config.cqt.bins_per_octave=40"],
            "config.cqt.bins_per_octave=40",
        ),
        (
            ["--action=process-test", "--config.data.musicnet_dir=/no/such/folder"],
            "config.data.musicnet_dir",
        ),
    ],
)
def test_bad_config_or_folder_is_one_clear_line(args, message, tmp_path):
    """A bad config value or a missing folder names the field, exits 1, and shows no traceback."""
    result = _main(*args, f"--config.data.cache_dir={tmp_path}")
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_missing_checkpoint_names_the_workdir(tmp_path):
    """`test` on a workdir without a trained model says so, naming the folder."""
    result = _main("--action=test", f"--workdir={tmp_path}", f"--config.data.cache_dir={tmp_path}")
    assert result.returncode == 1 and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_action_and_missing_workdir_are_usage_errors():
    """Typos in --action and a forgotten --workdir are caught before any work starts (exit 2)."""
    result = _main("--action=trian")
    assert result.returncode == 2 and "unknown ['trian']" in result.stderr
    result = _main("--action=train")
    assert result.returncode == 2 and "needs --workdir" in result.stderr
