"""Grain pipelines over prepared records: random training windows and ordered eval.

Owns the batches half of the data path: `make_train_iter`, `steps_per_epoch`,
`make_eval_iter`. Opens records read-only through `records` (never builds them).
Batches follow the contract in `jaxnotes/data/__init__.py`. Must not import model,
loop or metric code.
Legend: B batch, T frames, F CQT bins, P pitches (output classes), C chunk frames.

Train: source[process_index::process_count] -> seed -> shuffle -> repeat ->
`windows_per_chunk` random windows of round(batch_seconds * fps) frames inside
one chunk's valid frames (windows never cross chunks; one longer than a short
last chunk is padded, mask 0) -> augmentation drawn per window (whole-semitone
pitch shift moving CQT bins and 128-pitch labels together, optional CQT-only
jitter, gain in dB) -> fold labels to the model's pitches -> batch(batch_size //
process_count) -> IterDataset (optionally grain worker processes). Everything
random derives from `config.data.shuffle_seed` and the element index, so the
iterator is deterministic (with or without workers) and resumes exactly from
`get_state()` (or `grain.checkpoint.CheckpointSave/Restore` under Orbax).

Eval: whole chunks in record order (piece, then start_frame), each process
taking chunks process_index::process_count, batches of eval_batch_size //
process_count; the last batches are padded with silent chunks (piece_id -1,
mask 0) so every process runs the same number of batches and each real frame
has mask 1 exactly once.
"""

import dataclasses
import math

import grain
import numpy as np

from jaxnotes.data import features, records, spec
from jaxnotes.data import labels as labels_lib


