"""A model trained outside the training loop becomes a workdir.

Weights trained elsewhere (an `.npz` of `pretrained.param_arrays` names: what
`pretrained.save_weights` writes, e.g. on an accelerator machine by experiment E017) are
written as the checkpoint of a new workdir with the config they were trained with, so that
everything made for workdirs works on them: the test action (thresholds tuned on the
validation split, reports), `jaxnotes-transcribe --workdir`, packing
(`python -m jaxnotes.pretrained --final`), and warm starts (`config.init_from`).

    python -m jaxnotes.train.adopt --weights weights.npz --workdir runs/mine \
        --config=configs/transformer.py [--step 120000]

The checkpoint holds the given parameters at `--step` with a fresh optimizer state and no
data-iterator position: it is a trained model to test, transcribe with, pack or warm-start
from, not a run to resume. Must not import the data pipeline.
"""

import dataclasses
import os
import sys

import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from jaxnotes import files, pretrained
from jaxnotes.data import spec
from jaxnotes.train import checkpoint, optim, parallel, steps, warm_start


def adopt(weights_path: str, config, workdir: str, step: int) -> str:
    """Writes `workdir` (run files + checkpoint `step`) holding the weights of
    `weights_path` for `config`'s model. Returns a one-line description.

    Raises:
      FileExistsError: `workdir` already has checkpoints (nothing is written).
      FileNotFoundError: no such weights file.
      ValueError: a parameter missing, extra or of another shape (named); a bad step.
    """
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"{weights_path}: no such weights file")
    if not (isinstance(step, int) and step >= 1):
        raise ValueError(f"--step={step!r}: the steps the weights were trained for, >= 1")
    directory = os.path.join(workdir, files.CHECKPOINTS)
    if os.path.isdir(directory) and os.listdir(directory):
        raise FileExistsError(f"{directory}: already holds checkpoints; adopt into a new workdir")
    arrays = pretrained.read_weights(weights_path)
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.max_steps = step  # the config.json of the workdir says how long it trained
    meta = spec.load_meta(config)
    # The schedule's length is max_steps: the optimizer state saved is fresh either way.
    tx, _ = optim.make_optimizer(config, steps_per_epoch=step)
    mesh = parallel.make_mesh()
    _, _, init_fn = steps.create_train_state(config, meta, tx, mesh)
    state = init_fn()
    params = warm_start.placed_params(state.params, arrays, weights_path)
    state = state.replace(params=params, step=jnp.asarray(step, jnp.int32))
    files.write_run_files(workdir, config, meta)
    mngr = checkpoint.make_manager(directory)
    try:
        info = {
            "config": files.config_to_dict(config),
            "meta": dataclasses.asdict(meta),
            "loop": {"best_value": None, "best_step": None, "bad_epochs": 0},
            "adopted_from": os.path.abspath(weights_path),
        }
        checkpoint.save(mngr, step, state, info=info)
        mngr.wait_until_finished()
    finally:
        mngr.close()
    return f"{weights_path} -> step {step} of {workdir}"


_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "the config the weights were trained with"
)
_WEIGHTS = flags.DEFINE_string("weights", None, "an .npz of parameters (pretrained.save_weights)")
_WORKDIR = flags.DEFINE_string("workdir", None, "a new workdir")
_STEP = flags.DEFINE_integer("step", 1, "the steps the weights were trained for")


def main(argv) -> None:
    del argv
    try:
        print(adopt(_WEIGHTS.value, _CONFIG.value, _WORKDIR.value, _STEP.value))
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "weights", "workdir"])
    app.run(main)
