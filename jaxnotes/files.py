"""The files of a run: every name in a workdir, JSON and atomic writes, and provenance.

Layout of a workdir (the only place these names are spelled):
  config.json        the config the checkpoints were trained with
  meta.json          data.Meta, so inference rebuilds the model without the dataset
  version.json       jaxnotes/jax/flax/... versions and the git commit (+ dirty flag)
  metrics.jsonl      one JSON object per logged step; TensorBoard events beside it
  checkpoints/<step>/      state (TrainState), data (grain iterator), info (JSON)
  checkpoints_dev/<step>/  the best validation model (train-val), same format
  thresholds.json    decision thresholds tuned on validation by the test action
  report/            the test action's results: results.json, summary.md, pictures, MIDI
  report-<folder>/   the same for a test-only folder (thresholds from thresholds.json)

Every file jaxnotes writes, here or elsewhere (corpus, records, MIDI), goes through
`atomic_path`: a temporary file beside the target, renamed over it once complete, so a
killed process never leaves a half-written file under the real name. Must not import
model, loop or metric code.
"""

import contextlib
import dataclasses
import functools
import glob
import json
import os
import platform
import subprocess
from collections.abc import Iterator, Mapping
from importlib import metadata as importlib_metadata
from typing import Any

import ml_collections

import jaxnotes
from jaxnotes.data import Meta

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
VERSION_FILE = "version.json"
METRICS_FILE = "metrics.jsonl"
THRESHOLDS_FILE = "thresholds.json"  # written by the test action, read by transcription
CHECKPOINTS = "checkpoints"
DEV_CHECKPOINTS = "checkpoints_dev"
REPORT_DIR = "report"
RESULTS_JSON = "results.json"
SUMMARY_MD = "summary.md"
PR_CURVE_PNG = "pr_curve.png"
# Libraries whose versions can change a result; recorded in version.json.
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy")
_TMP_MARK = ".tmp"


class NotAWorkdirError(FileNotFoundError):
    """A folder lacks the run files of a jaxnotes workdir."""


# Atomic writes.


@contextlib.contextmanager
def atomic_path(path: str, mode: int = 0o644) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it over `path` if the block succeeds.

    Makes `path`'s folder if needed.
    The temporary name is hidden and keeps the extension (writers such as soundfile and
    numpy choose the format by it): `dir/.name.tmp<pid>.ext`. On an exception it is
    removed; `remove_leftovers` cleans those of killed processes.
    """
    directory, base = os.path.split(os.path.abspath(path))
    check_writable(path)
    stem, ext = os.path.splitext(base)
    tmp = os.path.join(directory, f".{stem}{_TMP_MARK}{os.getpid()}{ext}")
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        if tmp not in (e.filename, e.filename2) and path not in (e.filename, e.filename2):
            raise
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_writable(path: str) -> None:
    """Makes `path`'s folder if needed; raises OSError naming `path` when it cannot be written
    (a file where a folder should be, no permission, a read-only or pseudo file system)."""
    directory = os.path.dirname(os.path.abspath(path))
    parent = directory
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from e
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"cannot write {path}: no permission to write in {directory}")


def write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(text)


def write_json(path: str, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: str, what_to_do: str = "delete it and rerun the step that wrote it") -> Any:
    """The JSON in `path`; a damaged file (empty, zeroed, cut short, not text) is a
    ValueError naming it, what is wrong and what to do, in one line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return parse_json(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}; {what_to_do}") from e


def read_json_object(path: str, what_to_do: str) -> dict:
    """`read_json` of a file that must hold a JSON object (a run file, thresholds)."""
    value = read_json(path, what_to_do)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a JSON {type(value).__name__}, not an object; {what_to_do}")
    return value


def parse_json(data: bytes) -> Any:
    """JSON from a file's bytes; a ValueError says in a few words what is wrong with them."""
    if not data.strip():
        raise ValueError("empty file")
    if not data.strip(b"\0"):
        raise ValueError(f"only zero bytes ({len(data)})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not a text file ({e.reason})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"damaged JSON ({e})") from e


def remove_leftovers(directory: str) -> list[str]:
    """Deletes the temporary files that killed writers left in `directory`; returns them."""
    leftovers = glob.glob(os.path.join(glob.escape(directory), f".*{_TMP_MARK}[0-9]*"))
    for path in leftovers:
        with contextlib.suppress(OSError):
            os.remove(path)
    return leftovers


# Report folders.


def report_dir(workdir: str, source: str | None = None) -> str:
    """report/ for the run's own test split; report-<folder>/ for a test-only folder."""
    if source is None:
        return os.path.join(workdir, REPORT_DIR)
    return os.path.join(workdir, f"{REPORT_DIR}-{os.path.basename(source.rstrip(os.sep))}")


# Provenance: config, meta and versions of a run.


def config_to_dict(config) -> dict[str, Any]:
    """A ConfigDict or `sections.RunConfig` as plain JSON types (tuples become lists,
    placeholders None)."""
    if isinstance(config, ml_collections.ConfigDict):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config.to_dict()))


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


def write_run_files(workdir: str, config: ml_collections.ConfigDict, meta: Meta) -> None:
    """Writes config.json, meta.json and version.json (call it from process 0 only)."""
    os.makedirs(workdir, exist_ok=True)
    write_json(os.path.join(workdir, CONFIG_FILE), config_to_dict(config))
    write_json(os.path.join(workdir, META_FILE), dataclasses.asdict(meta))
    write_json(os.path.join(workdir, VERSION_FILE), code_version())


def _run_file(workdir: str, name: str) -> Any:
    path = os.path.join(workdir, name)
    if not os.path.exists(path):
        raise NotAWorkdirError(
            f"{path} not found: {workdir} is not a jaxnotes workdir (train there first with "
            "--action=train or --action=train-val)"
        )
    return read_json_object(path, "restore it, or train again in a new workdir")


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """A run's config.json over configs/common.py's defaults: a field added to jaxnotes
    after the run was trained takes its default. The model section too, but only with
    common.model()'s fields, those every model takes (e.g. compute_dtype: 'float32' for a
    run trained before it existed); a model's own fields are the run's, as stored."""
    from configs import common

    merged = config_to_dict(common.get_base_config())
    for key, value in _run_file(workdir, CONFIG_FILE).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return config_from_dict(merged)


def read_meta(workdir: str) -> Meta:
    return meta_from_dict(_run_file(workdir, META_FILE))


def thresholds_path(workdir: str) -> str:
    return os.path.join(workdir, THRESHOLDS_FILE)


def read_thresholds(workdir: str) -> dict:
    """The decoder thresholds the test action tuned for this run ({} before any test)."""
    path = thresholds_path(workdir)
    if not os.path.exists(path):
        return {}
    return read_json_object(path, "delete it or rerun --action=test")


def write_thresholds(workdir: str, thresholds: Mapping[str, Any]) -> None:
    write_json(thresholds_path(workdir), dict(thresholds))
