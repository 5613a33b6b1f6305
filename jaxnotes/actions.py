"""The actions of the command line, each `fn(config, workdir)`."""

from collections.abc import Callable

import ml_collections


def process_train(config: ml_collections.ConfigDict, workdir: str | None) -> None:
    """Builds the train and validation records (renders the default corpus if needed)."""
    del workdir
    from jaxnotes.data import pipeline

    pipeline.ensure_dataset(config, ("train",))


def process_test(config: ml_collections.ConfigDict, workdir: str | None) -> None:
    """Builds the test records."""
    del workdir
    from jaxnotes.data import pipeline

    pipeline.ensure_dataset(config, ("test",))


def train(config: ml_collections.ConfigDict, workdir: str | None) -> None:
    from jaxnotes import train as train_lib

    train_lib.train_and_evaluate(config, workdir, validate=False)


def train_val(config: ml_collections.ConfigDict, workdir: str | None) -> None:
    from jaxnotes import train as train_lib

    train_lib.train_and_evaluate(config, workdir, validate=True)


def test(config: ml_collections.ConfigDict, workdir: str | None) -> None:
    from jaxnotes import evaluate

    evaluate.run_test(config, workdir)


ACTIONS: dict[str, Callable[[ml_collections.ConfigDict, str | None], None]] = {
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
