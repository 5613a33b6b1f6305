"""Typed, frozen config sections: a run's ConfigDict, validated once, as dataclasses.

`RunConfig.of(config)` turns the ml_collections ConfigDict of a config file (configs/) into
a `RunConfig` whose sections (`cqt`, `data`, `augment`, `optim`, `eval`, and `model` as a
frozen mapping of the model's keyword arguments) are frozen dataclasses with every field
checked; a wrong value is a ValueError naming `config.<section>.<field>`, an unknown field
one that names the known ones. The command line builds it once, before any action runs,
and passes it on; library functions that are handed a ConfigDict (tests, notebooks) call
`RunConfig.of` at their boundary, and a RunConfig passes through unchanged. Reading code
uses the same attribute paths either way (`config.data.batch_size`).

Defaults live in configs/ alone: these classes declare types and rules, not values.
Checks that need the data (steps per epoch) or the process count (batch divisibility)
stay with the code that knows them. Must not import model, loop or metric code.
"""

import dataclasses
import itertools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxnotes.data import selection
from jaxnotes.data.features import CqtConfig

OPTIM_SCHEDULES = ("cosine", "step")
LABEL_FORMATS = ("auto", "csv", "midi")


def _fail(section: str, field: str, value, expected: str):
    raise ValueError(f"config.{section}{'.' if section else ''}{field}={value!r}: {expected}")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _coerce(section: str, field: str, hint, value):
    """`value` as the annotated type (ints stay ints, tuples from lists), or a ValueError."""
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )
    if optional:
        if value is None:
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint) or hint
    if origin is bool:
        if isinstance(value, bool):
            return value
        _fail(section, field, value, "expected True or False")
    if origin is int:
        if _is_int(value):
            return int(value)
        _fail(section, field, value, "expected an integer")
    if origin is float:
        if _is_real(value):
            return float(value)
        _fail(section, field, value, "expected a finite number")
    if origin is str:
        if isinstance(value, str):
            return value
        _fail(section, field, value, "expected a string")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            _fail(section, field, value, "expected a list of values")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis} or {Any}
        return tuple(v if item is Any else _coerce(section, field, item, v) for v in value)
    return value


