"""Damaged checkpoints: checking a step folder's files, putting Orbax's and TensorStore's
errors into words, trying steps newest first, and setting damaged ones aside.

A damaged checkpoint (a file cut short, zeroed or missing: a full disk, a crash of the
machine, a bad copy) is a one-line `CheckpointCorruptError` naming the step folder and the
file. The JSON files of a step are checked before Orbax reads it (Orbax's own messages name
no file); errors while reading the arrays are translated; Orbax's noise about a failed read
(a logged file dump, asyncio's reports of abandoned tasks) is kept off the terminal. Used
by `checkpoint` (restore and load); must not import the data pipeline, models or the loop.
"""

import asyncio
import contextlib
import gc
import glob
import json
import logging as std_logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import jax
import orbax.checkpoint as ocp
from absl import logging

from jaxnotes import files

try:  # Orbax's private event-loop runner, replaced while reading (see `_run_sync_draining`)
    from orbax.checkpoint._src import asyncio_utils as _orbax_asyncio
except ImportError:  # another Orbax version: its noise is not silenced, nothing else changes
    _orbax_asyncio = None


class CheckpointCorruptError(ValueError):
    """A checkpoint's files are damaged or incomplete: one line naming the step folder.

    Attributes:
      path: the step folder, e.g. `<workdir>/checkpoints/6`.
      step: its step.
      detail: what is wrong, e.g. 'state/_METADATA: empty file'.
    """

    def __init__(self, path: str, step: int, detail: str, advice: str = ""):
        self.path, self.step, self.detail = path, step, detail
        self.advice = advice
        super().__init__(
            f"checkpoint {path} is damaged ({detail})" + (f"; {advice}" if advice else "")
        )

    def __reduce__(self):  # pickles (e.g. across processes) with its fields
        return type(self), (self.path, self.step, self.detail, self.advice)


# Where a damaged step folder is moved on resume (`<step>.damaged`; Orbax ignores the name).
DAMAGED_SUFFIX = ".damaged"
# The JSON files of a step folder, checked before Orbax reads it (globs, relative to it):
# Orbax's checkpoint metadata, the JSON item (info), the grain iterator (data) and the
# PyTree metadata of the arrays (state).
_JSON_FILES = (
    "_CHECKPOINT_METADATA",
    "info/metadata",
    "data/*.json",
    "state/_METADATA",
    "state/_sharding",
    "state/array_metadatas/*",
)
_REQUIRED_ITEMS = ("state", "info")  # every save writes them; `data` only with an iterator
# TensorStore status codes of unreadable or inconsistent stored bytes (not of permissions,
# memory or an unreachable file system, which are not the checkpoint's fault).
_DAMAGE_STATUS = re.compile(
    r"^(DATA_LOSS|OUT_OF_RANGE|FAILED_PRECONDITION|NOT_FOUND|INVALID_ARGUMENT): "
)
# Orbax logs these about a damaged or missing _CHECKPOINT_METADATA, with the file's whole
# content; the step is reported as damaged instead, when it is read.
_ORBAX_NOISE = ("Failed to json parse Metadata file", "Metadata file does not exist")
# asyncio's reports about the tasks of a failed restore (see `_run_sync_draining`).
_ASYNCIO_NOISE = ("Task was destroyed but it is pending", "Task exception was never retrieved")
_Result = TypeVar("_Result")


def check_step_files(step_dir: str, step: int) -> None:
    """Raises CheckpointCorruptError if a step folder lacks an item or has a damaged JSON file.

    Cheap (a few small files): run before Orbax reads the step, whose own errors about these
    files name none of them. The arrays are checked by reading them (see `_reading`).
    """
    try:
        names = os.listdir(step_dir)
    except FileNotFoundError:
        raise CheckpointCorruptError(step_dir, step, "the folder has gone") from None
    if not names:
        raise CheckpointCorruptError(step_dir, step, "the folder is empty")
    missing = [f"{i}/" for i in _REQUIRED_ITEMS if not os.path.isdir(os.path.join(step_dir, i))]
    if missing:
        raise CheckpointCorruptError(step_dir, step, f"{', '.join(missing)} missing")
    for pattern in _JSON_FILES:
        for path in sorted(glob.glob(os.path.join(glob.escape(step_dir), pattern))):
            try:
                with open(path, "rb") as f:
                    files.parse_json(f.read())
            except ValueError as e:
                rel = os.path.relpath(path, step_dir)
                raise CheckpointCorruptError(step_dir, step, f"{rel}: {e}") from e


def newest_intact(
    mngr: ocp.CheckpointManager,
    candidates: Sequence[int],
    restore: Callable[[int], _Result],
    saved: Sequence[int],
) -> tuple[_Result, int]:
    """(restore(step), step) for the first of `candidates` (newest first) that is intact.

    A damaged one is skipped (a warning names it and the one used); if all are damaged, the
    first one's error is raised with what to do. Errors that are not damage pass through.
    """
    directory = str(mngr.directory)
    damaged: list[CheckpointCorruptError] = []
    for step in candidates:
        step_dir = os.path.join(directory, str(step))
        try:
            with _reading(step_dir, step):
                check_step_files(step_dir, step)
                result = restore(step)
        except CheckpointCorruptError as e:
            damaged.append(e)
            continue
        for e in damaged:
            logging.warning("%s; using step %d instead", e, step)
        return result, step
    first = damaged[0]
    older = sorted((s for s in saved if s < first.step), reverse=True)
    if len(damaged) > 1:
        others = ", ".join(f"{e.step} ({e.detail})" for e in damaged[1:])
        advice = (
            f"so are the older checkpoints {others}: no intact checkpoint is left in "
            f"{directory}; move it away to start afresh"
        )
    elif older:
        advice = (
            f"move that folder away, or use the fallback option, to use the newest intact "
            f"older checkpoint (saved: {', '.join(map(str, older))})"
        )
    else:
        advice = f"it is the only checkpoint in {directory}: move that folder away and train again"
    raise CheckpointCorruptError(first.path, first.step, first.detail, advice) from first


