"""Grain pipelines over prepared records: random training windows and ordered eval.

Owns the batches half of the data path: `make_train_iter`, `steps_per_epoch`,
`make_eval_iter`. Opens records read-only through `records` (never builds them).
Batches follow the contract in `jaxnotes/data/__init__.py`. Must not import model,
loop or metric code.
Legend: B batch, T frames, F CQT bins, P pitches (output classes), C chunk frames.

Train: source (the chunks `config.data.train_exclude` keeps: `selection`; with
`config.data.extra_train_sizes`, those of each corpus size in turn, one list)
[process_index::process_count] -> seed -> shuffle -> repeat ->
`windows_per_chunk` random windows of round(batch_seconds * fps) frames inside
one chunk's valid frames (windows never cross chunks; one longer than a short
last chunk is padded, mask 0) -> augmentation drawn per window (whole-semitone
pitch shift moving CQT bins and 128-pitch labels together, optional CQT-only
jitter, gain in dB, equaliser control points) -> batch(batch_size // process_count) -> per batch, at once:
augmentation applied, CQT to float32, labels folded to the model's pitches ->
IterDataset (optionally grain worker processes). Everything random derives from
`config.data.shuffle_seed` and the element index, so the iterator is deterministic
(with or without workers) and resumes exactly from `get_state()` (or
`grain.checkpoint.CheckpointSave/Restore` under Orbax).

Cost: reading a chunk (zstd, half a MB) dominates, so `windows_per_chunk` > 1 is the
big lever; the rest is kept small: records are read as views of their bytes
(`chunks.ChunkSource`, no TFDS decoding copy), windows stay float16 / uint8 and hold only
the label columns a shift can reach until their batch is converted in one pass.

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

from jaxnotes.data import augment, chunks, features, records, selection, spec
from jaxnotes.data import labels as labels_lib


def steps_per_epoch(config, split: str = "train") -> int:
    """Steps for one pass over the split's frames (those training reads: see
    `config.data.train_exclude` and `extra_train_sizes`) in random windows (at least 1)."""
    spec.check(config)
    frames = 0
    for take in _takes(config, split):
        _, meta = records.open_split(take, split)
        if split == "train" and take.data.train_exclude:
            frames += selection.kept_frames(meta, _excluded(take))
        else:
            frames += meta["num_frames"]
    return max(1, frames // (spec.window_frames(config) * config.data.batch_size))


def _takes(config, split: str) -> list:
    """The configs whose `split` training reads: this one, and for 'train' each of
    `config.data.extra_train_sizes`."""
    return [config] + (records.extra_train_configs(config) if split == "train" else [])


def _excluded(config) -> set[int]:
    return selection.excluded_ids(records.source_dir(config), config.data.train_exclude)


# Transforms (top-level classes: grain pickles them into worker processes).


def _silence(cqt: features.CqtConfig) -> float:
    """The normalised value of a silent bin (the normalisation's floor)."""
    return features.silence_value(cqt)


@dataclasses.dataclass(frozen=True)
class CropWindows(grain.transforms.RandomMap):
    """`count` random windows of `window` frames inside one chunk's valid frames, stacked.

    Arrays keep the records' dtypes (float16 CQT, uint8 rolls) and the labels only the
    128-pitch columns `label_lo..label_hi` (the model's pitches widened by the largest
    pitch shift): `FinishBatch` converts each batch once.
    """

    window: int
    count: int = 1
    label_lo: int = 0
    label_hi: int = labels_lib.NUM_MIDI_PITCHES - 1

    def random_map(self, record: dict, rng: np.random.Generator) -> dict:
        num_frames = int(record["num_frames"])
        high = max(num_frames - self.window, 0) + 1
        offsets_W = rng.integers(0, high, size=self.count)
        frames_WxT = offsets_W[:, None] + np.arange(self.window)
        if self.count == 1:  # a slice copy is cheaper than fancy indexing
            rows = slice(int(offsets_W[0]), int(offsets_W[0]) + self.window)
            take = lambda x: x[None, rows].copy()  # noqa: E731
        else:
            take = lambda x: x[frames_WxT]  # noqa: E731
        # Copies, never views: the record (half a MB) is freed now rather than when its
        # batch is stacked, so the allocator reuses its memory instead of faulting in
        # fresh pages for every batch (views: 3.5x the page faults, measured on a VM).
        columns = slice(self.label_lo, self.label_hi + 1)
        return {
            "cqt": take(record["cqt"]),
            "frames": take(record["frames"][:, columns]),
            "onsets": take(record["onsets"][:, columns]),
            "mask": (frames_WxT < num_frames).astype(np.float32),
            "piece_id": np.full(self.count, record["piece_id"], np.int32),
            "start_frame": (int(record["start_frame"]) + offsets_W).astype(np.int32),
        }


def _window(record: dict, offset: int, window: int) -> dict:
    """Frames [offset, offset + window) of a chunk record as a (128-pitch) example."""
    span = slice(offset, offset + window)
    mask_T = (np.arange(offset, offset + window) < int(record["num_frames"])).astype(np.float32)
    return {
        "cqt": augment.to_float32(record["cqt"][span]),
        "frames": record["frames"][span],
        "onsets": record["onsets"][span],
        "mask": mask_T,
        "piece_id": np.int32(record["piece_id"]),
        "start_frame": np.int32(int(record["start_frame"]) + offset),
    }


# Augmentation parameters, drawn per window by `DrawAugment`, applied per batch.
AUGMENT_KEYS = ("aug_shift", "aug_jitter", "aug_gain_db", "aug_eq_db")


@dataclasses.dataclass(frozen=True)
class DrawAugment(grain.transforms.RandomMap):
    """Draws each stacked window's pitch shift, CQT-only jitter, gain and equaliser control
    points (`AUGMENT_KEYS`); `FinishBatch` applies them to the whole batch at once."""

    shift_semitones: int
    jitter_bins: int
    gain_db: float
    eq_db: float = 0.0
    eq_points: int = 2  # equaliser control points from the lowest bin to the highest

    def random_map(self, stacked: dict, rng: np.random.Generator) -> dict:
        draws = []
        for _ in range(len(stacked["mask"])):  # per window, in this order: the seed's draws
            shift = int(rng.integers(-self.shift_semitones, self.shift_semitones + 1))
            jitter = int(rng.integers(-self.jitter_bins, self.jitter_bins + 1))
            gain = float(rng.uniform(-self.gain_db, self.gain_db)) if self.gain_db else 0.0
            eq_C = np.zeros(self.eq_points)
            if self.eq_db:  # drawn only when on: recipes without it keep their draws
                eq_C = rng.uniform(-self.eq_db, self.eq_db, self.eq_points)
            draws.append((shift, jitter, gain, eq_C))
        shift_W, jitter_W, gain_W, eq_W = zip(*draws, strict=True)
        out = dict(stacked)
        out["aug_shift"] = np.array(shift_W, np.int32)
        out["aug_jitter"] = np.array(jitter_W, np.int32)
        out["aug_gain_db"] = np.array(gain_W, np.float64)
        out["aug_eq_db"] = np.stack(eq_W)
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
class FinishBatch(grain.transforms.Map):
    """Batches of `CropWindows` (+ `DrawAugment`) elements -> contract batches, once per
    batch: (b, windows_per_chunk, ...) merged to (B, ...), augmentation applied, the
    CQT converted to float32 and the labels (128-pitch columns `label_lo`..) folded."""

    bins_per_semitone: int
    silence: float
    label_lo: int
    min_pitch: int
    max_pitch: int
    only_note_names: bool

    def map(self, batch: dict) -> dict:
        out = {key: value.reshape((-1,) + value.shape[2:]) for key, value in batch.items()}
        if "aug_shift" in out:
            shift_B, jitter_B, gain_db_B, eq_db_BxC = (out.pop(key) for key in AUGMENT_KEYS)
            out = augment.augment_batch(
                out,
                shift_B,
                jitter_B,
                gain_db_B,
                self.bins_per_semitone,
                self.silence,
                eq_db_BxC=eq_db_BxC if eq_db_BxC.any() else None,
            )
        else:
            out["cqt"] = augment.to_float32(out["cqt"])
        lo, hi = self.min_pitch - self.label_lo, self.max_pitch - self.label_lo
        for key in ("frames", "onsets"):
            out[key] = labels_lib.fold_pitches(out[key], lo, hi, self.only_note_names).astype(
                np.float32
            )
        return out


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


def train_batches(config, split: str, index: int, count: int) -> grain.MapDataset:
    """The endless batches of `make_train_iter` for process `index` of `count`, as a
    MapDataset: batch i on demand in the calling thread (the iterator reads ahead with
    threads or worker processes)."""
    spec.check(config, count)
    d, a = config.data, config.augment
    cqt = features.CqtConfig.from_config(config.cqt)
    sources = []
    for take in _takes(config, split):
        source, meta = records.open_split(take, split)
        source = chunks.ChunkSource(source)
        if split == "train" and d.train_exclude:
            kept = selection.kept_chunks(meta, _excluded(take), int(d.chunk_frames))
            source = selection.Subset(source, kept)
        sources.append(source)
    source = sources[0] if len(sources) == 1 else selection.Concat(sources)
    if len(source) == 0 and split == "train" and d.train_exclude:
        raise ValueError(f"{selection.FIELD}={d.train_exclude}: leaves no train recording")
    ds = grain.MapDataset.source(source)[index::count]
    if len(ds) == 0:
        raise ValueError(f"split {split!r} has {len(source)} chunks, too few for {count} processes")
    ds = ds.seed(int(d.shuffle_seed)).shuffle().repeat()
    windows = int(d.windows_per_chunk)
    # The 128-pitch label columns a batch needs: the model's pitches, widened by the
    # largest shift (what moves in from further out is 'no note' either way).
    shift = int(a.pitch_shift_semitones)
    lo, hi = max(int(d.min_pitch) - shift, 0), min(int(d.max_pitch) + shift, 127)
    if d.only_note_names:  # pitch classes fold all 128 pitches
        lo, hi = 0, labels_lib.NUM_MIDI_PITCHES - 1
    ds = ds.random_map(CropWindows(spec.window_frames(config), windows, lo, hi))
    if a.pitch_shift_semitones or a.pitch_jitter_bins or a.gain_db or a.eq_db:
        ds = ds.random_map(
            DrawAugment(
                shift,
                int(a.pitch_jitter_bins),
                float(a.gain_db),
                float(a.eq_db),
                cqt.n_octaves + 1,  # one equaliser control point an octave
            )
        )
    ds = ds.batch(d.batch_size // count // windows, drop_remainder=True)
    ds = ds.map(
        FinishBatch(
            cqt.bins_per_semitone,
            _silence(cqt),
            lo,
            int(d.min_pitch),
            int(d.max_pitch),
            bool(d.only_note_names),
        )
    )
    return ds


def make_train_iter(
    config, split: str = "train", *, process_index=None, process_count=None
) -> grain.DatasetIterator:
    """The endless, shuffled, augmented training iterator of this process.

    Args:
        process_index, process_count: default to JAX's; tests pass them to act
            as one process of several.
    """
    index, count = _process(process_index, process_count)
    ds = train_batches(config, split, index, count)
    d = config.data
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
        ReadEvalChunk(chunks.ChunkSource(source), int(d.chunk_frames), cqt.n_bins, _silence(cqt))
    )
    ds = ds.map(FoldLabels(int(d.min_pitch), int(d.max_pitch), bool(d.only_note_names)))
    ds = ds.batch(per_batch, drop_remainder=True)
    return iter(
        ds.to_iter_dataset(
            grain.ReadOptions(num_threads=d.read_threads, prefetch_buffer_size=d.prefetch_batches)
        )
    )
