"""Orbax checkpoints of a run: save, restore (with exact resume), and loading a trained model.

A checkpoint `<workdir>/checkpoints/<step>/` (or `checkpoints_dev/`, the best validation
model) holds three items: state (TrainState), data (the grain iterator) and info (JSON:
the config and meta it was written with, so a mismatch with the current config is
reported field by field). File names and run files live in `jaxnotes.files`. It builds
models (for `load_model`) but must not import the data pipeline or the loop.

A damaged checkpoint (a file cut short, zeroed or missing: a full disk, a crash of the
machine, a bad copy) is a one-line CheckpointCorruptError naming the step folder and the
file. The JSON files of a step are checked before Orbax reads it (Orbax's own messages name
no file), and Orbax/TensorStore errors while reading the arrays are put into words. Resume
falls back to the newest intact checkpoint by default (and sets the damaged ones aside, so
that training writes them again); `load_model` does when asked (`fallback=True`).
"""

import asyncio
import contextlib
import dataclasses
import gc
import glob
import json
import logging as std_logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from jaxnotes import files, models
from jaxnotes.data import Meta

try:  # Orbax's private event-loop runner, replaced while reading (see `_run_sync_draining`)
    from orbax.checkpoint._src import asyncio_utils as _orbax_asyncio
except ImportError:  # another Orbax version: its noise is not silenced, nothing else changes
    _orbax_asyncio = None


class CheckpointNotFoundError(FileNotFoundError):
    """The workdir has no (dev) checkpoint or no run files."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's arrays do not fit the model/optimizer built from the current config."""


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


def make_manager(
    directory: str, *, max_to_keep: int | None = None, for_inference: bool = False
) -> ocp.CheckpointManager:
    """An Orbax manager on `directory` (made absolute; Orbax rejects relative paths).

    The item handlers are named up front so a fresh process can read metadata (shapes
    for the mismatch check) before restoring anything. For inference the state is read
    with the generic PyTree handler, which allows partial restores (params only).
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=not for_inference,
        # A save cut short by a kill leaves a temporary folder; it is never a checkpoint.
        cleanup_tmp_directories=not for_inference,
    )
    handlers = {
        "state": ocp.PyTreeCheckpointHandler()
        if for_inference
        else ocp.StandardCheckpointHandler(),
        "info": ocp.JsonCheckpointHandler(),
        "data": grain.checkpoint.CheckpointHandler(),
    }
    path = os.path.abspath(os.path.expanduser(directory))
    with _quiet_orbax():  # it reads every step's _CHECKPOINT_METADATA
        return ocp.CheckpointManager(path, options=options, item_handlers=handlers)


def save(
    mngr: ocp.CheckpointManager,
    step: int,
    state: Any,
    *,
    info: Mapping[str, Any],
    data_iter: grain.DatasetIterator | None = None,
) -> bool:
    """Saves `state` (+ the data iterator's position and `info`) as `step`, asynchronously.

    A step that already exists is left alone (a resumed run repeats deterministic work,
    and Orbax refuses to overwrite). Returns whether a save started.
    """
    if step in mngr.all_steps():
        return False
    items = {"state": ocp.args.StandardSave(state), "info": ocp.args.JsonSave(dict(info))}
    if data_iter is not None:
        # The grain handler writes the iterator's JSON state synchronously inside save(),
        # so it is the position after exactly `step` batches even though arrays are
        # written in the background.
        items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    return mngr.save(step, args=ocp.args.Composite(**items), force=True)


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _shapes(tree) -> dict[str, tuple[tuple[int, ...], str]]:
    """path -> (shape, dtype) of each array leaf; PRNG keys as their raw uint32 data."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not hasattr(leaf, "shape"):
            continue
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)  # what Orbax stores
        name = "/".join(_key_name(k) for k in path).removesuffix("/value")
        out[name] = (tuple(leaf.shape), str(jnp.dtype(leaf.dtype)))
    return out


