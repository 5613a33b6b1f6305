"""The actions of the command line, each `fn(config, workdir)` with the run's validated
`sections.RunConfig`."""

import signal
from collections.abc import Callable
from typing import Any

from jaxnotes.sections import RunConfig


class Stopped(Exception):
    """Training stopped by a signal (or a preemption notice) after saving a checkpoint.

    The command line skips the actions after it (they would use an unfinished model) and
    exits with `exit_code`, the shells' 128 + signal number (143 SIGTERM, 130 SIGINT);
    rerunning the same command resumes from the checkpoint.
    """

    def __init__(self, stopped: str, step: int):
        # 'SIGTERM', 'SIGINT', or 'preemption': JAX's multi-process sync point, which a
        # SIGTERM to the job sets off, so it exits as SIGTERM would.
        self.signal_name, self.step = stopped, step
        signum = signal.Signals.__members__.get(stopped, signal.SIGTERM)
        self.exit_code = 128 + signum.value
        super().__init__(f"stopped by {stopped} at step {step}")


def process_train(config: RunConfig, workdir: str | None) -> None:
    """Builds the train and validation records (renders the default corpus if needed)."""
    del workdir
    from jaxnotes.data import records

    records.ensure_dataset(config, ("train",))


def process_test(config: RunConfig, workdir: str | None) -> None:
    """Builds the test records."""
    del workdir
    from jaxnotes.data import records

    records.ensure_dataset(config, ("test",))


def _check_finished(result: dict[str, Any]) -> None:
    """Raises Stopped when the loop returned early on a signal (see `train_and_evaluate`)."""
    if result["stopped"] not in ("done", "early_stopping"):
        raise Stopped(result["stopped"], result["step"])


def train(config: RunConfig, workdir: str | None) -> None:
    from jaxnotes.train import loop as train_lib

    _check_finished(train_lib.train_and_evaluate(config, workdir, validate=False))


def train_val(config: RunConfig, workdir: str | None) -> None:
    from jaxnotes.train import loop as train_lib

    _check_finished(train_lib.train_and_evaluate(config, workdir, validate=True))


def test(config: RunConfig, workdir: str | None) -> None:
    import jax

    from jaxnotes.evaluate import scoring

    if jax.process_count() > 1:
        # Each process would score only its shard and overwrite the same report.
        raise ValueError(
            f"--action=test runs in one process, not {jax.process_count()}: run it on one host "
            "after training (docs/SCALING.md)"
        )
    scoring.run_test(config, workdir)


ACTIONS: dict[str, Callable[[RunConfig, str | None], None]] = {
    "process-train": process_train,
    "process-test": process_test,
    "train": train,
    "train-val": train_val,
    "test": test,
}
NEEDS_WORKDIR = {
    "process-train": False,
    "process-test": False,
    "train": True,
    "train-val": True,
    "test": True,
}
