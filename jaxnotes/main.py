"""Command-line entry point: `python -m jaxnotes.main --config=... --workdir=... --action=...`.

Actions (the original project's): process-train, process-test, train, train-val,
test. Several may be chained with commas, e.g.
`--action=process-train,process-test,train-val,test`.

Exit status: 0 every action done; 1 an action failed (one line naming what to fix: a bad
config value, a missing folder, a corrupt file, no trained model, a diverged run); 2 the
command line itself is wrong, before anything ran (an unknown flag, config field, config
variant or action, an unparsable value, no such config file, --workdir missing); 128 + the
signal's number when training was stopped by a signal after saving a checkpoint (143
SIGTERM, 130 SIGINT): the actions after it are skipped, and rerunning the same command
resumes. Errors are one line on stderr; `--debug` shows the traceback instead.
"""

import difflib
import importlib.util
import re
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

EXIT_ERROR, EXIT_USAGE = 1, 2
_DEBUG_HINT = "(--debug shows the traceback)"


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that name what to fix (a config field, a file, a row): one line, no traceback."""
    from jaxnotes.data.corpus.rendering import CorpusError

    # ValueError covers bad config values and the data side's LayoutError, AudioError and
    # LabelError; FileNotFoundError a missing checkpoint; FloatingPointError a diverged run.
    return (ValueError, FileNotFoundError, FloatingPointError, CorpusError)


def _usage(message: str, hint: str = "(--help lists the flags)") -> None:
    """A mistake in the command line itself: one line, exit status 2."""
    print(f"jaxnotes: {message} {hint}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


# Flag parsing: ml_collections loads the config file and applies --config.* overrides while
# absl parses flags, before `main`; its errors arrive as tracebacks (a field typo is an
# AttributeError or KeyError, a bad variant a flags error holding the config file's
# traceback, a missing file an OSError on first use), so they are put into words here.


def _debug_requested(argv: list[str]) -> bool:
    """--debug as absl would read it, for errors raised before it is parsed."""
    on = None
    for arg in argv[1:]:
        if arg == "--":
            break
        if m := re.fullmatch(r"--?(no)?debug(?:=(.*))?", arg):
            on = not m[1] and (m[2] or "true").lower() in ("true", "t", "1", "yes", "y")
    return bool(on)


def _flag_value(argv: list[str], name: str) -> str | None:
    """The last value of `--name=VALUE` or `--name VALUE` in argv."""
    value = None
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            break
        if m := re.fullmatch(rf"--?{name}=(.*)", arg):
            value = m[1]
        elif re.fullmatch(rf"--?{name}", arg) and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def _load_config_file(spec: str):
    """`get_config(variant)` of `file.py[:variant]`, as ml_collections calls it."""
    path, *variant = spec.split(":", 1)
    module_spec = importlib.util.spec_from_file_location("_jaxnotes_config_check", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(*variant)


def _override_problem(argv: list[str]) -> str | None:
    """What is wrong with the first `--config.a.b=...` naming no field of the config, if any."""
    import ml_collections

    spec = _flag_value(argv, "config")
    try:
        config = _load_config_file(spec) if spec else None
    except Exception:  # the config file's own error is reported by the caller
        return None
    if config is None:
        return None
    for arg in argv[1:]:
        if arg == "--":
            break
        m = re.fullmatch(r"--?(?:no)?config\.([^=]+)(?:=.*)?", arg)
        if not m:
            continue
        node, where = config, "config"
        for part in m[1].split("."):
            if not isinstance(node, ml_collections.ConfigDict):
                return (
                    f"--config.{m[1]}: {where} is a {type(node).__name__} value, not a section "
                    f"with a field {part!r}"
                )
            if part not in node:
                known = sorted(node.keys())
                close = difflib.get_close_matches(part, known, n=1)
                hint = f"did you mean {where}.{close[0]}?" if close else "known fields:"
                return (
                    f"--config.{m[1]}: {where} has no field {part!r}; {hint} "
                    f"{'' if close else ', '.join(known)}".rstrip()
                )
            node, where = node[part], f"{where}.{part}"
    return None


def _flag_error_line(error: BaseException, argv: list[str]) -> str:
    """One line for an error raised while parsing flags."""
    if isinstance(error, (AttributeError, KeyError)):
        problem = _override_problem(argv)
        if problem:
            return problem
    text = str(error)
    if "Error whilst parsing config file" in text:
        # ml_collections wraps the config file's exception in its traceback; keep the last line.
        last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1]
        return f"--config={_flag_value(argv, 'config')}: {last.removeprefix('ValueError: ')}"
    if isinstance(error, OSError):  # a config file that could not be loaded
        last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1]
        return f"--config={_flag_value(argv, 'config')}: cannot load the config file: {last}"
    return " ".join(text.split())


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with every mistake as one line and exit status 2."""
    try:
        rest = flags.FLAGS(argv)
        # ml_collections keeps a config file's load error (OSError) until the config is used.
        _CONFIG.value.items()
        return rest
    except (flags.Error, AttributeError, KeyError, OSError) as e:
        if _debug_requested(argv):
            raise
        hint = "(--help lists the flags)" if isinstance(e, flags.UnrecognizedFlagError) else ""
        _usage(_flag_error_line(e, argv), hint or _DEBUG_HINT)


def _run_actions(config, workdir: str | None) -> None:
    """Runs the chosen actions in order; the first failure or stop skips the rest."""
    from jaxnotes import actions

    names = _ACTION.value
    for i, name in enumerate(names):
        logging.info("action %s", name)
        try:
            actions.ACTIONS[name](config, workdir)
        except actions.Stopped as e:
            skipped = names[i + 1 :]
            rest = f"; skipped --action={','.join(skipped)}" if skipped else ""
            print(
                f"jaxnotes: --action={name} stopped by {e.signal_name} at step {e.step} "
                f"(checkpoint saved){rest}; rerun the same command to resume "
                f"(exit status {e.exit_code})",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(e.exit_code)
        except _user_errors() as e:
            if _DEBUG.value:
                raise
            print(f"jaxnotes: --action={name} failed: {e} {_DEBUG_HINT}", file=sys.stderr)
            sys.exit(EXIT_ERROR)


def main(argv):
    if len(argv) > 1:
        _usage(f"unexpected arguments: {argv[1:]}")
    import os

    from jaxnotes import actions

    unknown = [a for a in _ACTION.value if a not in actions.ACTIONS]
    if unknown:
        _usage(f"--action: unknown {unknown}; choose from {', '.join(actions.ACTIONS)}")
    workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value)) if _WORKDIR.value else None
    for name in _ACTION.value:
        if actions.NEEDS_WORKDIR[name] and not workdir:
            _usage(f"--action={name} needs --workdir")
    # Deferred so that `--help` and command-line mistakes answer without loading JAX.
    import jax

    # Random streams independent of the device count, stable across upgrades.
    jax.config.update("jax_threefry_partitionable", True)
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
        print(f"jaxnotes: bad config: {e} {_DEBUG_HINT}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    _run_actions(config, workdir)


def run():
    try:
        app.run(main, flags_parser=_parse_flags)
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it
        print("jaxnotes: interrupted (exit status 130)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