def check_compatible(
    mngr: ocp.CheckpointManager,
    step: int,
    target: Any,
    *,
    config: Mapping[str, Any],
    meta: Mapping[str, Any],
    partial: bool = False,
) -> None:
    """Raises CheckpointMismatchError if the checkpoint's arrays don't fit `target`.

    Args:
      mngr: the manager holding `step`.
      step: the checkpoint to check.
      target: a pytree of arrays/ShapeDtypeStructs (a TrainState, or a dict of subtrees).
      config: the current config as a dict (for the message).
      meta: the current Meta as a dict (for the message).
      partial: `target` is a part of the stored state (ignore stored arrays it lacks).
    """
    stored_tree = mngr.item_metadata(step)["state"].tree
    stored = _shapes(jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), stored_tree))
    wanted = _shapes(target)
    if partial:
        stored = {k: v for k, v in stored.items() if k in wanted}

    def show(entry):
        return "absent" if entry is None else f"{entry[1]}{list(entry[0])}"

    problems = [
        f"  {k}: checkpoint {show(stored.get(k))}, now {show(wanted.get(k))}"
        for k in sorted(set(stored) | set(wanted))
        if stored.get(k) != wanted.get(k)
    ]
    if not problems:
        return
    info = mngr.restore(step, args=ocp.args.Composite(info=ocp.args.JsonRestore()))["info"]
    diffs = files.config_diff(info.get("config", {}), config) + [
        f"meta.{d}" for d in files.config_diff(info.get("meta", {}), meta)
    ]
    why = (
        "config fields that differ (checkpoint -> now):\n  " + "\n  ".join(diffs)
        if diffs
        else "the config and meta are the same, so the checkpoint was written by another "
        "version of the model code"
    )
    shown = "\n".join(problems[:12]) + (
        f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else ""
    )
    raise CheckpointMismatchError(
        f"checkpoint {mngr.directory}/{step} does not match the model built from the current "
        f"config; {why}\narrays that differ:\n{shown}\nTrain in a fresh --workdir, or use "
        "the config the checkpoint was trained with."
    )


def restore_latest(
    mngr: ocp.CheckpointManager,
    abstract_state: Any,
    *,
    data_iter: grain.DatasetIterator | None,
    config: Mapping[str, Any],
    meta: Mapping[str, Any],
    fallback: bool = True,
) -> tuple[Any, dict[str, Any]] | None:
    """Restores the latest checkpoint into `abstract_state`'s shapes and shardings.

    The data iterator, when given, is moved to the position saved with the state. With
    `fallback` (resume), a damaged checkpoint is skipped for the newest intact one, with a
    warning naming both; the damaged step folders are then renamed `<step>.damaged` (kept
    for a look, ignored by Orbax), so that training writes those steps again.

    Returns:
      (state, info), or None when there is no checkpoint yet.

    Raises:
      CheckpointCorruptError: the latest checkpoint is damaged and (with `fallback`) so is
        every older one; nothing is renamed then.
      CheckpointMismatchError: the checkpoint doesn't fit the current config.
    """
    saved = sorted(mngr.all_steps(), reverse=True)
    if not saved:
        return None

    def restore(step: int) -> tuple[Any, dict[str, Any]]:
        check_compatible(mngr, step, abstract_state, config=config, meta=meta)
        items = {
            "state": ocp.args.StandardRestore(abstract_state),
            "info": ocp.args.JsonRestore(),
        }
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        restored = mngr.restore(step, args=ocp.args.Composite(**items))
        return restored["state"], dict(restored["info"])

    restored, step = _newest_intact(mngr, saved if fallback else saved[:1], restore, saved)
    damaged = [s for s in saved if s > step]
    if damaged:
        _set_aside(mngr, damaged)
    return restored


