"""Prepared datasets on disk: where the records of a config live, building them (the
process-* actions only), and opening them read-only.

A source folder (MusicNet layout: config.data.musicnet_dir, or the default corpus) has
two parts, each a TFDS dataset built by `musicnet_cqt`: `train` (splits train and
validation) and `test`. They live in `<cache_dir>/tfds/<slug>-<hash of the source path>/`,
named by every setting that changes records (`musicnet_cqt.config_name`), and store a
fingerprint of the files they were built from. Only `ensure_dataset` builds or rebuilds
(a changed source file triggers a rebuild there); readers (`open_split`, `piece_info`)
never build, render or delete, and fail with `DatasetNotPreparedError` naming the action
to run. Must not import model, loop or metric code.
"""

import dataclasses
import functools
import glob
import hashlib
import json
import os
import re
import shutil

import tensorflow_datasets as tfds
from absl import logging

from jaxnotes.data import labels as labels_lib
from jaxnotes.data import musicnet, musicnet_cqt, spec

SPLITS = ("train", "validation", "test")
# The builder part holding each split (see musicnet_cqt's module docstring).
PART_OF_SPLIT = {"train": "train", "validation": "train", "test": "test"}


@dataclasses.dataclass(frozen=True)
class PieceInfo:
    """A whole recording, for note-level metrics, stitching and MIDI output."""

    piece_id: int
    name: str
    num_frames: int
    seconds: float
    notes: list  # labels.Note, clipped to the audio, all 128 pitches
    composer: str = ""
    ensemble: str = ""
    title: str = ""  # 'Composer composition, movement (ensemble)' from the metadata


# Datasets on disk.


class DatasetNotPreparedError(ValueError):
    """The records a reader needs were never built with these settings."""


def source_dir(config) -> str:
    """The MusicNet-layout folder of the data: config.data.musicnet_dir or the default
    corpus (its folder, rendered or not: only `ensure_dataset` renders)."""
    if config.data.musicnet_dir:
        return os.path.realpath(os.path.expanduser(config.data.musicnet_dir))
    from jaxnotes.data.corpus import build as corpus

    return corpus.corpus_root(config.data)


def extra_train_configs(config) -> list:
    """A config for each of `config.data.extra_train_sizes`: the same run on that corpus
    size alone, whose train split training also reads (`pipeline.train_batches`)."""
    extra = tuple(config.data.extra_train_sizes)
    if not extra:
        return []
    if config.data.musicnet_dir:  # scoring such a run on a folder never gets here
        raise ValueError(
            f"config.data.extra_train_sizes={extra!r}: sizes of the default corpus, but "
            f"config.data.musicnet_dir={config.data.musicnet_dir!r} is set"
        )
    from jaxnotes import sections

    run = sections.RunConfig.of(config)
    return [
        dataclasses.replace(
            run, data=dataclasses.replace(run.data, corpus_size=size, extra_train_sizes=())
        )
        for size in extra
    ]


def ensure_dataset(config, splits=("train", "test")) -> dict[str, str]:
    """Builds the parts holding `splits` unless up to date; returns {part: dataset folder}.

    The only builder: the process-train and process-test actions call it (rendering the
    default corpus first if needed); readers open what it built, read-only (`dataset_dir`).
    `splits` may name splits ('train', 'validation', 'test') or parts ('train',
    'test'): 'train' and 'validation' live in the train part.
    """
    import jax  # deferred: building a dataset must not initialise a backend needlessly

    if isinstance(splits, str):
        splits = (splits,)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; expected some of {SPLITS}")
    spec.check(config)
    # Other corpus sizes training reads (their train parts), checked before any rendering.
    reads_train = any(PART_OF_SPLIT[s] == "train" for s in splits)
    extras = extra_train_configs(config) if reads_train else []
    if extras:
        from jaxnotes.data.corpus.sizes import SIZES

        unknown = [e.data.corpus_size for e in extras if e.data.corpus_size not in SIZES]
        if unknown:
            raise ValueError(
                f"config.data.extra_train_sizes: unknown sizes {unknown}; expected some of "
                f"{tuple(SIZES)}"
            )
    source = source_dir(config)
    if not config.data.musicnet_dir:
        from jaxnotes.data.corpus import build as corpus  # deferred: rendering needs music21

        source = corpus.ensure_corpus(config.data)
    paths = {}
    for part in musicnet_cqt.PARTS:
        if any(PART_OF_SPLIT[s] == part for s in splits):
            paths[part] = prepare(
                musicnet_cqt.builder_config(config, part),
                source,
                config.data.cache_dir,
                pitch_range=(config.data.min_pitch, config.data.max_pitch),
                single_writer=jax.process_count() == 1,
            )
    for extra in extras:
        ensure_dataset(extra, ("train",))
    return paths


def dataset_dir(config, part: str) -> str:
    """The folder of `part`'s finished records ('train' or 'test'), never building it.

    Raises:
        DatasetNotPreparedError: not built with these settings; names the action to run.
    """
    source = source_dir(config)
    cfg = musicnet_cqt.builder_config(config, part)
    path = dataset_path(source_data_dir(config.data.cache_dir, source), cfg)
    if not os.path.exists(os.path.join(path, "dataset_info.json")):
        raise DatasetNotPreparedError(
            f"no {part} records of {source} with these config.cqt/config.data settings "
            f"(looked in {path}): run --action=process-{part} first with the same config"
        )
    return path


