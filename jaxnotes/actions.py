"""The actions of the command line, each `fn(config, workdir)` with the run's validated
`sections.RunConfig`."""

from collections.abc import Callable

from jaxnotes.sections import RunConfig


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


def train(config: RunConfig, workdir: str | None) -> None:
    from jaxnotes.train import loop as train_lib

    train_lib.train_and_evaluate(config, workdir, validate=False)


def train_val(config: RunConfig, workdir: str | None) -> None:
    from jaxnotes.train import loop as train_lib

    train_lib.train_and_evaluate(config, workdir, validate=True)


def test(config: RunConfig, workdir: str | None) -> None:
    from jaxnotes.evaluate import scoring

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
