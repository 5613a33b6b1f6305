"""TFDS builder `musicnet_cqt`: a MusicNet-layout folder as CQT chunk records.

Owns the offline half of the data pipeline: reading recordings and labels,
computing the CQT once, and writing fixed-length chunks as ArrayRecord (no
TensorFlow: built with `download_and_prepare`, read with `as_data_source` or
`tfds.builder_from_directory`). Must not import model, loop or metric code.
Legend: S audio samples, T frames, F CQT bins, N notes.

Parts. One builder config holds one *part* of the source folder: the `train`
part (from `train_data/`) has the splits `train` and `validation` (whole
recordings held out with `musicnet.split_train_validation`, never from test),
the `test` part (from `test_data/`) has `test`. `--action=process-train` builds
the train part and `--action=process-test` the test part, independently.

Naming. The config name encodes every parameter that changes records: the part,
`CqtConfig.abbrev()`, `chunk_frames`, the label format and, for the train part,
the validation choice (fraction and seed, or a hash of the explicit ids). The
data_dir is specific to the source folder, `<cache_dir>/tfds/<slug>-<hash of its
absolute path>`, and the dataset stores a fingerprint (names, sizes, mtimes) of
the files it was built from: a changed file triggers a rebuild by the process
actions (`records.ensure_dataset`; readers never rebuild), so a stale dataset is
never silently reused by a new run (if the source folder is gone, e.g. a cache
copied to a training machine, the finished dataset is used with a warning). A
change to how features or rolls are computed must bump `DATASET_VERSION`.
Model-side choices (pitch range, pitch classes, window length, augmentation)
are applied when reading, never stored. Builders of one dataset are not
coordinated across processes: on several hosts, run the process actions first.

Records (one per chunk of `chunk_frames` frames; the last chunk of a piece is
padded, CQT with the silence value and labels with zeros):
  cqt          chunk x F    float16  normalised CQT (features.compute_cqt)
  frames       chunk x 128  uint8    all MIDI pitches (labels.notes_to_rolls)
  onsets       chunk x 128  uint8
  instruments  128          uint8    index p-1 is 1 when GM program p sounds in the chunk
  piece_id, start_frame, num_frames  int32 (num_frames: valid frames of the chunk)
Records are written in order (piece name, then start_frame): record i of a
split is its i-th chunk, so evaluation reads them sequentially.
Per-piece info (name, num_frames, seconds, composer, ensemble, notes as
[start_s, end_s, pitch, program] rows) is in the dataset's metadata.json.

Bad input policy. Every recording's audio header and labels are checked before
any CQT is computed, so most problems fail in seconds. A corrupt, empty or
truncated audio file, a missing or malformed label file or row, or a note that
starts more than 1 s after the audio ends raises an error naming the file (and
row); the build stops and TFDS's temporary folder is deleted, so nothing
half-written is left or used (a killed process leaves an `incomplete.*` folder
that is never read and is removed by the next build). Tolerated and logged with
the file: note ends past the audio (clipped), notes starting less than 1 s
after it (dropped), pitches outside [min_pitch, max_pitch] (kept: records hold
all 128 pitches), audio whose Nyquist frequency is below the top CQT bin (a
warning: those bins are empty). Counts are stored in metadata['stats']. A
missing folder raises `musicnet.LayoutError`.
"""

import dataclasses
import hashlib
import os
import time

import numpy as np
import tensorflow_datasets as tfds
import tqdm
from absl import logging

from jaxnotes.data import NUM_MIDI_PITCHES, audio, features, musicnet
from jaxnotes.data import labels as labels_lib

NAME = "musicnet_cqt"
DATASET_VERSION = "1.0.0"
PARTS = ("train", "test")
PART_SPLITS = {"train": ("train", "validation"), "test": ("test",)}
# Bumped when metadata.json changes meaning; readers check it.
METADATA_FORMAT = 1


@dataclasses.dataclass(eq=False)
class MusicnetCqtConfig(tfds.core.BuilderConfig):
    """Everything that changes records; `name` is derived from it (see `builder_config`)."""

    cqt: features.CqtConfig = dataclasses.field(default_factory=features.CqtConfig)
    chunk_frames: int = 512
    part: str = "train"
    validation_fraction: float = 0.1
    validation_ids: tuple = ()
    split_seed: int = 0
    label_format: str = "auto"


