"""Command-line entry point: `python -m jaxnotes.main --config=... --workdir=... --action=...`.

Actions (the original project's): process-train, process-test, train, train-val,
test. Several may be chained with commas, e.g.
`--action=process-train,process-test,train-val,test`.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file, e.g. configs/transformer.py or configs/transformer.py:tiny.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
_ACTION = flags.DEFINE_list(
    "action", None, "Comma-separated actions: process-train, process-test, train, train-val, test."
)
_DEBUG = flags.DEFINE_bool("debug", False, "Show the full traceback of an error.")
flags.mark_flags_as_required(["config", "action"])


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that name what to fix (a config field, a file, a row): one line, no traceback."""
    from jaxnotes.data.corpus.rendering import CorpusError

    # ValueError covers bad config values and the data side's LayoutError, AudioError and
    # LabelError; FileNotFoundError a missing checkpoint; FloatingPointError a diverged run.
    return (ValueError, FileNotFoundError, FloatingPointError, CorpusError)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Deferred so that `--help` and flag errors answer without loading JAX.
    import jax

    from jaxnotes import actions

    # Random streams independent of the device count, stable across upgrades.
    jax.config.update("jax_threefry_partitionable", True)
    unknown = [a for a in _ACTION.value if a not in actions.ACTIONS]
    if unknown:
        raise app.UsageError(
            f"--action: unknown {unknown}; choose from {', '.join(actions.ACTIONS)}"
        )
    workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value)) if _WORKDIR.value else None
    for name in _ACTION.value:
        if actions.NEEDS_WORKDIR[name] and not workdir:
            raise app.UsageError(f"--action={name} needs --workdir")
    from jaxnotes.train import parallel

    parallel.maybe_initialize_distributed()
    logging.info(
        "JAX devices: %s (process %d of %d)",
        jax.devices(),
        jax.process_index(),
        jax.process_count(),
    )
    from jaxnotes import sections

    try:  # every field checked once, before any action runs
        config = sections.RunConfig.of(_CONFIG.value)
    except ValueError as e:
        if _DEBUG.value:
            raise
        print(f"jaxnotes: bad config: {e} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(1)
    for name in _ACTION.value:
        logging.info("action %s", name)
        try:
            actions.ACTIONS[name](config, workdir)
        except _user_errors() as e:
            if _DEBUG.value:
                raise
            print(
                f"jaxnotes: --action={name} failed: {e} (--debug shows the traceback)",
                file=sys.stderr,
            )
            sys.exit(1)


def run():
    try:
        app.run(main)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
