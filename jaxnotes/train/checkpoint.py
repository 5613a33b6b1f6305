"""Orbax checkpoints of a run: save, restore (with exact resume), and loading a trained model.

A checkpoint `<workdir>/checkpoints/<step>/` (or `checkpoints_dev/`, the best validation
model) holds three items: state (TrainState), data (the grain iterator) and info (JSON:
the config and meta it was written with, so a mismatch with the current config is
reported field by field). File names and run files live in `jaxnotes.files`. It builds
models (for `load_model`) but must not import the data pipeline or the loop.

A damaged checkpoint is a one-line CheckpointCorruptError naming the step folder and the
file (`damage`). Resume falls back to the newest intact checkpoint by default (and sets the
damaged ones aside, so that training writes them again); `load_model` does when asked
(`fallback=True`).
"""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from jaxnotes import files, models
from jaxnotes.data import Meta
from jaxnotes.train import damage
from jaxnotes.train.damage import DAMAGED_SUFFIX, CheckpointCorruptError  # noqa: F401 (API)


class CheckpointNotFoundError(FileNotFoundError):
    """The workdir has no (dev) checkpoint or no run files."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's arrays do not fit the model/optimizer built from the current config."""


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
    with damage.quiet_orbax():  # it reads every step's _CHECKPOINT_METADATA
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

    restored, step = damage.newest_intact(mngr, saved if fallback else saved[:1], restore, saved)
    damaged = [s for s in saved if s > step]
    if damaged:
        damage.set_aside(mngr, damaged)
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
        model, step = damage.newest_intact(
            mngr, candidates, lambda s: _restore_model(mngr, s, config, meta), saved
        )
    finally:
        mngr.close()
    return model, meta, config, int(step)


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
