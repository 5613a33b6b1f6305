"""Model registry: `config.model_name` -> the `Model` class of `jaxnotes/models/<name>.py`,
and `get_model`/`from_config` that build one from config.

Adding a model is one module here (a class `Model`) and one config in configs/ (its
`config.model` fields are the constructor's keyword arguments, defaults included: configs/
is their one home).

Models know nothing about files or datasets: they receive `data.Meta` and the
fields of `config.model` as keyword arguments, and map cqt_BxTxF (B batch,
T frames, F CQT bins) to {'frame': logits_BxTxP, 'onset': logits_BxTxP}
(P pitches) for any T. Each exposes `receptive_field() -> (past, future)` frames.
"""

import importlib
import inspect
import pkgutil
from typing import Any

from flax import nnx

from jaxnotes.data import Meta

# Modules of this package that hold building blocks, not a model.
_NOT_MODELS = ("layers",)


def known_models() -> list[str]:
    """Names of the model modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_MODELS)


def model_fields(name: str) -> tuple[str, ...]:
    """The `config.model` fields model `name` accepts."""
    params = inspect.signature(_lookup(name).__init__).parameters
    return tuple(p for p in params if p not in ("self", "meta", "rngs"))


def _lookup(name: str) -> type[nnx.Module]:
    if name not in known_models():
        raise ValueError(
            f"unknown model {name!r} (config.model_name); known models: {known_models()}"
        )
    return importlib.import_module(f"{__name__}.{name}").Model


def get_model(name: str, *, meta: Meta, rngs: nnx.Rngs, **model_kwargs: Any) -> nnx.Module:
    """Builds model `name` for inputs/outputs described by `meta`.

    Args:
      name: a module of this package (config.model_name), see `known_models`.
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
    params = inspect.signature(cls.__init__).parameters
    missing = [f for f in fields if f not in model_kwargs and params[f].default is params[f].empty]
    if missing:
        bad = ", ".join(f"config.model.{k}" for k in missing)
        raise ValueError(f"{bad} missing: model {name!r} needs it (configs/ sets its defaults)")
    return cls(meta=meta, rngs=rngs, **model_kwargs)


def from_config(config, meta: Meta, rngs: nnx.Rngs | None = None) -> nnx.Module:
    """The model a run's config names (`model_name`, `model`), seeded by `config.seed`."""
    rngs = nnx.Rngs(config.seed) if rngs is None else rngs
    return get_model(config.model_name, meta=meta, rngs=rngs, **config.model)