def set_aside(mngr: ocp.CheckpointManager, steps: Sequence[int]) -> None:
    """Renames damaged step folders `<step>.damaged` (-2, -3... if taken); reloads `mngr`."""
    directory = str(mngr.directory)
    if jax.process_count() > 1:
        ocp.multihost.sync_global_processes("jaxnotes_set_aside_damaged_checkpoints")
    if jax.process_index() == 0:
        for step in steps:
            target, n = os.path.join(directory, f"{step}{DAMAGED_SUFFIX}"), 1
            while os.path.exists(target):
                n += 1
                target = os.path.join(directory, f"{step}{DAMAGED_SUFFIX}-{n}")
            os.replace(os.path.join(directory, str(step)), target)
            logging.warning(
                "moved the damaged checkpoint %s/%d to %s: training writes step %d again; "
                "delete it once looked at",
                directory,
                step,
                target,
                step,
            )
    if jax.process_count() > 1:
        ocp.multihost.sync_global_processes("jaxnotes_set_aside_damaged_checkpoints_done")
    mngr.reload()


def _damage(e: BaseException, step_dir: str, step: int) -> CheckpointCorruptError | None:
    """`e` (or an exception in its chain) as damage of the step's files, else None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, CheckpointCorruptError):
            return e
        detail = None
        if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)):
            detail = f"a JSON file: {e}"
        elif isinstance(e, (FileNotFoundError, NotADirectoryError)):
            name = e.filename or ""
            rel = os.path.relpath(name, step_dir) if os.path.isabs(name) else name
            detail = f"{rel or 'a file'}: missing"
        elif isinstance(e, KeyError) and "Unknown key" in str(e):
            # Orbax's way of saying an item folder is absent.
            detail = str(e).strip("'\"").split(".")[0].replace("Unknown key: ", "") + "/ missing"
        elif isinstance(e, ValueError) and _DAMAGE_STATUS.match(str(e)):
            detail = _tensorstore_detail(str(e), step_dir)
        if detail is not None:
            return CheckpointCorruptError(step_dir, step, detail)
        e = e.__cause__ or e.__context__
    return None


def _tensorstore_detail(message: str, step_dir: str) -> str:
    """A TensorStore error in a few words: the file (or array) and the innermost reason."""
    message = re.split(r" \[(?:tensorstore_spec|source locations)=", message)[0]
    found = [p for p in re.findall(r'local file "([^"]+)"', message) if not p.endswith("/")]
    arrays = re.findall(r'Error reading "([^"/]+)[^"]*" in OCDBT', message)
    reason = message.rsplit('": ', 1)[-1] if '": ' in message else message.split(": ", 1)[-1]
    reason = reason.split("; at byte")[0].strip()
    if found:
        where = os.path.relpath(found[-1], step_dir)
    else:
        where = f"state, array {arrays[-1].removesuffix('.value')}" if arrays else "state"
    text = f"{where}: {reason}"
    return text if len(text) <= 240 else text[:237] + "..."


@contextlib.contextmanager
def _reading(step_dir: str, step: int) -> Iterator[None]:
    """Reading a step: its damage becomes a CheckpointCorruptError, without Orbax's noise."""
    with quiet_orbax():
        try:
            yield
        except Exception as e:
            corrupt = _damage(e, step_dir, step)
            if corrupt is None or corrupt is e:
                raise
            raise corrupt from e


def _run_sync_draining(coro):
    """Orbax's `asyncio_utils._run_sync_via_new_loop`, but a failure cancels and awaits the
    coroutine's other tasks before the loop closes.

    Orbax reads all arrays at once and closes its loop as soon as one read fails; the reads
    still in flight then complain when they end or are collected ('Exception ignored in:
    <coroutine object _read_array_index_and_device_put>', with a page of TensorStore spec
    each), on stderr after the error message, or at exit.
    """
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    except BaseException:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        raise
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@contextlib.contextmanager
def quiet_orbax() -> Iterator[None]:
    """Silences what a failed read leaves behind: Orbax's log lines about a damaged
    _CHECKPOINT_METADATA (with its whole content), the other reads of a failed restore
    (see `_run_sync_draining`), and asyncio's and Python's reports about them."""

    def drop(record) -> bool:
        message = str(record.msg)
        return not message.startswith(_ORBAX_NOISE + _ASYNCIO_NOISE)

    loggers = [logging.get_absl_logger(), std_logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addFilter(drop)
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    run_sync = getattr(_orbax_asyncio, "_run_sync_via_new_loop", None)
    if callable(run_sync):
        _orbax_asyncio._run_sync_via_new_loop = _run_sync_draining
    try:
        yield
    except BaseException:
        gc.collect()
        raise
    finally:
        if callable(run_sync):
            _orbax_asyncio._run_sync_via_new_loop = run_sync
        sys.unraisablehook = hook
        for logger in loggers:
            logger.removeFilter(drop)