def _num_tag(value: float) -> str:
    return f"{value:g}".replace(".", "p").replace("-", "m")


def config_name(cfg: MusicnetCqtConfig) -> str:
    """The builder-config name: readable, and different whenever records would differ."""
    name = f"{cfg.part}_{cfg.cqt.abbrev()}_chunk{cfg.chunk_frames}_labels{cfg.label_format}"
    if cfg.part == "train":
        if cfg.validation_ids:
            ids = ",".join(sorted(str(v) for v in cfg.validation_ids))
            name += f"_valids{hashlib.sha1(ids.encode()).hexdigest()[:8]}"
        else:
            name += f"_valfrac{_num_tag(cfg.validation_fraction)}_seed{cfg.split_seed}"
    return name


def builder_config(config, part: str) -> MusicnetCqtConfig:
    """The builder config of `part` ('train' or 'test') for a jaxnotes config."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    d = config.data
    if int(d.chunk_frames) <= 0:
        raise ValueError(f"config.data.chunk_frames={d.chunk_frames}: must be positive")
    cfg = MusicnetCqtConfig(
        name="unnamed",
        version=DATASET_VERSION,
        cqt=features.CqtConfig.from_config(config.cqt),
        chunk_frames=int(d.chunk_frames),
        part=part,
        validation_fraction=float(d.validation_fraction),
        validation_ids=tuple(str(v) for v in d.validation_ids),
        split_seed=int(d.split_seed),
        label_format=str(d.label_format),
    )
    cfg.name = config_name(cfg)
    return cfg


def source_fingerprint(recordings: list[musicnet.Recording], source_dir: str) -> str:
    """A hash of the names, sizes and mtimes of the files a part is built from."""
    paths = [p for r in recordings for p in (r.audio_path, r.labels_path)]
    paths.append(os.path.join(source_dir, musicnet.METADATA_FILE))
    h = hashlib.sha1()
    for path in paths:
        st = os.stat(path) if os.path.exists(path) else None
        entry = (os.path.relpath(path, source_dir), st and st.st_size, st and st.st_mtime_ns)
        h.update(repr(entry).encode())
    return h.hexdigest()


@dataclasses.dataclass
class _Checked:
    """A recording whose audio header and labels passed the checks."""

    recording: musicnet.Recording
    notes: list
    seconds: float


class _LocalInfo(tfds.core.DatasetInfo):
    """DatasetInfo of a dataset that is never on TFDS's GCS bucket: skips the bucket lookup,
    which leaves an empty /tmp/tmp*tfds folder behind on every build."""

    def initialize_from_bucket(self) -> None:
        pass


class MusicnetCqt(tfds.core.GeneratorBasedBuilder):
    """CQT chunks of a MusicNet-layout folder (see the module docstring)."""

    VERSION = tfds.core.Version(DATASET_VERSION)
    RELEASE_NOTES = {
        DATASET_VERSION: "Fixed-length CQT chunks with 128-pitch frame and onset rolls."
    }

    def __init__(
        self,
        *,
        config: MusicnetCqtConfig,
        musicnet_dir: str = "",
        pitch_range: tuple[int, int] = (21, 108),
        **kwargs,
    ):
        """Args: musicnet_dir is the source folder; pitch_range only sets what is reported."""
        self._musicnet_dir = musicnet_dir
        self._pitch_range = pitch_range
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        chunk, n_bins = cfg.chunk_frames, cfg.cqt.n_bins
        # BYTES encoding: raw buffers decode ~6x faster than ZLIB, and ArrayRecord
        # compresses the mostly-zero label rolls on its own.
        enc = tfds.features.Encoding.BYTES
        roll = tfds.features.Tensor(shape=(chunk, NUM_MIDI_PITCHES), dtype=np.uint8, encoding=enc)
        return _LocalInfo(
            builder=self,
            description="CQT chunks and 128-pitch piano rolls of a MusicNet-layout folder.",
            features=tfds.features.FeaturesDict(
                {
                    "cqt": tfds.features.Tensor(
                        shape=(chunk, n_bins), dtype=np.float16, encoding=enc
                    ),
                    "frames": roll,
                    "onsets": roll,
                    "instruments": tfds.features.Tensor(
                        shape=(NUM_MIDI_PITCHES,), dtype=np.uint8, encoding=enc
                    ),
                    "piece_id": tfds.features.Scalar(dtype=np.int32),
                    "start_frame": tfds.features.Scalar(dtype=np.int32),
                    "num_frames": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            # Keys are running chunk indices: records stay in piece order.
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
            homepage="https://zenodo.org/records/5120004",
            citation="Thickstun, Harchaoui, Kakade. Learning Features of Music from Scratch. ICLR 2017.",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # reads a local folder; nothing to download
        cfg = self.builder_config
        source = os.path.realpath(os.path.expanduser(self._musicnet_dir))
        recordings = musicnet.list_recordings(source, cfg.part, cfg.label_format)
        if cfg.part == "train":
            train, val = musicnet.split_train_validation(
                recordings, cfg.validation_fraction, cfg.validation_ids, cfg.split_seed
            )
            by_split = {"train": train, "validation": val}
        else:
            by_split = {"test": recordings}
        self._stats = dict.fromkeys(
            ["clipped_notes", "dropped_notes", "out_of_range_notes", "low_rate_files"], 0
        )
        checked = {s: [self._check(r) for r in recs] for s, recs in by_split.items()}
        meta = self.info.metadata
        meta.update(
            format=METADATA_FORMAT,
            source_dir=source,
            source_fingerprint=source_fingerprint(recordings, source),
            part=cfg.part,
            cqt=dataclasses.asdict(cfg.cqt),
            chunk_frames=cfg.chunk_frames,
            splits={},
            stats=self._stats,
        )
        self._composers = musicnet.read_metadata(source)
        # TFDS refuses empty splits; a validation fraction of 0 just has no validation split.
        return {s: self._generate_examples(s, recs) for s, recs in checked.items() if recs}

    def _check(self, rec: musicnet.Recording) -> _Checked:
        """Audio header and labels of one recording; raises on what cannot be trusted."""
        audio.check_wav_complete(rec.audio_path)
        sample_rate, num_samples = audio.audio_info(rec.audio_path)
        if num_samples <= 0:
            raise audio.AudioError(f"{rec.audio_path}: the file holds no audio samples")
        seconds = num_samples / sample_rate
        # CSV sample indices are at the wav's own rate, whatever rate the CQT uses.
        notes = rec.read_notes(sample_rate)
        kept, clipped = labels_lib.check_against_duration(notes, seconds, rec.labels_path)
        dropped = len(notes) - len(kept)
        if clipped:
            logging.warning(
                "%s: %d notes end (or %d start, dropped) after the %.2f s audio ends; clipped",
                rec.labels_path,
                clipped - dropped,
                dropped,
                seconds,
            )
        lo, hi = self._pitch_range
        outside = sum(1 for n in kept if not lo <= n.pitch <= hi)
        if outside:
            logging.info(
                "%s: %d notes outside MIDI %d..%d (kept: records hold all 128 pitches)",
                rec.labels_path,
                outside,
                lo,
                hi,
            )
        cqt = self.builder_config.cqt
        if sample_rate / 2 <= cqt.fmax_hz:
            logging.warning(
                "%s: sampled at %d Hz, so nothing above %.0f Hz; the top CQT bins (up to %.0f Hz)"
                " will be empty",
                rec.audio_path,
                sample_rate,
                sample_rate / 2,
                cqt.fmax_hz,
            )
            self._stats["low_rate_files"] += 1
        self._stats["clipped_notes"] += clipped - dropped
        self._stats["dropped_notes"] += dropped
        self._stats["out_of_range_notes"] += outside
        return _Checked(rec, kept, seconds)

    def _generate_examples(self, split: str, checked: list[_Checked]):
        cfg = self.builder_config
        cqt, chunk = cfg.cqt, cfg.chunk_frames
        fps = cqt.frames_per_second
        pieces, key, total_frames, audio_s = [], 0, 0, 0.0
        start_time = time.perf_counter()
        silence = features.silence_value(cqt)
        bar = tqdm.tqdm(checked, desc=f"{NAME} {cfg.part}/{split}", unit="rec")
        for item in bar:
            rec = item.recording
            cqt_TxF = features.compute_cqt(audio.load_audio(rec.audio_path, cqt.sr), cqt)
            num_frames = cqt_TxF.shape[0]
            frames_Tx128, onsets_Tx128 = labels_lib.notes_to_rolls(item.notes, num_frames, fps)
            instruments_Cx128 = _instruments_per_chunk(item.notes, num_frames, chunk, fps)
            for c, start in enumerate(range(0, num_frames, chunk)):
                valid = min(chunk, num_frames - start)
                yield (
                    key,
                    {
                        "cqt": _pad(cqt_TxF[start : start + valid], chunk, silence, np.float16),
                        "frames": _pad(frames_Tx128[start : start + valid], chunk, 0, np.uint8),
                        "onsets": _pad(onsets_Tx128[start : start + valid], chunk, 0, np.uint8),
                        "instruments": instruments_Cx128[c],
                        "piece_id": np.int32(rec.piece_id),
                        "start_frame": np.int32(start),
                        "num_frames": np.int32(valid),
                    },
                )
                key += 1
            row = self._composers.get(rec.name, {})
            pieces.append(
                {
                    "piece_id": int(rec.piece_id),
                    "name": rec.name,
                    "num_frames": int(num_frames),
                    "seconds": float(item.seconds),
                    "composer": row.get("composer", ""),
                    "ensemble": row.get("ensemble", ""),
                    "title": _title(row),
                    "notes": [
                        [float(n.start_s), float(n.end_s), int(n.pitch), int(n.program)]
                        for n in item.notes
                    ],
                }
            )
            total_frames += num_frames
            audio_s += item.seconds
            elapsed = time.perf_counter() - start_time
            bar.set_postfix_str(f"{audio_s / max(elapsed, 1e-9):.0f}x real time")
        elapsed = time.perf_counter() - start_time
        logging.info(
            "%s %s/%s: %d recordings, %.1f s of audio, %d chunks in %.1f s (%.0fx real time)",
            NAME,
            cfg.part,
            split,
            len(checked),
            audio_s,
            key,
            elapsed,
            audio_s / max(elapsed, 1e-9),
        )
        self.info.metadata["splits"][split] = {
            "num_chunks": key,
            "num_frames": total_frames,
            "seconds": audio_s,
            "process_seconds": elapsed,
            "pieces": pieces,
        }


def _pad(x_TxK: np.ndarray, length: int, value, dtype) -> np.ndarray:
    out = np.full((length,) + x_TxK.shape[1:], value, dtype)
    out[: len(x_TxK)] = x_TxK
    return out


def _instruments_per_chunk(notes, num_frames: int, chunk: int, fps: float) -> np.ndarray:
    """Multi-hot GM programs (index program-1) sounding in each chunk."""
    num_chunks = -(-num_frames // chunk)
    out_Cx128 = np.zeros((num_chunks, NUM_MIDI_PITCHES), np.uint8)
    for n in notes:
        # The same frame span as labels.notes_to_rolls: [round(start), max(round(end), start+1)).
        start = int(labels_lib.frame_of(n.start_s, fps))
        end = min(max(int(labels_lib.frame_of(n.end_s, fps)), start + 1), num_frames)
        if start < num_frames:
            out_Cx128[start // chunk : (end - 1) // chunk + 1, n.program - 1] = 1
    return out_Cx128


def _title(row: dict) -> str:
    """'Composer composition, movement (ensemble)' from a metadata row; '' if none."""
    parts = [row.get("composer", ""), row.get("composition", "")]
    title = " ".join(p for p in parts if p)
    if row.get("movement"):
        title += f", {row['movement']}"
    if row.get("ensemble"):
        title += f" ({row['ensemble']})"
    return title.strip(", ")
