"""The optimizer: gradient clipping, AdamW and the learning-rate schedule.

Owns `config.optim` (lr, schedule, gamma, milestones, warmup_steps, weight_decay,
clip_norm) and the epoch -> step conversion of the schedule. Must not import data,
model or loop code: the caller passes `steps_per_epoch`.

Schedules (s is the optimizer step, counted from 0; `w = warmup_steps`):
  warmup   s < w:   lr * (s + 1) / w, so the first step already learns.
  'cosine' s >= w:  lr * (1 + cos(pi * (s - w) / (S - w))) / 2, S = the run's steps
                    (`run_steps`: num_epochs * steps_per_epoch, or max_steps if shorter),
                    reaching 0 at the end of the run.
  'step'   s >= w:  lr * gamma ** (number of milestones m with s >= m * steps_per_epoch),
                    like torch's MultiStepLR stepped once per epoch.
"""

import numbers
from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
import optax

from jaxnotes import sections

Schedule = Callable[[int], jnp.ndarray]


def _require(ok: bool, field: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"config.{field} must be {expected}; got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate(config, steps_per_epoch: int) -> None:
    """Raises ValueError naming the first bad optimizer field.

    The fields alone are checked by `sections.OptimConfig`; this adds what depends on the
    schedule's length.

    Args:
      config: the run's config (reads `config.optim` and `config.num_epochs`).
      steps_per_epoch: optimizer steps in one epoch (from the data pipeline).
    """
    o = sections.OptimConfig.of(config.optim)
    if not (_is_int(steps_per_epoch) and steps_per_epoch >= 1):
        raise ValueError(
            f"steps_per_epoch must be a positive int; got {steps_per_epoch!r} (is the train "
            "split empty, or smaller than one batch of config.data.batch_size windows?)"
        )
    _require(
        _is_int(config.num_epochs) and config.num_epochs >= 1,
        "num_epochs",
        config.num_epochs,
        "a positive int",
    )
    total_steps = run_steps(config, steps_per_epoch)
    _require(
        o.warmup_steps < total_steps,
        "optim.warmup_steps",
        o.warmup_steps,
        f"an int in [0, the run's steps = {total_steps})",
    )
    if o.schedule == "step":
        _require(
            all(m < config.num_epochs for m in o.milestones),
            "optim.milestones",
            o.milestones,
            f"epochs in [1, num_epochs - 1 = {config.num_epochs - 1}] (a milestone at epoch "
            "m multiplies the lr by gamma from the first step of epoch m, counted from 0)",
        )


def run_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """Optimizer steps of the whole run: num_epochs epochs, or config.max_steps if that is
    set (> 0) and shorter. The cosine schedule decays over exactly these steps."""
    total = config.num_epochs * steps_per_epoch
    return min(total, config.max_steps) if config.max_steps > 0 else total


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> Schedule:
    """Returns the learning rate as a function of the optimizer step (validated)."""
    validate(config, steps_per_epoch)
    o = config.optim
    lr, warmup = float(o.lr), int(o.warmup_steps)
    total_steps = run_steps(config, steps_per_epoch)

    if o.schedule == "cosine":

        def schedule(step):
            return warmup_cosine(step, lr, warmup, total_steps)

    else:
        boundaries = jnp.asarray([m * steps_per_epoch for m in o.milestones], jnp.float32)
        gamma = float(o.gamma)

        def schedule(step):
            step = jnp.asarray(step, jnp.float32)
            # Milestones and warmup compose, so a milestone inside the warmup still counts.
            num_passed = jnp.sum(step >= boundaries) if len(o.milestones) else 0.0
            return lr * _warmup_factor(step, warmup) * gamma**num_passed

    return schedule


def _warmup_factor(step, warmup: int):
    if warmup == 0:
        return jnp.ones_like(step, dtype=jnp.float32)
    return jnp.minimum(1.0, (step + 1.0) / warmup)


def warmup_cosine(step, lr: float, warmup: int, total_steps):
    """`lr` after a linear warmup over `warmup` steps, then a cosine decay reaching zero at
    `total_steps` (> warmup), which may be a traced value (experiment E017 sets it once
    its warmup has been timed)."""
    step = jnp.asarray(step, jnp.float32)
    progress = jnp.clip((step - warmup) / (total_steps - warmup), 0.0, 1.0)
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return lr * jnp.where(step < warmup, _warmup_factor(step, warmup), cosine)


def transformation(config: ml_collections.ConfigDict, schedule: Schedule):
    """Clip-by-global-norm, then AdamW on `schedule` (whatever computes it)."""
    # AdamW with torch's defaults (b1 0.9, b2 0.999, eps 1e-8) decaying every parameter,
    # as the original's torch.optim.AdamW did.
    return optax.chain(
        optax.clip_by_global_norm(float(config.optim.clip_norm)),
        optax.adamw(schedule, weight_decay=float(config.optim.weight_decay)),
    )


def make_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, Schedule]:
    """Builds clip-by-global-norm followed by AdamW on the configured schedule.

    Args:
      config: the full config (`config.optim`, `config.num_epochs`).
      steps_per_epoch: optimizer steps per epoch; milestones and the cosine length are
        converted from epochs to steps with it.

    Returns:
      (tx, schedule): the optax transformation and step -> learning rate.

    Raises:
      ValueError: a bad `config.optim` field or `num_epochs`; the message names it.
    """
    schedule = make_schedule(config, steps_per_epoch)
    return transformation(config, schedule), schedule
