"""Snapshots of a device_train run: Orbax checkpoints (`jaxnotes.train.checkpoint`) of its
TrainState and dropout key, with its progress, so that a run cut short (a device call out
of time, a lost machine) or stopped on purpose (`--stop-after`) goes on with `--resume`.

Owns where a run's snapshots live (`<out>/snapshots-<r>/`), what a resumed run must share
with the one that wrote them, and saving and restoring them; the training itself stays in
device_train.
"""

import dataclasses
import os
import shutil

import jax

from jaxnotes import files
from jaxnotes.train import checkpoint


class Snapshots:
    """Orbax snapshots of one run in `directory`, with what resuming it must match: the
    config and meta (as the training loop checks them), the data, the seed and `--scan`
    (each call's batches come from the key folded with the step, split `scan` ways)."""

    def __init__(self, directory: str, every_s: float, config, meta, identity: dict):
        self.every_s, self.identity = float(every_s), dict(identity)
        self.config, self.meta = files.config_to_dict(config), dataclasses.asdict(meta)
        # One kept: a killed save never replaces it, and it travels light (~3x the weights).
        self.mngr = checkpoint.make_manager(directory, max_to_keep=1)

    def restore(self, carry) -> tuple | None:
        """(carry, progress) of the newest intact snapshot, in `carry`'s shapes and
        shardings; None when there is none."""
        state, rng = carry
        # The dropout key is made uncommitted: restore it where the state lives (the mesh).
        target = (
            jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
            ),
            jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=state.step.sharding),
        )
        restored = checkpoint.restore_latest(
            self.mngr, target, data_iter=None, config=self.config, meta=self.meta
        )
        if restored is None:
            return None
        carry, info = restored
        for name, value in self.identity.items():
            if info["progress"].get(name) != value:
                raise ValueError(
                    f"{self.mngr.directory}: the snapshot's {name} is "
                    f"{info['progress'].get(name)!r}, this run's {value!r}; resuming it would "
                    "not continue the same run (give the arguments it was started with, or "
                    "a fresh --out)"
                )
        return carry, info["progress"]

    def save(self, step: int, carry, progress: dict) -> None:
        info = {"config": self.config, "meta": self.meta, "progress": {**progress, **self.identity}}
        checkpoint.save(self.mngr, step, carry, info=info)
        self.mngr.wait_until_finished()  # complete before the run goes on (or is killed)


def for_run(args, r: int, config, meta, share, steps_) -> Snapshots:
    """Run r's snapshots in `<out>/snapshots-r/`: copied there from `--resume`'s when that
    is another folder; a folder that already holds some is refused without `--resume`."""
    directory = os.path.join(args.out, f"snapshots-{r}")
    if args.resume:
        source = os.path.join(args.resume, f"snapshots-{r}")
        if os.path.isdir(source) and os.path.abspath(source) != os.path.abspath(directory):
            shutil.copytree(source, directory, dirs_exist_ok=True)
    else:
        refuse_earlier(args.out, r)
    # What the same run must share: its data (by export name: paths differ between
    # machines), seed, steps or share of the time, and the steps a call.
    identity = {
        "data": [os.path.basename(os.path.normpath(d)) for d in args.data.split(",")],
        "seed": int(config.seed) + r,
        "scan": int(args.scan),
        "steps_asked": steps_,
        "share": share,
        "seconds_given": args.seconds if share else None,
    }
    return Snapshots(directory, args.snapshot_every, config, meta, identity)


def refuse_earlier(out: str, r: int) -> None:
    """Raises FileExistsError when `out` holds run r's snapshots from an earlier run: that
    run goes on with --resume, a new one needs a fresh --out."""
    directory = os.path.join(out, f"snapshots-{r}")
    if os.path.isdir(directory) and os.listdir(directory):
        raise FileExistsError(
            f"{directory} holds snapshots of an earlier run: go on with --resume {out}, "
            "or give a fresh --out"
        )
