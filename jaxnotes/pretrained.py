"""The pretrained model shipped inside the package: packing a run into it, and loading it.

Owns the shipped model's folder (`jaxnotes/pretrained_model/`): `weights.npz` (the
parameters as plain arrays, one per parameter path; no pickle), `config.json` and
`meta.json` (as a training workdir has them), `thresholds.json` (tuned on the training
data's validation split by the test action) and `MODEL_CARD.md`. Loading needs neither
Orbax nor a workdir. Must not import training or dataset code.

    python -m jaxnotes.pretrained --workdir=runs/release [--dev]

packs a trained workdir (by default its dev model, the best on validation) into the
package; the model card's figures are written by hand from the run's reports.
"""

import argparse
import os
import shutil
import sys

import numpy as np

from jaxnotes import files

MODEL_DIR = os.path.join(os.path.dirname(__file__), "pretrained_model")
WEIGHTS_FILE = "weights.npz"
RUN_FILES = (files.CONFIG_FILE, files.META_FILE, files.THRESHOLDS_FILE)


class PretrainedMissingError(FileNotFoundError):
    """The package holds no pretrained model (a checkout without the shipped files)."""


def param_arrays(model) -> dict[str, np.ndarray]:
    """{'path/to/param': array} of a model's nnx.Param leaves."""
    import jax
    from flax import nnx

    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]
    return {path_name(path): np.asarray(leaf) for path, leaf in leaves}


def matched_arrays(params, arrays: dict[str, np.ndarray], source: str) -> list[np.ndarray]:
    """`arrays` (as `param_arrays` names them) in the order of `params`' leaves, each of its
    leaf's shape: the values a model of `params`' structure takes from `source`.

    Raises:
        ValueError: `source`: a parameter missing, extra, or of another shape (named).
    """
    import jax

    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    names = [path_name(path) for path, _ in flat]
    missing = sorted(set(names) - set(arrays))
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
        raise ValueError(f"{source}: missing parameters {missing[:5]}, unknown {extra[:5]}")
    for name, (_, want) in zip(names, flat, strict=True):
        if arrays[name].shape != want.shape:
            raise ValueError(
                f"{source}: {name} has shape {arrays[name].shape}, the config's model {want.shape}"
            )
    return [arrays[name] for name in names]


def path_name(path) -> str:
    parts = []
    for key in path:
        name = getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))
        parts.append(str(name))
    return "/".join(parts)


def save_weights(model, path: str) -> None:
    """Writes a model's parameters to an .npz file (atomically)."""
    with files.atomic_path(path) as tmp:
        np.savez(tmp, **param_arrays(model))


def read_weights(path: str) -> dict[str, np.ndarray]:
    """{'path/to/param': array} of an .npz that `save_weights` wrote (no pickle)."""
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def build_model(config, meta, weights_path: str):
    """The eval-mode model of `config` and `meta` with the parameters of an .npz file.

    Raises:
        ValueError: a parameter is missing, extra, or of another shape (names them).
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jaxnotes import models
    from jaxnotes.train import checkpoint

    abstract = nnx.eval_shape(lambda: models.from_config(config, meta))
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
    arrays = read_weights(weights_path)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    values = matched_arrays(params, arrays, weights_path)
    params = jax.tree_util.tree_unflatten(
        treedef,
        [jnp.asarray(v, leaf.dtype) for v, leaf in zip(values, leaves, strict=True)],
    )
    rest = checkpoint.fresh_rng_state(rest, config.seed)
    model = nnx.merge(graphdef, params, rest)
    model.eval()
    return model


def available(model_dir: str = MODEL_DIR) -> bool:
    return all(os.path.exists(os.path.join(model_dir, f)) for f in (WEIGHTS_FILE, *RUN_FILES))


def load(model_dir: str = MODEL_DIR):
    """(model, meta, config, thresholds) of the shipped model."""

    if not available(model_dir):
        raise PretrainedMissingError(
            f"{model_dir}: no pretrained model here; give --workdir of a trained run, or "
            "reinstall jaxnotes"
        )
    config, meta = files.read_config(model_dir), files.read_meta(model_dir)
    thresholds = files.read_thresholds(model_dir)
    return (
        build_model(config, meta, os.path.join(model_dir, WEIGHTS_FILE)),
        meta,
        config,
        thresholds,
    )


def pack(workdir: str, dev: bool = True, model_dir: str = MODEL_DIR) -> str:
    """Copies a trained workdir's model, config, meta and thresholds into `model_dir`."""
    from jaxnotes.train import checkpoint

    model, _, _, step = checkpoint.load_model(workdir, dev=dev)
    tuned = files.thresholds_path(workdir)
    if not os.path.exists(tuned):
        raise FileNotFoundError(f"{tuned}: run the test action first (it tunes the thresholds)")
    os.makedirs(model_dir, exist_ok=True)
    save_weights(model, os.path.join(model_dir, WEIGHTS_FILE))
    for name in RUN_FILES:
        shutil.copyfile(os.path.join(workdir, name), os.path.join(model_dir, name))
    return f"step {step}{' (dev)' if dev else ''} of {workdir} -> {model_dir}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Packs a trained workdir as the shipped model.")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--final", action="store_true", help="the final model, not the dev one")
    parser.add_argument("--out", default=MODEL_DIR)
    args = parser.parse_args(argv)
    try:
        print(pack(args.workdir, dev=not args.final, model_dir=args.out))
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
