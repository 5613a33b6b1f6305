"""Training: the `train` and `train-val` loop around the pure steps of `steps`.

Owns logging, validation, the dev (best validation) model, early stopping, checkpoints,
preemption and the NaN guard. Imports the data pipeline only through its contract.
"""

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging

from jaxnotes import files
from jaxnotes.data import pipeline, spec
from jaxnotes.train import (
    checkpoint,
    flops,
    metric_writer,
    optim,
    parallel,
    preemption,
    steps,
    warm_start,
)

# Validation numbers that can choose the dev model (config.dev_metric).
DEV_METRICS = tuple(
    f"val/{k}"
    for k in ("loss", "frame_f1", "frame_precision", "frame_recall", "onset_f1", "frame_accuracy")
)
# The loss is never perfectly zero; counts and norms may be, so only these are checked.
_FINITE_KEYS = ("loss_sum", "grad_norm")
# The checkpoint `info` key holding the train metrics of steps not yet logged. Older
# checkpoints lack it and resume with an empty window (a shorter first average).
WINDOW_KEY = "train_window"


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or Inf; nothing after the last good save was kept."""


@dataclasses.dataclass
class LoopState:
    """What the loop must remember across restarts besides the TrainState (in `info`)."""

    best_value: float | None = None  # best validation value of config.dev_metric
    best_step: int | None = None
    bad_epochs: int = 0  # consecutive validations without improvement
    stopped_early: bool = False


class _Run:
    """One `train_and_evaluate` call: what lives between steps and what follows each step."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, validate: bool):
        if validate and config.dev_metric not in DEV_METRICS:
            raise ValueError(
                f"config.dev_metric={config.dev_metric!r}; expected one of {DEV_METRICS}"
            )
        self.config, self.workdir, self.validate = config, workdir, validate
        self.meta = spec.load_meta(config)
        self.steps_per_epoch = pipeline.steps_per_epoch(config, "train")
        self.total_steps = optim.run_steps(config, self.steps_per_epoch)
        self.tx, self.schedule = optim.make_optimizer(config, self.steps_per_epoch)
        self.mesh = parallel.make_mesh()
        parallel.check_batch_size(config.data.batch_size, self.mesh, "data.batch_size")
        self.graphdef, self.abstract_state, self.init_fn = steps.create_train_state(
            config, self.meta, self.tx, self.mesh
        )
        self.train_fn, self.eval_fn = steps.compile_steps(
            self.graphdef,
            self.tx,
            self.mesh,
            onset_positive_weight=self.config.onset_positive_weight,
        )
        self.train_iter = pipeline.make_train_iter(config, "train")
        self.mngr = checkpoint.make_manager(
            os.path.join(workdir, files.CHECKPOINTS), max_to_keep=config.keep_checkpoints
        )
        self.dev_mngr = None
        if validate:
            dev_dir = os.path.join(workdir, files.DEV_CHECKPOINTS)
            self.dev_mngr = checkpoint.make_manager(dev_dir, max_to_keep=1)
        self.writer = None
        self.pending: list[tuple[int, dict]] = []  # (step, device metrics) not yet fetched
        self.flops_per_step: float | None = None  # counted at the first step (0.0: unknown)
        # Fetched, not yet logged; saved with each checkpoint, so that a resumed run logs the
        # averages over the same steps as an uninterrupted one.
        self.window: list[tuple[int, dict]] = []
        self.last_val: dict[str, float] = {}
        # The dropout base key; each step folds its own number into it.
        # Made by a jitted function, not device_put: with several processes the mesh holds
        # devices this process cannot address, which device_put refuses.
        self.rng = jax.jit(
            lambda: jax.random.key(config.seed + 1), out_shardings=parallel.replicated(self.mesh)
        )()

    def info(self) -> dict[str, Any]:
        """The JSON saved with each checkpoint: config, meta and the loop state."""
        return {
            "config": files.config_to_dict(self.config),
            "meta": dataclasses.asdict(self.meta),
            "loop": dataclasses.asdict(self.loop),
        }

    def restore_or_init(self) -> None:
        restored = checkpoint.restore_latest(
            self.mngr,
            self.abstract_state,
            data_iter=self.train_iter,
            config=files.config_to_dict(self.config),
            meta=dataclasses.asdict(self.meta),
        )
        if restored is None:
            self.state, self.loop = self.init_fn(), LoopState()
            if self.config.init_from:  # a first start only: a resumed run has its own
                params = warm_start.initial_params(
                    self.config.init_from, self.config, self.state.params
                )
                self.state = self.state.replace(params=params)
        else:
            self.state, info = restored
            self.loop = LoopState(**info["loop"])
            self.window = [(int(step), m) for step, m in info.get(WINDOW_KEY, [])]
            diffs = files.config_diff(info["config"], files.config_to_dict(self.config))
            if diffs:
                logging.warning("resuming with a changed config:\n  %s", "\n  ".join(diffs))
        if jax.process_index() == 0:
            files.write_run_files(self.workdir, self.config, self.meta)
        self.step = self.start_step = int(self.state.step)
        self.writer = metric_writer.MetricWriter(self.workdir, resume_step=self.step)
        logging.info(
            "%s; %d steps per epoch; starting at step %d of %d in %s",
            parallel.describe(self.mesh),
            self.steps_per_epoch,
            self.step,
            self.total_steps,
            self.workdir,
        )

    def fetch(self) -> None:
        """Moves per-step metrics to the host and stops on a non-finite loss.

        The loop's only device -> host sync besides validation; it runs before every save,
        so a non-finite state is never written.
        """
        for step, m in jax.device_get(self.pending):
            if not all(math.isfinite(float(m[k])) for k in _FINITE_KEYS):
                raise TrainingDivergedError(self._diverged_message(step, m))
            self.window.append((step, m))
        self.pending.clear()

    def _diverged_message(self, step: int, m: dict) -> str:
        what = (
            f"non-finite training loss at step {step} (loss sum {float(m['loss_sum'])}, grad "
            f"norm {float(m['grad_norm'])}); stopped without saving it."
        )
        last_good = self.mngr.latest_step()
        if last_good is None:
            first_save = min(
                self.config.checkpoint_every_steps, self.steps_per_epoch, self.total_steps
            )
            return (
                f"{what} No checkpoint was saved yet (the first save is at step {first_save}), "
                "so a rerun starts afresh: lower config.optim.lr, lengthen "
                "config.optim.warmup_steps or lower config.optim.clip_norm, and check the data "
                "for NaN/Inf."
            )
        return (
            f"{what} The last good checkpoint is step {last_good} in {self.mngr.directory}. "
            "Check the data for NaN/Inf, or lower config.optim.lr."
        )

    def window_info(self) -> list:
        """The unlogged window as JSON: [[step, {metric: float}], ...], exact float64 values."""
        return [[step, {k: float(v) for k, v in m.items()}] for step, m in self.window]

    def count_flops(self, device_batch) -> float:
        """XLA's FLOPs of one train step (all devices), for perf/tflops and perf/mfu; 0.0
        when XLA cannot count them (then those are not logged)."""
        try:
            count = flops.step_flops(self.train_fn, self.state, device_batch, self.rng)
        except Exception as e:  # a missing cost model must never stop training
            logging.warning("no FLOP count for the train step (%s)", e)
            count = None
        if count:
            logging.info("train step: %.2f GFLOP (XLA's count, all devices)", count / 1e9)
        return float(count or 0.0)

    def log_train(self, timer: dict[str, float], bar: tqdm.tqdm) -> None:
        self.fetch()
        if not self.window:
            return
        window, last_step = self.window, self.window[-1][0]
        totals = {k: sum(np.float64(m[k]) for _, m in window) for k in window[0][1]}
        # Speeds count the steps this process ran, not those restored with a checkpoint.
        timed = [m for step, m in window if step > self.start_step]
        elapsed = time.perf_counter() - timer["start"] - timer["paused"]
        scalars = {f"train/{k}": v for k, v in steps.summarize(totals).items()}
        for k in ("grad_norm", "update_norm"):
            scalars[f"train/{k}"] = totals[k] / len(window)
        scalars["train/param_norm"] = float(window[-1][1]["param_norm"])
        scalars["train/learning_rate"] = float(self.schedule(last_step - 1))
        scalars["train/epoch"] = last_step / self.steps_per_epoch
        scalars["perf/steps_per_sec"] = len(timed) / elapsed
        scalars["perf/frames_per_sec"] = sum(float(m["frame_count"]) for m in timed) / elapsed
        scalars["perf/data_wait_fraction"] = timer["data"] / elapsed
        scalars.update(
            flops.throughput_metrics(
                self.flops_per_step or None,
                len(timed),
                elapsed,
                self.config.model.compute_dtype,
                prefix="perf/",
            )
        )
        self.writer.write(last_step, scalars)
        loss, fps = scalars["train/loss"], scalars["perf/frames_per_sec"]
        bar.set_postfix(loss=f"{loss:.4f}", frames_per_sec=f"{fps:.0f}")
        self.window = []
        timer.update(start=time.perf_counter(), paused=0.0, data=0.0)

    def validate_and_keep_best(self) -> bool:
        """Validates, keeps the dev model, and returns whether to stop early."""
        self.fetch()
        start = time.perf_counter()
        batches = pipeline.make_eval_iter(self.config, "validation")
        val = steps.summarize(steps.evaluate(self.eval_fn, self.state, batches, self.mesh), "val/")
        val["perf/validation_sec"] = time.perf_counter() - start
        value, loop = val[self.config.dev_metric], self.loop
        lower_is_better = self.config.dev_metric.endswith("loss")
        if loop.best_value is None or (
            value < loop.best_value if lower_is_better else value > loop.best_value
        ):
            loop.best_value, loop.best_step, loop.bad_epochs = value, self.step, 0
            checkpoint.save(self.dev_mngr, self.step, self.state, info={**self.info(), "val": val})
        else:
            loop.bad_epochs += 1
        val["val/best"] = loop.best_value
        self.writer.write(self.step, val)
        self.last_val = val
        logging.info("step %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in val.items()))
        # Keras' convention: patience 0 stops at the first epoch without improvement.
        patience = self.config.early_stopping_patience
        return patience >= 0 and loop.bad_epochs > 0 and loop.bad_epochs >= patience

    def train(self, hooks: Sequence[Callable[[int], None]]) -> dict[str, Any]:
        self.restore_or_init()
        config, stopped = self.config, "done"
        # Per log window: wall time (validation excluded), time in next(train_iter).
        timer = {"start": time.perf_counter(), "paused": 0.0, "data": 0.0}
        bar = tqdm.tqdm(
            total=self.total_steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=jax.process_index() != 0,
        )
        with bar, preemption.PreemptionGuard() as guard:
            while self.step < self.total_steps and not self.loop.stopped_early:
                start = time.perf_counter()
                batch = next(self.train_iter)
                timer["data"] += time.perf_counter() - start
                device_batch = steps.to_device(batch, self.mesh)
                if self.flops_per_step is None:
                    start = time.perf_counter()
                    self.flops_per_step = self.count_flops(device_batch)
                    timer["paused"] += time.perf_counter() - start
                self.state, metrics = self.train_fn(self.state, device_batch, self.rng)
                self.step += 1
                self.pending.append((self.step, metrics))
                bar.update(1)
                for hook in hooks:
                    hook(self.step)
                epoch_end = self.step % self.steps_per_epoch == 0
                last = self.step == self.total_steps
                if self.step % config.log_every_steps == 0 or last:
                    self.log_train(timer, bar)
                if self.validate and (epoch_end or last):
                    start = time.perf_counter()
                    self.loop.stopped_early = self.validate_and_keep_best()
                    timer["paused"] += time.perf_counter() - start
                preempted = guard.reached(self.mngr, self.step)
                periodic = self.step % config.checkpoint_every_steps == 0
                if periodic or epoch_end or last or preempted or self.loop.stopped_early:
                    self.fetch()
                    info = {**self.info(), WINDOW_KEY: self.window_info()}
                    checkpoint.save(
                        self.mngr, self.step, self.state, info=info, data_iter=self.train_iter
                    )
                if preempted:
                    stopped = guard.signal_name or "preemption"
                    break
        if self.loop.stopped_early:
            stopped = "early_stopping"
            logging.info(
                "early stopping: best %s=%.4g at step %s",
                config.dev_metric,
                self.loop.best_value,
                self.loop.best_step,
            )
        elif stopped != "done":
            message = (
                f"{stopped}: checkpoint saved at step {self.step} of {self.total_steps} in "
                f"{self.mngr.directory}; rerun the same command to resume."
            )
            logging.warning(message)
            print(message, flush=True)
        return {
            "step": self.step,
            "stopped": stopped,
            "best_step": self.loop.best_step,
            **self.last_val,
        }

    def close(self) -> None:
        """Waits for checkpoints in flight (a save is only done once committed)."""
        if self.writer is not None:
            self.writer.close()
        for mngr in (self.mngr, self.dev_mngr):
            if mngr is not None:
                mngr.wait_until_finished()
                mngr.close()


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    validate: bool,
    hooks: Sequence[Callable[[int], None]] = (),
) -> dict[str, Any]:
    """Trains (and with `validate`, validates every epoch) in `workdir`, resuming if possible.

    Restarting the same command after a kill at any point continues from the latest
    checkpoint and ends with the same parameters and the same logged metrics (timings
    aside) as an uninterrupted run: a checkpoint holds the train metrics not yet logged.

    Args:
      config: the full config (see configs/common.py).
      workdir: run folder; created if missing (see checkpoint.py for its layout).
      validate: the `train-val` action: validation loss and frame F1 each epoch, the best
        model (config.dev_metric) kept in workdir/checkpoints_dev, early stopping.
      hooks: called with the step number after every step (profiling, tests).

    Returns:
      A summary: final `step`, `stopped` ('done', 'early_stopping' or the signal's name),
      `best_step` of the dev model, and the last validation numbers, if any.

    Raises:
      TrainingDivergedError: the loss became NaN/Inf (the step is named; not saved).
      checkpoint.CheckpointMismatchError: the workdir's checkpoint doesn't fit the config.
    """
    workdir = os.path.abspath(os.path.expanduser(workdir))
    os.makedirs(workdir, exist_ok=True)
    run = _Run(config, workdir, validate)
    try:
        return run.train(hooks)
    finally:
        run.close()
