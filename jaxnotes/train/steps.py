"""The functional core of training: the train state and pure, jitted steps over a mesh.

`nnx.split` turns the model into a static graphdef and array state once; `train_step`
and `eval_step` are pure functions of that state, jitted once by `compile_steps` with
explicit shardings (state replicated, batch split over 'data'), so the same code runs on
one CPU and on N devices. Metrics leave the device as counts (loss sum, frames,
TP/FP/FN), so sums over batches and devices are exact. Must not import the data
pipeline or the loop. Legend: B batch, T frames, F CQT bins, P pitches.

Mixed precision (`config.model.compute_dtype='bfloat16'`) lives in the model: its layers
cast the float32 parameters and activations to bfloat16 for their matmuls, and its heads
return float32 logits. So the parameters, their gradients and the optimizer state here
are float32 whatever the compute dtype, and the loss and counts are computed in float32.
FLOPs per step and MFU: jaxnotes/train/flops.py on `compile_steps`' train function.
"""

import functools
from collections.abc import Callable, Iterable, Mapping

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jaxnotes import models
from jaxnotes.data import Meta
from jaxnotes.evaluate import metrics
from jaxnotes.train import parallel

MODEL_KEYS = ("cqt", "frames", "onsets", "mask")  # the batch keys a step reads


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; the graphdef stays outside (static)."""

    step: jax.Array  # optimizer steps taken
    params: nnx.State  # nnx.Param variables
    opt_state: optax.OptState
    rest: nnx.State  # all other model variables (RNG streams, running statistics)


def create_train_state(
    config: ml_collections.ConfigDict,
    meta: Meta,
    tx: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
) -> tuple[nnx.GraphDef, TrainState, TrainState]:
    """Returns (graphdef, abstract_state, init_fn).

    `abstract_state` carries shapes and shardings (the restore target); calling
    `init_fn()` initialises the state directly with those shardings.
    """

    def init() -> TrainState:
        _, params, rest = nnx.split(models.from_config(config, meta), nnx.Param, ...)
        step = jnp.zeros((), jnp.int32)
        return TrainState(step=step, params=params, opt_state=tx.init(params), rest=rest)

    graphdef, _, _ = nnx.split(
        nnx.eval_shape(lambda: models.from_config(config, meta)), nnx.Param, ...
    )
    init_fn = jax.jit(init, out_shardings=parallel.replicated(mesh))
    shapes = jax.eval_shape(init)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=parallel.replicated(mesh)),
        shapes,
    )
    return graphdef, abstract, init_fn


def loss_and_counts(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    onset_positive_weight: float = 1.0,
):
    """Masked BCE-with-logits (frame + onset heads) and frame/onset counts at p >= 0.5.

    A frame's loss is its BCE summed over pitches and both heads, so the training loss
    (`loss_sum / frame_count`, the mean over real frames) does not shrink as P grows.
    Onset cells that are on weigh `onset_positive_weight` times the others: an onset
    lasts one frame, so they are rarer than sounding cells by the notes' length.
    """
    mask_BxT = batch["mask"].astype(jnp.float32)
    mask_BxTx1 = mask_BxT[..., None]
    counts = {"loss_sum": jnp.zeros((), jnp.float32)}
    for head, labels in (("frame", "frames"), ("onset", "onsets")):
        logits_BxTxP = outputs[head].astype(jnp.float32)
        labels_BxTxP = batch[labels].astype(jnp.float32)
        bce_BxTxP = optax.sigmoid_binary_cross_entropy(logits_BxTxP, labels_BxTxP)
        if head == "onset":
            bce_BxTxP *= 1.0 + (onset_positive_weight - 1.0) * labels_BxTxP
        counts["loss_sum"] += jnp.sum(bce_BxTxP * mask_BxTx1)
        # p >= 0.5 is logit >= 0; masked cells count as neither predicted nor true.
        pred_BxTxP = (logits_BxTxP >= 0) & (mask_BxTx1 > 0)
        true_BxTxP = (labels_BxTxP > 0.5) & (mask_BxTx1 > 0)
        counts[f"{head}_tp"] = jnp.sum(pred_BxTxP & true_BxTxP, dtype=jnp.int32)
        counts[f"{head}_fp"] = jnp.sum(pred_BxTxP & ~true_BxTxP, dtype=jnp.int32)
        counts[f"{head}_fn"] = jnp.sum(~pred_BxTxP & true_BxTxP, dtype=jnp.int32)
        if head == "frame":
            # The original's accuracy: frames whose whole pitch vector is right.
            wrong_BxT = jnp.sum(pred_BxTxP != true_BxTxP, axis=-1)
            counts["exact_frames"] = jnp.sum((wrong_BxT == 0) & (mask_BxT > 0), dtype=jnp.int32)
    counts["frame_count"] = jnp.sum(mask_BxT > 0, dtype=jnp.int32)
    return counts


def _reseed_dropout(model: nnx.Module, key: jax.Array) -> None:
    # Dropout masks depend only on (seed, step), never on how many steps ran in this
    # process, so a resumed run draws exactly the masks of an uninterrupted one.
    tags = sorted({s.key.tag for _, s in nnx.iter_graph(model) if isinstance(s, nnx.RngStream)})
    if tags:
        nnx.reseed(model, **{tag: jax.random.fold_in(key, i) for i, tag in enumerate(tags)})


def train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    state: TrainState,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    onset_positive_weight: float = 1.0,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on `batch`; returns the new state and this step's counts/norms."""

    def loss_fn(params):
        # copy=True: merge would otherwise reuse the Variables of `state.rest`, created
        # outside this grad trace, and NNX refuses to mutate them here (dropout counts).
        model = nnx.merge(graphdef, params, state.rest, copy=True)
        model.train()
        _reseed_dropout(model, jax.random.fold_in(rng, state.step))
        counts = loss_and_counts(
            model(batch["cqt"]), batch, onset_positive_weight=onset_positive_weight
        )
        loss = counts["loss_sum"] / jnp.maximum(counts["frame_count"], 1)
        _, _, rest = nnx.split(model, nnx.Param, ...)
        return loss, (counts, rest)

    grads, (counts, rest) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        **counts,
        "grad_norm": optax.global_norm(grads),
        "update_norm": optax.global_norm(updates),
        "param_norm": optax.global_norm(params),
    }
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rest=rest)
    return new_state, metrics