def load_model(
    workdir: str,
    *,
    dev: bool = False,
    step: int | None = None,
    fallback: bool = False,
) -> tuple[nnx.Module, Meta, Any, int]:
    """Rebuilds the trained model of a workdir, in eval mode, without data or optimizer.

    Args:
      workdir: a training workdir (config.json, meta.json, checkpoints).
      dev: load the best validation model (train-val) instead of the latest checkpoint.
      step: a specific saved step (default: the latest).
      fallback: if that checkpoint is damaged, use the newest intact older one instead (a
        warning names both); the workdir is left as it is.

    Returns:
      (model, meta, config, step): step is the training step the weights are from.

    Raises:
      CheckpointNotFoundError: no run files, no checkpoint, no dev model, or no such step.
      CheckpointMismatchError: the checkpoint doesn't fit config.json (fields named).
      CheckpointCorruptError: the checkpoint is damaged (and, with `fallback`, so is every
        older one): one line naming the step folder and the file.
    """
    workdir = os.path.abspath(os.path.expanduser(workdir))
    config, meta = files.read_config(workdir), files.read_meta(workdir)
    directory = os.path.join(workdir, files.DEV_CHECKPOINTS if dev else files.CHECKPOINTS)
    mngr = make_manager(directory, for_inference=True) if os.path.isdir(directory) else None
    saved = mngr.all_steps() if mngr else []
    if not saved:
        hint = (
            "no dev model: it is written by --action=train-val (best config.dev_metric)"
            if dev
            else "no checkpoint: training never reached its first save"
        )
        raise CheckpointNotFoundError(f"{directory}: {hint}")
    step = max(saved) if step is None else step
    if step not in saved:
        raise CheckpointNotFoundError(f"{directory}: no step {step}; saved steps: {sorted(saved)}")
    candidates = sorted((s for s in saved if s <= step), reverse=True) if fallback else [step]
    try:
        model, step = _newest_intact(
            mngr, candidates, lambda s: _restore_model(mngr, s, config, meta), saved
        )
    finally:
        mngr.close()
    return model, meta, config, int(step)


# Damaged checkpoints.


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


def _newest_intact(
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


def _set_aside(mngr: ocp.CheckpointManager, steps: Sequence[int]) -> None:
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
    with _quiet_orbax():
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
def _quiet_orbax() -> Iterator[None]:
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


def fresh_rng_state(abstract_state, seed: int):
    """Concrete values for an inference model's RNG streams (dropout), which are not saved:
    keys from the seed, counts at zero."""
    seed_key = jax.random.key(seed)
    return jax.tree.map(
        lambda x: (
            jnp.broadcast_to(seed_key, x.shape)
            if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
            else jnp.zeros(x.shape, x.dtype)
        ),
        abstract_state,
    )


def _restore_model(mngr, step: int, config, meta: Meta) -> nnx.Module:
    """The model of `config` with the parameters (and non-RNG state) of checkpoint `step`."""
    # Shapes only: random initialisation would be wasted work (seconds on a busy CPU).
    abstract_model = nnx.eval_shape(lambda: models.from_config(config, meta))
    graphdef, params, rngs, rest = nnx.split(abstract_model, nnx.Param, nnx.RngState, ...)
    rngs = fresh_rng_state(rngs, config.seed)
    target = {"params": params, "rest": rest} if jax.tree.leaves(rest) else {"params": params}
    check_compatible(
        mngr,
        step,
        target,
        config=files.config_to_dict(config),
        meta=dataclasses.asdict(meta),
        partial=True,
    )
    # One local device, whatever the topology that trained it (e.g. 8 GPUs -> 1 CPU).
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restore_args = ocp.checkpoint_utils.construct_restore_args(
        target, jax.tree.map(lambda _: device, target)
    )
    state = ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
    restored = mngr.restore(step, args=ocp.args.Composite(state=state))["state"]
    model = nnx.merge(graphdef, restored["params"], rngs, restored.get("rest", rest))
    model.eval()
    return model
