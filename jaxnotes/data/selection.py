"""Which train recordings training reads: `config.data.train_exclude` against the metadata.

A rule is 'column=text': a train recording whose row of the folder's musicnet_metadata.csv
holds `text` in `column` (case-insensitive substring) is left out of the training batches,
e.g. 'ensemble=Solo Piano' on MusicNet, or on the release corpus 'soundfont=Salamander'
(the sampled piano), 'composer=generated' (the piano textures), 'source=room' (pieces in
a simulated room). The records stay as they are (nothing is rebuilt); only the chunks
read change, and with them the steps of an epoch. Validation and test are never filtered.
Used by ablations (experiments/E008_release_data) to separate what each source buys.
`Concat` reads the train splits of several corpus sizes as one (`config.data.extra_train_sizes`).

Must not import model, loop or metric code.
"""

import numpy as np

from jaxnotes.data import musicnet

FIELD = "config.data.train_exclude"


def parse_rules(rules) -> list[tuple[str, str]]:
    """[(column, text)] of 'column=text' rules; a ValueError names a malformed one."""
    parsed = []
    for rule in rules:
        column, sep, text = str(rule).partition("=")
        if not sep or not column.strip() or not text.strip():
            raise ValueError(f"{FIELD}: {rule!r} is not 'column=text' (e.g. 'ensemble=Piano')")
        parsed.append((column.strip(), text.strip().lower()))
    return parsed


def excluded_ids(source_dir: str, rules) -> set[int]:
    """Ids of the recordings of `source_dir` that match any rule.

    Raises:
      ValueError: no metadata file, a column it does not have, or a malformed rule.
    """
    parsed = parse_rules(rules)
    if not parsed:
        return set()
    rows = musicnet.read_metadata(source_dir)
    if not rows:
        raise ValueError(f"{FIELD}: {source_dir} has no {musicnet.METADATA_FILE} to match")
    columns = set(next(iter(rows.values())))
    for column, _ in parsed:
        if column not in columns:
            raise ValueError(
                f"{FIELD}: column {column!r} is not in {musicnet.METADATA_FILE} "
                f"(columns: {', '.join(sorted(columns))})"
            )
    return {
        int(row_id)
        for row_id, row in rows.items()
        if any(text in (row.get(column) or "").lower() for column, text in parsed)
    }


def kept_chunks(split_meta: dict, excluded: set[int], chunk_frames: int) -> np.ndarray:
    """Indices of the split's chunks that belong to pieces not in `excluded`.

    The records hold each piece's ceil(num_frames / chunk_frames) chunks, pieces in the
    order of `split_meta['pieces']` (musicnet_cqt writes them so).
    """
    kept, start = [], 0
    for piece in split_meta["pieces"]:
        count = -(-int(piece["num_frames"]) // chunk_frames)
        if int(piece["piece_id"]) not in excluded:
            kept.append(np.arange(start, start + count))
        start += count
    if start != split_meta["num_chunks"]:
        raise ValueError(
            f"records list {split_meta['num_chunks']} chunks, their pieces {start}: rebuild "
            "them (--action=process-train)"
        )
    return np.concatenate(kept) if kept else np.zeros(0, np.int64)


def kept_frames(split_meta: dict, excluded: set[int]) -> int:
    """Frames of the split's pieces not in `excluded`."""
    return sum(
        int(p["num_frames"]) for p in split_meta["pieces"] if int(p["piece_id"]) not in excluded
    )


class Subset:
    """A random-access source viewing `indices` of another (what grain reads)."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.source[int(self.indices[index])]


class Concat:
    """Random-access sources read as one, in order (what grain reads): another take's
    chunks follow the first's, so a shuffle draws every chunk as likely as any other."""

    def __init__(self, sources):
        self.sources = list(sources)
        self.starts_N = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.starts_N[-1])

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"chunk {index} of {len(self)}")
        k = int(np.searchsorted(self.starts_N, index, side="right")) - 1
        return self.sources[k][int(index - self.starts_N[k])]
