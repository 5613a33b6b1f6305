"""What a config's data are: validated `config.data`/`config.augment` fields, the `Meta`
(the model-side description of inputs and outputs) they imply, the training window, and
whether two configs give a model the same inputs.

Shared by the builder (records), the reader (pipeline), training, the test action and
transcription; needs no dataset. Must not import model, loop or metric code.
"""

import dataclasses

from jaxnotes import sections
from jaxnotes.data import Meta, features


def load_meta(config) -> Meta:
    """The model-side description of the inputs and outputs; needs no dataset."""
    check(config)
    cqt = features.CqtConfig.from_config(config.cqt)
    d = config.data
    n_pitches = 12 if d.only_note_names else d.max_pitch - d.min_pitch + 1
    return Meta(
        n_bins=cqt.n_bins,
        n_pitches=n_pitches,
        min_pitch=int(d.min_pitch),
        frames_per_second=cqt.frames_per_second,
        only_note_names=bool(d.only_note_names),
        bins_per_semitone=cqt.bins_per_semitone,
    )


INPUT_FIELDS = ("data.min_pitch", "data.max_pitch", "data.only_note_names")


def check_same_inputs(model_config, config, what: str) -> None:
    """Raises ValueError unless `config` computes the features and labels `model_config`
    (the trained model's) does: every config.cqt field and the label range.

    `what` names the model in the message (e.g. 'the model in WORKDIR').
    """
    trained = dataclasses.asdict(features.CqtConfig.from_config(model_config.cqt))
    given = dataclasses.asdict(features.CqtConfig.from_config(config.cqt))
    diffs = [
        f"cqt.{k} {trained[k]!r} (given {given[k]!r})" for k in trained if trained[k] != given[k]
    ]
    for field in INPUT_FIELDS:
        section, name = field.split(".")
        a = getattr(getattr(model_config, section), name)
        b = getattr(getattr(config, section), name)
        if a != b:
            diffs.append(f"{field} {a!r} (given {b!r})")
    if diffs:
        raise ValueError(
            f"{what} was trained with {'; '.join(diffs)}: "
            "use the training run's config.cqt and config.data settings"
        )


def window_frames(config) -> int:
    """Frames in one training window: round(batch_seconds * frames_per_second)."""
    fps = features.CqtConfig.from_config(config.cqt).frames_per_second
    return int(round(config.data.batch_seconds * fps))


def check(config, process_count: int = 1) -> None:
    """Raises ValueError naming the config field whose value cannot work: each field's own
    rules (`sections.DataConfig`, `AugmentConfig`, `CqtConfig`) and those that involve
    several fields or the process count."""
    d = sections.DataConfig.of(config.data)
    sections.AugmentConfig.of(config.augment)
    window = window_frames(config)

    def bad(field, why):
        raise ValueError(f"config.data.{field}={getattr(d, field)!r}: {why}")

    if d.batch_size % process_count:
        bad("batch_size", f"must be a positive multiple of the {process_count} processes")
    if d.eval_batch_size % process_count:
        bad("eval_batch_size", f"must be a positive multiple of the {process_count} processes")
    if not 1 <= window <= d.chunk_frames:
        bad(
            "batch_seconds",
            f"gives windows of {window} frames; need 1..chunk_frames ({d.chunk_frames}): "
            "shorten the window or raise config.data.chunk_frames",
        )
    if (d.batch_size // process_count) % d.windows_per_chunk:
        bad(
            "windows_per_chunk",
            f"must divide the per-process batch ({d.batch_size // process_count})",
        )
