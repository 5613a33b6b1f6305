"""A folder in MusicNet's layout: its recordings, labels, metadata and splits.

    <dir>/train_data/<id>.wav     <dir>/train_labels/<id>.csv (or .mid/.midi)
    <dir>/test_data/<id>.wav      <dir>/test_labels/<id>.csv  (or .mid/.midi)
    <dir>/musicnet_metadata.csv   optional

Audio may be wav, flac or ogg at any rate, mono or stereo; label sample
indices are at the audio's own rate. MIDI labels (MusicNetEM) may also lie
beside the audio in `<split>_data/`. Must not import model, loop or metric code.
"""

import csv
import dataclasses
import os
import random
import zlib

from jaxnotes.data import labels as labels_lib

SPLITS = ("train", "test")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MIDI_EXTENSIONS = (".mid", ".midi")
LABEL_FORMATS = ("auto", "csv", "midi")
METADATA_FILE = "musicnet_metadata.csv"


class LayoutError(ValueError):
    """A folder that is not in MusicNet's layout, with what is wrong named."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """One audio file and its label file."""

    name: str  # file stem, e.g. '1759'
    piece_id: int  # the numeric MusicNet id, or a stable hash of a non-numeric name
    audio_path: str
    labels_path: str

    def read_notes(self, sample_rate: int) -> list[labels_lib.Note]:
        """Notes of this recording; CSV indices are read at `sample_rate` (the wav's)."""
        if self.labels_path.lower().endswith(MIDI_EXTENSIONS):
            return labels_lib.read_midi_labels(self.labels_path)
        return labels_lib.read_label_csv(self.labels_path, sample_rate)


def piece_id_of(name: str) -> int:
    """MusicNet ids are numbers; other names get a stable 31-bit hash."""
    return (
        int(name)
        if name.isdigit() and int(name) < 2**31
        else zlib.crc32(name.encode()) & 0x7FFFFFFF
    )


def list_recordings(musicnet_dir: str, split: str, label_format: str = "auto") -> list[Recording]:
    """Every recording of `split` ('train' or 'test'), sorted by name.

    Raises:
        LayoutError: a missing folder, or an audio file without labels.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if label_format not in LABEL_FORMATS:
        raise ValueError(
            f"config.data.label_format={label_format!r}: expected one of {LABEL_FORMATS}"
        )
    root = os.path.expanduser(musicnet_dir)
    if not os.path.isdir(root):
        raise LayoutError(f"config.data.musicnet_dir={musicnet_dir!r}: no such folder")
    data_dir = os.path.join(root, f"{split}_data")
    labels_dir = os.path.join(root, f"{split}_labels")
    if not os.path.isdir(data_dir):
        raise LayoutError(f"{data_dir}: missing folder (expected MusicNet's {split}_data/)")
    recordings = []
    for filename in sorted(os.listdir(data_dir)):
        stem, ext = os.path.splitext(filename)
        if ext.lower() not in AUDIO_EXTENSIONS:
            continue
        labels_path = _find_labels(stem, data_dir, labels_dir, label_format)
        if labels_path is None:
            raise LayoutError(
                f"{os.path.join(data_dir, filename)}: no labels found (looked for {stem}.csv"
                f" or {stem}.mid in {labels_dir}, and {stem}.mid beside the audio)"
            )
        recordings.append(
            Recording(stem, piece_id_of(stem), os.path.join(data_dir, filename), labels_path)
        )
    if not recordings:
        raise LayoutError(f"{data_dir}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    ids = [r.piece_id for r in recordings]
    if len(set(ids)) != len(ids):
        raise LayoutError(f"{data_dir}: two recordings map to the same piece id")
    return recordings


def _find_labels(stem, data_dir, labels_dir, label_format) -> str | None:
    candidates = []
    if label_format in ("auto", "csv"):
        candidates.append(os.path.join(labels_dir, stem + ".csv"))
    if label_format in ("auto", "midi"):
        for folder in (labels_dir, data_dir):
            candidates += [os.path.join(folder, stem + ext) for ext in MIDI_EXTENSIONS]
    return next((c for c in candidates if os.path.exists(c)), None)


def read_metadata(musicnet_dir: str) -> dict[str, dict[str, str]]:
    """Rows of musicnet_metadata.csv keyed by id; empty when the file is absent."""
    path = os.path.join(os.path.expanduser(musicnet_dir), METADATA_FILE)
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise LayoutError(f"{path}: expected a header starting with 'id'")
        return {row["id"]: row for row in reader}


def split_train_validation(
    recordings: list[Recording],
    fraction: float,
    validation_ids=(),
    seed: int = 0,
) -> tuple[list[Recording], list[Recording]]:
    """Holds whole recordings of the train split out for validation.

    `validation_ids` (names or ids) wins over `fraction`. The choice depends
    only on the recording names and the seed, so it is stable across runs.
    """
    if validation_ids:
        wanted = {str(v) for v in validation_ids}
        known = {r.name for r in recordings}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"config.data.validation_ids: {unknown} are not train recordings")
        val = [r for r in recordings if r.name in wanted]
    else:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"config.data.validation_fraction={fraction}: must be in [0, 1)")
        count = int(round(fraction * len(recordings)))
        if fraction > 0 and len(recordings) > 1:
            count = min(max(count, 1), len(recordings) - 1)
        names = sorted(r.name for r in recordings)
        random.Random(seed).shuffle(names)
        chosen = set(names[:count])
        val = [r for r in recordings if r.name in chosen]
    val_names = {r.name for r in val}
    train = [r for r in recordings if r.name not in val_names]
    return train, val