def eval_step(
    graphdef: nnx.GraphDef,
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    onset_positive_weight: float = 1.0,
) -> dict[str, jax.Array]:
    """Counts of the model in eval mode (no dropout) on `batch`."""
    model = nnx.merge(graphdef, state.params, state.rest)
    model.eval()
    return loss_and_counts(model(batch["cqt"]), batch, onset_positive_weight=onset_positive_weight)


def compile_steps(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
    *,
    onset_positive_weight: float = 1.0,
) -> tuple[Callable, Callable]:
    """The jitted `(state, batch, rng) -> (state, metrics)` and `(state, batch) -> counts`."""
    if not onset_positive_weight > 0:
        raise ValueError(f"config.onset_positive_weight={onset_positive_weight}: must be > 0")
    rep, data = parallel.replicated(mesh), parallel.data_sharding(mesh)
    weight = {"onset_positive_weight": float(onset_positive_weight)}
    train_fn = jax.jit(
        functools.partial(train_step, graphdef, tx, **weight),
        in_shardings=(rep, data, rep),
        out_shardings=(rep, rep),
        donate_argnums=0,  # the old state's buffers become the new state's
    )
    eval_fn = jax.jit(
        functools.partial(eval_step, graphdef, **weight),
        in_shardings=(rep, data),
        out_shardings=rep,
    )
    return train_fn, eval_fn


def to_device(batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """The model's batch keys as global arrays split over 'data' (rows padded with mask 0)."""
    local = parallel.pad_batch(
        {k: batch[k] for k in MODEL_KEYS}, parallel.local_batch_multiple(mesh)
    )
    return parallel.host_batch_to_global(local, mesh)


def evaluate(
    eval_fn: Callable, state: TrainState, batches: Iterable, mesh: jax.sharding.Mesh
) -> dict[str, np.float64]:
    """Counts summed over `batches` (on the host in 64 bits, so exact for any split size)."""
    device_counts = [eval_fn(state, to_device(batch, mesh)) for batch in batches]
    totals: dict[str, float] = {}
    for counts in jax.device_get(device_counts):
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + np.float64(v)
    return totals


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def summarize(counts: Mapping[str, float], prefix: str = "") -> dict[str, float]:
    """Reported numbers from summed counts: loss per frame, frame/onset P/R/F1, accuracy."""
    out = {"loss": _ratio(counts["loss_sum"], counts["frame_count"])}
    for head in ("frame", "onset"):
        c = metrics.FrameCounts(*(float(counts[f"{head}_{k}"]) for k in ("tp", "fp", "fn")))
        out[f"{head}_precision"], out[f"{head}_recall"], out[f"{head}_f1"] = (
            c.precision,
            c.recall,
            c.f1,
        )
    out["frame_accuracy"] = _ratio(counts["exact_frames"], counts["frame_count"])
    return {f"{prefix}{k}": v for k, v in out.items()}