class _Section:
    """A frozen dataclass built from one ConfigDict section, each field coerced and checked."""

    SECTION = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]):
        values = dict(values.items())
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        prefix = f"config.{cls.SECTION}{'.' if cls.SECTION else ''}"
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(
                f"{', '.join(prefix + k for k in unknown)}: no such field; "
                f"known: {', '.join(names)}"
            )
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"{', '.join(prefix + k for k in missing)}: missing")
        return cls(**{n: _coerce(cls.SECTION, n, hints[n], values[n]) for n in names})

    @classmethod
    def of(cls, section):
        """`section` (a ConfigDict section) validated and typed; an instance passes through."""
        return section if isinstance(section, cls) else cls.from_mapping(section)

    def _require(self, ok: bool, field: str, expected: str) -> None:
        if not ok:
            _fail(self.SECTION, field, getattr(self, field), expected)


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    SECTION = "data"
    musicnet_dir: str
    cache_dir: str
    corpus_size: str
    corpus_seed: int
    render_workers: int
    exclude_works: tuple[str, ...]
    label_format: str
    validation_fraction: float
    validation_ids: tuple  # recording ids, as strings or numbers
    split_seed: int
    chunk_frames: int
    batch_seconds: float
    batch_size: int
    num_workers: int
    only_note_names: bool
    min_pitch: int
    max_pitch: int
    shuffle_seed: int
    eval_batch_size: int
    windows_per_chunk: int
    read_threads: int
    prefetch_batches: int
    train_exclude: tuple[str, ...]
    extra_train_sizes: tuple[str, ...]

    def __post_init__(self):
        r = self._require
        selection.parse_rules(self.train_exclude)  # a malformed rule names the field
        extra = self.extra_train_sizes  # with musicnet_dir: records.extra_train_configs
        r(
            len(set(extra)) == len(extra) and self.corpus_size not in extra,
            "extra_train_sizes",
            f"must name each size once, and not corpus_size={self.corpus_size!r}",
        )
        r(self.label_format in LABEL_FORMATS, "label_format", f"one of {LABEL_FORMATS}")
        r(0 <= self.validation_fraction < 1, "validation_fraction", "a fraction in [0, 1)")
        r(self.render_workers >= 1, "render_workers", "must be >= 1")
        for field in ("batch_size", "eval_batch_size", "chunk_frames", "windows_per_chunk"):
            r(getattr(self, field) > 0, field, "must be positive")
        r(self.batch_seconds > 0, "batch_seconds", "must be positive")
        r(0 <= self.min_pitch <= 127, "min_pitch", "must be a MIDI pitch (0..127)")
        r(0 <= self.max_pitch <= 127, "max_pitch", "must be a MIDI pitch (0..127)")
        r(self.min_pitch <= self.max_pitch, "min_pitch", f"is above max_pitch={self.max_pitch}")
        r(self.num_workers >= 0, "num_workers", "must be >= 0")
        r(self.read_threads >= 1, "read_threads", "must be >= 1")
        r(self.prefetch_batches >= 0, "prefetch_batches", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class AugmentConfig(_Section):
    SECTION = "augment"
    pitch_shift_semitones: int
    pitch_jitter_bins: int
    gain_db: float
    eq_db: float

    def __post_init__(self):
        for field in ("pitch_shift_semitones", "pitch_jitter_bins", "gain_db", "eq_db"):
            self._require(getattr(self, field) >= 0, field, "must be >= 0 (the range is symmetric)")


@dataclasses.dataclass(frozen=True)
class OptimConfig(_Section):
    SECTION = "optim"
    lr: float
    schedule: str
    gamma: float
    milestones: tuple[int, ...]
    warmup_steps: int
    weight_decay: float
    clip_norm: float

    def __post_init__(self):
        r = self._require
        r(self.lr > 0, "lr", "a finite number > 0")
        r(self.schedule in OPTIM_SCHEDULES, "schedule", f"one of {OPTIM_SCHEDULES}")
        r(self.warmup_steps >= 0, "warmup_steps", "an int >= 0")
        r(self.weight_decay >= 0, "weight_decay", "a finite number >= 0")
        r(
            self.clip_norm > 0,
            "clip_norm",
            "a finite number > 0 (the gradient norm is clipped to it)",
        )
        if self.schedule == "step":
            r(0 < self.gamma <= 1, "gamma", "in (0, 1]")
            r(all(m >= 1 for m in self.milestones), "milestones", "epochs >= 1")
            increasing = all(a < b for a, b in itertools.pairwise(self.milestones))
            r(increasing, "milestones", "strictly increasing epochs")


@dataclasses.dataclass(frozen=True)
class EvalConfig(_Section):
    SECTION = "eval"
    thresholds: tuple[float, ...]
    allowed_errors: tuple[int, ...]
    test_dev: bool
    fallback_checkpoint: bool
    onset_tolerance_s: float
    frame_threshold: float | None
    onset_threshold: float | None
    min_note_s: float | None
    sustain_threshold: float | None
    gap_join_s: float
    num_piano_rolls: int
    segment_s: float | None
    segment_overlap: float

    def __post_init__(self):
        r = self._require
        r(bool(self.thresholds), "thresholds", "give at least one value in [0, 1]")
        r(all(0 <= t <= 1 for t in self.thresholds), "thresholds", "probabilities in [0, 1]")
        r(bool(self.allowed_errors), "allowed_errors", "give at least one integer >= 0")
        r(all(e >= 0 for e in self.allowed_errors), "allowed_errors", "integers >= 0")
        for field in ("frame_threshold", "onset_threshold", "sustain_threshold"):
            value = getattr(self, field)
            r(value is None or 0 <= value <= 1, field, "None (tuned) or a probability")
        r(
            None in (self.sustain_threshold, self.frame_threshold)
            or self.sustain_threshold <= self.frame_threshold,
            "sustain_threshold",
            "at most frame_threshold (it lets a sounding note go on, never starts one)",
        )
        r(self.onset_tolerance_s > 0, "onset_tolerance_s", "seconds > 0")
        r(
            self.min_note_s is None or self.min_note_s >= 0,
            "min_note_s",
            "None (tuned) or seconds >= 0",
        )
        r(self.gap_join_s >= 0, "gap_join_s", "seconds >= 0")
        r(self.num_piano_rolls >= 0, "num_piano_rolls", "must be >= 0")
        r(self.segment_s is None or self.segment_s > 0, "segment_s", "None or seconds > 0")
        r(0 <= self.segment_overlap < 1, "segment_overlap", "a fraction in [0, 1)")


@dataclasses.dataclass(frozen=True)
class RunConfig(_Section):
    """A whole run's config: top-level fields and the typed sections."""

    SECTION = ""
    seed: int
    model_name: str
    cqt: CqtConfig
    data: DataConfig
    model: ml_collections.FrozenConfigDict  # the model's keyword arguments (checked by it)
    optim: OptimConfig
    augment: AugmentConfig
    eval: EvalConfig
    num_epochs: int
    onset_positive_weight: float
    max_steps: int
    log_every_steps: int
    checkpoint_every_steps: int
    keep_checkpoints: int
    early_stopping_patience: int
    dev_metric: str
    init_from: str

    def __post_init__(self):
        r = self._require
        r(self.num_epochs >= 1, "num_epochs", "must be a positive integer")
        r(self.onset_positive_weight > 0, "onset_positive_weight", "must be positive")
        r(self.log_every_steps >= 1, "log_every_steps", "must be >= 1")
        r(self.checkpoint_every_steps >= 1, "checkpoint_every_steps", "must be >= 1")
        r(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")

    @classmethod
    def of(cls, config) -> "RunConfig":
        """`config` validated and typed; a RunConfig is returned as it is."""
        if isinstance(config, RunConfig):
            return config
        values = dict(config.items())
        sections = {
            "cqt": CqtConfig.from_config,
            "data": DataConfig.from_mapping,
            "optim": OptimConfig.from_mapping,
            "augment": AugmentConfig.from_mapping,
            "eval": EvalConfig.from_mapping,
            "model": lambda m: ml_collections.FrozenConfigDict(dict(m.items())),
        }
        for name, build in sections.items():
            if name not in values:
                raise ValueError(f"config.{name}: missing section")
            values[name] = build(values[name])
        return cls.from_mapping(values)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (as `ConfigDict.to_dict`), for config.json and reports."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            elif isinstance(value, ml_collections.FrozenConfigDict):
                value = value.as_configdict().to_dict()
            out[f.name] = value
        return out