@functools.lru_cache(maxsize=16)
def _data_source(path: str, split: str, stamp: int):
    import tensorflow_datasets as tfds

    del stamp  # part of the cache key only

    return tfds.builder_from_directory(path).as_data_source(split)


def open_split(config, split: str):
    """(data source, split metadata) of a split's finished records (read-only)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec.check(config)
    path = dataset_dir(config, PART_OF_SPLIT[split])
    splits = read_metadata(path)["splits"]
    if split not in splits:
        raise ValueError(
            f"{path} has no {split!r} split (config.data.validation_fraction="
            f"{config.data.validation_fraction}, validation_ids={config.data.validation_ids})"
        )
    return _data_source(path, split, build_stamp(path)), splits[split]


def piece_info(config, split: str) -> dict[int, PieceInfo]:
    """Every piece of a split by piece_id, with its notes (seconds, MIDI pitch, GM program)."""
    _, meta = open_split(config, split)
    return {
        p["piece_id"]: PieceInfo(
            piece_id=p["piece_id"],
            name=p["name"],
            num_frames=p["num_frames"],
            seconds=p["seconds"],
            notes=[labels_lib.Note(s, e, int(k), int(prog)) for s, e, k, prog in p["notes"]],
            composer=p.get("composer", ""),
            ensemble=p.get("ensemble", ""),
            title=p.get("title", ""),
        )
        for p in meta["pieces"]
    }


def source_data_dir(cache_dir: str, source_dir: str) -> str:
    """TFDS data_dir for one source folder: `<cache_dir>/tfds/<slug>-<hash of its path>`."""
    source = os.path.realpath(os.path.expanduser(source_dir))
    slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(source).lower()).strip("_") or "root"
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    return os.path.join(os.path.expanduser(cache_dir), "tfds", f"{slug[:40]}-{digest}")


def dataset_path(data_dir: str, cfg: musicnet_cqt.MusicnetCqtConfig) -> str:
    """Folder of a finished dataset (it holds dataset_info.json when complete)."""
    return os.path.join(data_dir, musicnet_cqt.NAME, cfg.name, musicnet_cqt.DATASET_VERSION)


def build_stamp(path: str) -> int:
    """Changes whenever the dataset at `path` is rebuilt in place (keys the caches below)."""
    return os.stat(os.path.join(path, "dataset_info.json")).st_mtime_ns


def read_metadata(path: str) -> dict:
    """A finished dataset's metadata.json (pieces, notes, splits), cached per build.

    Raises:
        ValueError: unreadable, or of another format (names the folder and what to do).
    """
    return _cached_metadata(path, build_stamp(path))


@functools.lru_cache(maxsize=16)
def _cached_metadata(path: str, stamp: int) -> dict:
    del stamp  # part of the cache key only
    file = os.path.join(path, "metadata.json")
    try:
        with open(file) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{file}: unreadable ({e}); rebuild with the process-* actions") from e
    if meta.get("format") != musicnet_cqt.METADATA_FORMAT:
        raise ValueError(f"{path}: metadata format {meta.get('format')}; rebuild the dataset")
    return meta


def _built_fingerprint(path: str) -> str | None:
    """The source fingerprint a finished dataset was built from; None if unreadable."""
    try:
        return read_metadata(path).get("source_fingerprint")
    except ValueError:
        return None  # stale or damaged metadata: rebuild


def prepare(
    cfg: musicnet_cqt.MusicnetCqtConfig,
    musicnet_dir: str,
    cache_dir: str,
    pitch_range: tuple[int, int] = (21, 108),
    single_writer: bool = True,
) -> str:
    """Builds the dataset of `cfg` from `musicnet_dir` unless an up-to-date one exists.

    Args:
        single_writer: no other process builds this dataset now, so leftover
            `incomplete.*` folders of killed builds can be deleted.

    Returns:
        The dataset folder, for `tfds.builder_from_directory`.
    """
    data_dir = source_data_dir(cache_dir, musicnet_dir)
    path = dataset_path(data_dir, cfg)
    source = os.path.realpath(os.path.expanduser(musicnet_dir))
    info_file = os.path.join(path, "dataset_info.json")
    if not os.path.isdir(source) and os.path.exists(info_file):
        # E.g. a cache copied to a training machine without the audio.
        logging.warning("%s is missing; using %s unchecked", source, path)
        return path
    recordings = musicnet.list_recordings(source, cfg.part, cfg.label_format)
    fingerprint = musicnet_cqt.source_fingerprint(recordings, source)
    if os.path.exists(info_file):
        if _built_fingerprint(path) == fingerprint:
            return path
        logging.warning("%s: files in %s changed since it was built; rebuilding", path, source)
        shutil.rmtree(path)  # removed first: a failed rebuild must not leave the stale one
    if single_writer:
        for leftover in glob.glob(os.path.join(os.path.dirname(path), "incomplete.*")):
            logging.warning("removing %s, left by an interrupted build", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
    builder = musicnet_cqt.MusicnetCqt(
        config=cfg, musicnet_dir=source, pitch_range=pitch_range, data_dir=data_dir
    )
    logging.info("building %s from %s into %s", cfg.name, source, path)
    was_active = getattr(tfds.core.utils.tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)  # our bar counts recordings; TFDS's would nest under it
    try:
        builder.download_and_prepare(file_format="array_record")
    finally:
        tfds.display_progress_bar(was_active)
    return path