def steps_per_epoch(config, split: str = "train") -> int:
    """Steps for one pass over the split's frames in random windows (at least 1)."""
    spec.check(config)
    _, meta = records.open_split(config, split)
    return max(1, meta["num_frames"] // (spec.window_frames(config) * config.data.batch_size))


# Transforms (top-level classes: grain pickles them into worker processes).


def _silence(cqt: features.CqtConfig) -> float:
    """The normalised value of a silent bin (the normalisation's floor)."""
    return features.silence_value(cqt)


@dataclasses.dataclass(frozen=True)
class CropWindows(grain.transforms.RandomMap):
    """`count` random windows of `window` frames inside one chunk's valid frames, stacked."""

    window: int
    count: int = 1

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        high = max(int(record["num_frames"]) - self.window, 0) + 1
        offsets = rng.integers(0, high, size=self.count)
        return _stack([_window(record, int(o), self.window) for o in offsets])


def _stack(examples: list[dict]) -> dict:
    return {key: np.stack([e[key] for e in examples]) for key in examples[0]}


def _window(record: dict, offset: int, window: int) -> dict:
    """Frames [offset, offset + window) of a chunk record as a (128-pitch) example."""
    span = slice(offset, offset + window)
    mask_T = (np.arange(offset, offset + window) < int(record["num_frames"])).astype(np.float32)
    return {
        "cqt": record["cqt"][span].astype(np.float32),
        "frames": record["frames"][span],
        "onsets": record["onsets"][span],
        "mask": mask_T,
        "piece_id": np.int32(record["piece_id"]),
        "start_frame": np.int32(int(record["start_frame"]) + offset),
    }


@dataclasses.dataclass(frozen=True)
class Augment(grain.transforms.RandomMap):
    """Pitch shift (CQT and labels), CQT-only jitter and gain, drawn for each stacked window."""

    shift_semitones: int
    jitter_bins: int
    gain_db: float
    bins_per_semitone: int
    silence: float

    def random_map(self, stacked: dict, rng: np.random.Generator) -> dict:
        out = []
        for i in range(len(stacked["mask"])):
            shift = int(rng.integers(-self.shift_semitones, self.shift_semitones + 1))
            jitter = int(rng.integers(-self.jitter_bins, self.jitter_bins + 1))
            gain = float(rng.uniform(-self.gain_db, self.gain_db)) if self.gain_db else 0.0
            example = {key: value[i] for key, value in stacked.items()}
            out.append(augment(example, shift, jitter, gain, self.bins_per_semitone, self.silence))
        return _stack(out)


def augment(example, shift, jitter, gain_db, bins_per_semitone, silence) -> dict:
    """Shifts pitch by `shift` semitones (labels too), the CQT alone by `jitter` bins more,
    and adds `gain_db`; what moves in from outside is silence / no note."""
    out = dict(example)
    if shift or jitter:
        out["cqt"] = _shift(example["cqt"], shift * bins_per_semitone + jitter, silence)
    if shift:
        out["frames"] = _shift(example["frames"], shift, 0)
        out["onsets"] = _shift(example["onsets"], shift, 0)
    if gain_db:
        # Both normalisations are affine in dB: with 'db' this is a gain of the recording,
        # with 'db_relative' an error of its running reference. Silent bins stay silent
        # (their true level is unknown below the floor), the rest move and are clamped.
        cqt_TxF = out["cqt"]
        moved = np.maximum(cqt_TxF + np.float32(gain_db / features.DB_SCALE), silence)
        out["cqt"] = np.where(cqt_TxF <= silence, np.float32(silence), moved).astype(np.float32)
    return out


def _shift(x_TxK: np.ndarray, k: int, fill) -> np.ndarray:
    """x moved up by k along its last axis (down for k < 0), filled with `fill`."""
    out = np.full_like(x_TxK, fill)
    if k > 0:
        out[..., k:] = x_TxK[..., :-k]
    elif k < 0:
        out[..., :k] = x_TxK[..., -k:]
    else:
        out[:] = x_TxK
    return out


@dataclasses.dataclass(frozen=True)
class FoldLabels(grain.transforms.Map):
    """128-pitch uint8 rolls -> the model's P float32 outputs (range or pitch classes)."""

    min_pitch: int
    max_pitch: int
    only_note_names: bool

    def map(self, example: dict) -> dict:
        out = dict(example)
        for key in ("frames", "onsets"):
            out[key] = labels_lib.fold_pitches(
                example[key], self.min_pitch, self.max_pitch, self.only_note_names
            ).astype(np.float32)
        return out


@dataclasses.dataclass(frozen=True)
class MergeWindows(grain.transforms.Map):
    """(b, windows_per_chunk, ...) batches -> (b * windows_per_chunk, ...)."""

    def map(self, batch: dict) -> dict:
        return {key: value.reshape((-1,) + value.shape[2:]) for key, value in batch.items()}


@dataclasses.dataclass(frozen=True)
class ReadEvalChunk(grain.transforms.Map):
    """Index of an ordered chunk (or -1 for padding) -> a whole-chunk example."""

    source: object
    chunk_frames: int
    n_bins: int
    silence: float

    def map(self, index: int) -> dict:
        if index < 0:
            shape = (self.chunk_frames, labels_lib.NUM_MIDI_PITCHES)
            return {
                "cqt": np.full((self.chunk_frames, self.n_bins), self.silence, np.float32),
                "frames": np.zeros(shape, np.uint8),
                "onsets": np.zeros(shape, np.uint8),
                "mask": np.zeros(self.chunk_frames, np.float32),
                "piece_id": np.int32(-1),
                "start_frame": np.int32(0),
            }
        return _window(self.source[index], 0, self.chunk_frames)


# Iterators.


def _process(process_index, process_count) -> tuple[int, int]:
    import jax

    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    return index, count


def make_train_iter(
    config, split: str = "train", *, process_index=None, process_count=None
) -> grain.DatasetIterator:
    """The endless, shuffled, augmented training iterator of this process.

    Args:
        process_index, process_count: default to JAX's; tests pass them to act
            as one process of several.
    """
    index, count = _process(process_index, process_count)
    spec.check(config, count)
    source, _ = records.open_split(config, split)
    d, a = config.data, config.augment
    cqt = features.CqtConfig.from_config(config.cqt)
    ds = grain.MapDataset.source(source)[index::count]
    if len(ds) == 0:
        raise ValueError(f"split {split!r} has {len(source)} chunks, too few for {count} processes")
    ds = ds.seed(int(d.shuffle_seed)).shuffle().repeat()
    windows = int(d.windows_per_chunk)
    ds = ds.random_map(CropWindows(spec.window_frames(config), windows))
    if a.pitch_shift_semitones or a.pitch_jitter_bins or a.gain_db:
        ds = ds.random_map(
            Augment(
                int(a.pitch_shift_semitones),
                int(a.pitch_jitter_bins),
                float(a.gain_db),
                cqt.bins_per_semitone,
                _silence(cqt),
            )
        )
    ds = ds.map(FoldLabels(int(d.min_pitch), int(d.max_pitch), bool(d.only_note_names)))
    ds = ds.batch(d.batch_size // count // windows, drop_remainder=True).map(MergeWindows())
    iter_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=d.read_threads, prefetch_buffer_size=d.prefetch_batches)
    )
    if d.num_workers > 0:
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=d.num_workers))
    return iter(iter_ds)


def make_eval_iter(config, split: str, *, process_index=None, process_count=None):
    """Whole chunks of `split` in order, padded batches with `mask` (see module docstring)."""
    index, count = _process(process_index, process_count)
    spec.check(config, count)
    source, _ = records.open_split(config, split)
    d = config.data
    cqt = features.CqtConfig.from_config(config.cqt)
    per_batch = d.eval_batch_size // count
    num_batches = math.ceil(math.ceil(len(source) / count) / per_batch)
    indices = list(range(index, len(source), count))
    indices += [-1] * (num_batches * per_batch - len(indices))
    ds = grain.MapDataset.source(indices).map(
        ReadEvalChunk(source, int(d.chunk_frames), cqt.n_bins, _silence(cqt))
    )
    ds = ds.map(FoldLabels(int(d.min_pitch), int(d.max_pitch), bool(d.only_note_names)))
    ds = ds.batch(per_batch, drop_remainder=True)
    return iter(
        ds.to_iter_dataset(
            grain.ReadOptions(num_threads=d.read_threads, prefetch_buffer_size=d.prefetch_batches)
        )
    )
