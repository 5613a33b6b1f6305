"""Model registry: name -> model class, and `get_model` that builds one from config.

Models know nothing about files or datasets: they receive `data.Meta` and the
fields of `config.model` as keyword arguments, and map cqt_BxTxF (B batch,
T frames, F CQT bins) to {'frame': logits_BxTxP, 'onset': logits_BxTxP}
(P pitches) for any T. Each exposes `receptive_field() -> (past, future)` frames.
"""

import inspect
from typing import Any

from flax import nnx

from jaxnotes.data import Meta
from jaxnotes.models import cnn_mlp, transformer

MODELS: dict[str, type[nnx.Module]] = {
    "cnn_mlp": cnn_mlp.Model,
    "transformer": transformer.Model,
}


def model_fields(name: str) -> tuple[str, ...]:
    """The `config.model` fields model `name` accepts."""
    params = inspect.signature(_lookup(name).__init__).parameters
    return tuple(p for p in params if p not in ("self", "meta", "rngs"))


def _lookup(name: str) -> type[nnx.Module]:
    if name not in MODELS:
        raise ValueError(
            f"unknown model {name!r} (config.model_name); known models: {sorted(MODELS)}"
        )
    return MODELS[name]


def get_model(name: str, *, meta: Meta, rngs: nnx.Rngs, **model_kwargs: Any) -> nnx.Module:
    """Builds model `name` for inputs/outputs described by `meta`.

    Args:
      name: a key of MODELS (config.model_name).
      meta: the data side's Meta record.
      rngs: parameter and dropout randomness, e.g. nnx.Rngs(config.seed).
      **model_kwargs: the fields of config.model.

    Returns:
      The model, in training mode (dropout on); call `.eval()` for inference.

    Raises:
      ValueError: unknown model name, unknown field, or a bad field value; the
        message names the config field.
    """
    cls = _lookup(name)
    fields = model_fields(name)
    unknown = sorted(set(model_kwargs) - set(fields))
    if unknown:
        bad = ", ".join(f"config.model.{k}" for k in unknown)
        raise ValueError(f"{bad} not used by model {name!r}; its fields are: {', '.join(fields)}")
    return cls(meta=meta, rngs=rngs, **model_kwargs)
