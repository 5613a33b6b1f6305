"""The workdir on disk: run files, Orbax checkpoints, and loading a trained model.

Layout of a workdir:
  config.json        the config the checkpoints were trained with
  meta.json          data.Meta, so inference rebuilds the model without the dataset
  version.json       jaxnotes/jax/flax/... versions and the git commit (+ dirty flag)
  metrics.jsonl      one JSON object per logged step; TensorBoard events beside it
  checkpoints/<step>/      state (TrainState), data (grain iterator), info (JSON)
  checkpoints_dev/<step>/  the best validation model (train-val), same format
  thresholds.json    decision thresholds tuned on validation by the test action
  report/            the test action's results (evaluate, report)

Each checkpoint's `info` item repeats the config and meta it was written with, so a
mismatch between a checkpoint and the current config is reported field by field. Metrics
are written by `metric_writer`, signals handled by `preemption`. It builds models (for
`load_model`) but must not import the data pipeline or the loop.
"""

import dataclasses
import functools
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

import jaxnotes
from jaxnotes import models
from jaxnotes.data import Meta

CHECKPOINTS = "checkpoints"
DEV_CHECKPOINTS = "checkpoints_dev"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
THRESHOLDS_FILE = "thresholds.json"  # written by evaluate, read by transcribe
VERSION_FILE = "version.json"
# Libraries whose versions can change a result; recorded in version.json.
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy")


class CheckpointNotFoundError(FileNotFoundError):
    """The workdir has no (dev) checkpoint or no run files."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's arrays do not fit the model/optimizer built from the current config."""


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as plain JSON types (tuples become lists, placeholders None)."""
    return json.loads(config.to_json_best_effort())


def _tuples(value):
    # JSON has no tuples; configs (and model kwargs like mlp_dims) use them.
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def config_from_dict(d: Mapping[str, Any]) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(_tuples(dict(d)))


def meta_from_dict(d: Mapping[str, Any]) -> Meta:
    known = {f.name for f in dataclasses.fields(Meta)}
    return Meta(**{k: v for k, v in d.items() if k in known})


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Fields that differ between two config dicts, as 'field: old -> new' lines."""
    old_flat, new_flat = _flatten(old), _flatten(new)
    missing = object()
    return [
        f"{k}: {old_flat.get(k, missing)!r} -> {new_flat.get(k, missing)!r}".replace(
            repr(missing), "(absent)"
        )
        for k in sorted(set(old_flat) | set(new_flat))
        if old_flat.get(k, missing) != new_flat.get(k, missing)
    ]


def _git_version() -> dict[str, Any] | None:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(jaxnotes.__file__)))
    try:
        run = functools.partial(
            subprocess.run, cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
        commit = run(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an installed package) or git missing
    return {"commit": commit, "dirty": dirty}


def code_version() -> dict[str, Any]:
    """What produced a result: package versions and the git commit, if any."""
    versions = {"jaxnotes": jaxnotes.__version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "git": _git_version()}


def _write_json(path: str, value: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)  # never leave a half-written file behind a kill


def write_run_files(workdir: str, config: ml_collections.ConfigDict, meta: Meta) -> None:
    """Writes config.json, meta.json and version.json (process 0 only)."""
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, CONFIG_FILE), config_to_dict(config))
    _write_json(os.path.join(workdir, META_FILE), dataclasses.asdict(meta))
    _write_json(os.path.join(workdir, VERSION_FILE), code_version())


def _read_json(workdir: str, name: str) -> Any:
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        raise CheckpointNotFoundError(
            f"{path} not found: {workdir} is not a jaxnotes workdir (train there first with "
            "--action=train or --action=train-val)"
        )
    with open(path) as f:
        return json.load(f)


def read_config(workdir: str) -> ml_collections.ConfigDict:
    return config_from_dict(_read_json(workdir, CONFIG_FILE))


def read_meta(workdir: str) -> Meta:
    return meta_from_dict(_read_json(workdir, META_FILE))


def read_thresholds(workdir: str) -> dict:
    """The decoder thresholds the test action tuned for this run ({} before any test).

    Raises:
        ValueError: the file is not valid JSON (names it and what to do).
    """
    path = os.path.join(workdir, THRESHOLDS_FILE)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); delete it or rerun the test") from e


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
    diffs = config_diff(info.get("config", {}), config) + [
        f"meta.{d}" for d in config_diff(info.get("meta", {}), meta)
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
) -> tuple[Any, dict[str, Any]] | None:
    """Restores the latest checkpoint into `abstract_state`'s shapes and shardings.

    The data iterator, when given, is moved to the position saved with the state.

    Returns:
      (state, info), or None when there is no checkpoint yet.
    """
    step = mngr.latest_step()
    if step is None:
        return None
    check_compatible(mngr, step, abstract_state, config=config, meta=meta)
    items = {"state": ocp.args.StandardRestore(abstract_state), "info": ocp.args.JsonRestore()}
    if data_iter is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    restored = mngr.restore(step, args=ocp.args.Composite(**items))
    return restored["state"], dict(restored["info"])


def load_model(
    workdir: str, *, dev: bool = False, step: int | None = None
) -> tuple[nnx.Module, Meta, Any, int]:
    """Rebuilds the trained model of a workdir, in eval mode, without data or optimizer.

    Args:
      workdir: a training workdir (config.json, meta.json, checkpoints).
      dev: load the best validation model (train-val) instead of the latest checkpoint.
      step: a specific saved step (default: the latest).

    Returns:
      (model, meta, config, step): step is the training step the weights are from.

    Raises:
      CheckpointNotFoundError: no run files, no checkpoint, no dev model, or no such step.
      CheckpointMismatchError: the checkpoint doesn't fit config.json (fields named).
    """
    workdir = os.path.abspath(os.path.expanduser(workdir))
    config, meta = read_config(workdir), read_meta(workdir)
    directory = os.path.join(workdir, DEV_CHECKPOINTS if dev else CHECKPOINTS)
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
    try:
        model = _restore_model(mngr, step, config, meta)
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
    abstract_model = nnx.eval_shape(
        lambda: models.get_model(
            config.model_name, meta=meta, rngs=nnx.Rngs(config.seed), **config.model
        )
    )
    graphdef, params, rngs, rest = nnx.split(abstract_model, nnx.Param, nnx.RngState, ...)
    rngs = fresh_rng_state(rngs, config.seed)
    target = {"params": params, "rest": rest} if jax.tree.leaves(rest) else {"params": params}
    check_compatible(
        mngr,
        step,
        target,
        config=config_to_dict(config),
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
