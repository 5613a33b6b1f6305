"""Learning-rate schedules and optimizer config validation (jaxnotes.optim)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import transformer
from jaxnotes.train import optim

STEPS_PER_EPOCH = 10


def _config(**optim_fields):
    config = transformer.get_config()
    config.num_epochs = 6
    config.optim.warmup_steps = 0
    for k, v in optim_fields.items():
        setattr(config.optim, k, v)
    return config


def _lr(config, step):
    return float(optim.make_schedule(config, STEPS_PER_EPOCH)(step))


def test_step_schedule_multiplies_by_gamma_at_each_milestone():
    """A step schedule that is off by an epoch (or compounds gamma wrongly) fails here."""
    config = _config(schedule="step", lr=1e-3, gamma=0.5, milestones=(2, 4))
    expected_by_epoch = [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]
    for epoch, expected in enumerate(expected_by_epoch):
        for step in (epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH - 1):
            np.testing.assert_allclose(_lr(config, step), expected, rtol=1e-6)


def test_step_schedule_without_milestones_is_constant():
    """An empty milestone list must mean 'never decay', not an error or a NaN."""
    config = _config(schedule="step", lr=3e-4, milestones=())
    for step in (0, 17, 59):
        np.testing.assert_allclose(_lr(config, step), 3e-4, rtol=1e-6)


def test_cosine_endpoints_and_midpoint():
    """Cosine must start at lr, be lr/2 halfway and reach 0 after the last epoch."""
    config = _config(schedule="cosine", lr=1e-3)
    total = config.num_epochs * STEPS_PER_EPOCH
    np.testing.assert_allclose(_lr(config, 0), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(_lr(config, total // 2), 5e-4, rtol=1e-5)
    np.testing.assert_allclose(_lr(config, total), 0.0, atol=1e-12)
    lrs = [_lr(config, s) for s in range(total)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False)), "cosine must not increase"


def test_max_steps_is_the_cosine_length():
    """With max_steps set below the epochs' steps, cosine is lr/2 halfway to it and 0 there;
    a warmup as long as the run is refused naming the field."""
    config = _config(schedule="cosine", lr=1e-3)
    config.max_steps = 20
    assert optim.run_steps(config, STEPS_PER_EPOCH) == 20
    np.testing.assert_allclose(_lr(config, 10), 5e-4, rtol=1e-5)
    np.testing.assert_allclose(_lr(config, 20), 0.0, atol=1e-12)
    config.max_steps = 1000  # longer than the epochs: the epochs decide
    assert optim.run_steps(config, STEPS_PER_EPOCH) == config.num_epochs * STEPS_PER_EPOCH
    config.max_steps = 5
    config.optim.warmup_steps = 5
    with pytest.raises(ValueError, match=r"optim.warmup_steps.*run's steps = 5"):
        optim.make_schedule(config, STEPS_PER_EPOCH)


def test_warmup_is_linear_then_joins_the_schedule():
    """Warmup must rise linearly from lr/w to lr, and the first step must not have lr 0."""
    for schedule in ("cosine", "step"):
        config = _config(schedule=schedule, lr=1e-3, warmup_steps=4, milestones=(3,))
        warm = [_lr(config, s) for s in range(4)]
        np.testing.assert_allclose(warm, [2.5e-4, 5e-4, 7.5e-4, 1e-3], rtol=1e-6)
        np.testing.assert_allclose(_lr(config, 4), 1e-3, rtol=1e-6)


def test_optimizer_clips_then_applies_adamw():
    """The chain must clip the global norm before AdamW and include weight decay."""
    config = _config(schedule="step", lr=0.1, clip_norm=1.0, weight_decay=0.0)
    tx, _ = optim.make_optimizer(config, STEPS_PER_EPOCH)
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.array([300.0, 400.0, 0.0])}  # norm 500, clipped to 1
    updates, _ = tx.update(grads, tx.init(params), params)
    # Adam's first step is lr * sign(g) regardless of scale; clipping must keep it finite.
    np.testing.assert_allclose(updates["w"], [-0.1, -0.1, 0.0], atol=1e-5)
    config.optim.weight_decay = 0.5
    tx, _ = optim.make_optimizer(config, STEPS_PER_EPOCH)
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.ones(3), rtol=1e-5)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lr": 0.0}, "config.optim.lr"),
        ({"lr": float("nan")}, "config.optim.lr"),
        ({"schedule": "linear"}, "config.optim.schedule"),
        ({"schedule": "step", "gamma": 0.0}, "config.optim.gamma"),
        ({"schedule": "step", "gamma": 1.5}, "config.optim.gamma"),
        ({"schedule": "step", "milestones": (3, 2)}, "config.optim.milestones"),
        ({"schedule": "step", "milestones": (2, 2)}, "config.optim.milestones"),
        ({"schedule": "step", "milestones": (0,)}, "config.optim.milestones"),
        ({"schedule": "step", "milestones": (6,)}, "config.optim.milestones"),
        ({"schedule": "step", "milestones": (1.5,)}, "config.optim.milestones"),
        ({"warmup_steps": 60}, "config.optim.warmup_steps"),
        ({"warmup_steps": -1}, "config.optim.warmup_steps"),
        ({"weight_decay": -0.1}, "config.optim.weight_decay"),
        ({"clip_norm": 0.0}, "config.optim.clip_norm"),
    ],
)
def test_bad_values_raise_naming_the_field(fields, message):
    """A bad optimizer field must fail at start-up with its name, not mid-training."""
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        optim.make_optimizer(_config(**fields), STEPS_PER_EPOCH)


def test_bad_epochs_or_steps_per_epoch_raise():
    """num_epochs < 1 or an empty epoch must be reported, not divide by zero."""
    config = _config()
    config.num_epochs = 0
    with pytest.raises(ValueError, match="config.num_epochs"):
        optim.make_optimizer(config, STEPS_PER_EPOCH)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        optim.make_optimizer(_config(), 0)
