"""Warm start: a new training run's first parameters taken from a trained model.

`config.init_from` names the model: 'pretrained' (the one shipped in the package), or a
training workdir (its dev model when it has one, else its latest checkpoint). Only the
parameters move; the optimizer state, the step count, the schedule and the data order
start afresh, as for a run from random weights. The source must compute the same inputs
(every config.cqt field and the pitch range) and have the same model shapes: anything else
is a one-line error naming config.init_from and what differs. Used to fine-tune a model on
other data or with another recipe (the release recipe's second stage, configs/release.py).

Only a run's first start warm-starts: a resumed run restores its own checkpoint. Must not
import the data pipeline.
"""

import os

import jax
from absl import logging

from jaxnotes import files, pretrained
from jaxnotes.data import spec
from jaxnotes.train import checkpoint

PRETRAINED = "pretrained"


def source_model(init_from: str):
    """(eval-mode model, its config, a description) of `init_from`."""
    if init_from == PRETRAINED:
        model, _, config, _ = pretrained.load()
        return model, config, f"the pretrained model in {pretrained.MODEL_DIR}"
    workdir = os.path.abspath(os.path.expanduser(init_from))
    if not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"config.init_from={init_from!r}: no such workdir (or give {PRETRAINED!r})"
        )
    dev = os.path.isdir(os.path.join(workdir, files.DEV_CHECKPOINTS))
    model, _, config, step = checkpoint.load_model(workdir, dev=dev)
    return model, config, f"step {step}{' (dev model)' if dev else ''} of {workdir}"


def initial_params(init_from: str, config, params):
    """`params` (a fresh run's nnx.Param state, placed on the mesh) with the values of
    `init_from`'s model, placed as `params` are.

    Raises:
      ValueError: the source computes other inputs, or a parameter is missing, extra or of
        another shape (named).
      FileNotFoundError, CheckpointNotFoundError: no such model.
    """
    model, source_config, what = source_model(init_from)
    source = f"config.init_from={init_from!r} ({what})"
    spec.check_same_inputs(source_config, config, source)
    logging.info("warm start: parameters from %s", what)
    return placed_params(params, pretrained.param_arrays(model), source)


def placed_params(params, arrays: dict, source: str):
    """`params` (nnx.Param state on the mesh) with the values of `arrays`
    (`pretrained.param_arrays` names), each placed and typed as its leaf is.

    Raises:
      ValueError: `source`: a parameter missing, extra or of another shape (named).
    """
    values = pretrained.matched_arrays(params, arrays, source)
    leaves, treedef = jax.tree_util.tree_flatten(params)

    def place(value, leaf):
        value = value.astype(leaf.dtype)
        # From a callback, not device_put: with several processes the mesh holds devices
        # this process cannot address.
        return jax.make_array_from_callback(leaf.shape, leaf.sharding, lambda index: value[index])

    return jax.tree_util.tree_unflatten(
        treedef, [place(v, leaf) for v, leaf in zip(values, leaves, strict=True)]
    )
