"""A train split as a few compressed files that travel to an accelerator machine.

The device machine of E017 has no fluidsynth and takes at most 64 MiB of files a call,
while a release corpus's records are ~460 MB. This module writes a split's chunks as:

  index.json        chunk lengths, shapes, the quantisation, the codec, which part holds what
  labels.npz        frames and onsets of every chunk's valid frames, bit-packed (pitch axis)
  cqt-<k>.<codec>   the CQT, 6 bits a value, in `parts` files of whole chunks (each call of
                    the device carries some of them), compressed by one of `CODECS`:
                    'bz2' (the default) bin by bin along time, or 'xz' (E017's export)
                    time-differenced; about the same size (0.44 bytes a value), but 'bz2'
                    writes a take in minutes where 'xz' took 18.5 minutes on one core

The CQT (normalised to [-2, 2], 80 dB: `features.normalise`) is kept at 64 levels: 1.27 dB
steps, +-0.63 dB of error, well inside the +-6 dB gain and +-8 dB equaliser the recipe
draws anyway; the floor (silence) stays exact. `load` reverses it on the device machine
(uint8 levels; `device_train` dequantises with dither). Needs numpy alone at load time.

    python -m experiments.E017_gpu_scratch.arrays --out .e017data [--parts 2]
        [--corpus-size release_pianos2] [--codec bz2|xz]

(CPU, after `--action=process-train` on that corpus: it reads the train split's records.)
Several takes exported to folders of their own are trained on together: `load_many`.
Legend: N frames of all chunks end to end, F bins, K 128 pitches / 8, C chunks.
"""

import argparse
import bz2
import concurrent.futures
import json
import lzma
import os

import numpy as np
import tqdm

LEVELS = 64
INDEX_FILE = "index.json"
LABELS_FILE = "labels.npz"
LOW, HIGH = -2.0, 2.0  # the normalised CQT's range (features: floor -2, reference +2)


def quantise(cqt_NxF: np.ndarray) -> np.ndarray:
    """[-2, 2] -> levels 0..LEVELS-1 (uint8); the floor maps to 0 exactly."""
    x = (np.asarray(cqt_NxF, np.float32) - LOW) / (HIGH - LOW) * (LEVELS - 1)
    return np.clip(np.round(x), 0, LEVELS - 1).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * np.float32((HIGH - LOW) / (LEVELS - 1)) + np.float32(LOW)


def _encode(q_NxF: np.ndarray, codec: str) -> bytes:
    if codec == "bz2":  # each bin's levels along time, end to end: bzip2 packs them ~2.3x
        return bz2.compress(np.ascontiguousarray(q_NxF.T).tobytes(), 9)
    # Differences along time, modulo LEVELS: mostly small, so xz packs them ~2.3x.
    d_NxF = np.diff(q_NxF.astype(np.int16), axis=0, prepend=0) % LEVELS
    return lzma.compress(d_NxF.astype(np.uint8).tobytes(), preset=9)


def _decode(data: bytes, shape, codec: str) -> np.ndarray:
    n, f = shape
    if codec == "bz2":
        return np.frombuffer(bz2.decompress(data), np.uint8).reshape(f, n).T.copy()
    d_NxF = np.frombuffer(lzma.decompress(data), np.uint8).reshape(shape)
    return (np.cumsum(d_NxF, axis=0, dtype=np.int64) % LEVELS).astype(np.uint8)


CODECS = ("bz2", "xz")


def export(config, out: str, parts: int = 2, codec: str = "bz2") -> dict:
    """Writes `config`'s train split (every chunk, in record order) to `out`."""
    from jaxnotes import files
    from jaxnotes.data import records

    if codec not in CODECS:
        raise ValueError(f"codec {codec!r}: expected one of {CODECS}")
    if config.data.train_exclude:
        raise ValueError("config.data.train_exclude: not supported by this export")
    source, info = records.open_split(config, "train")
    cqt, frames, onsets, lengths, piece_ids = [], [], [], [], []
    for i in tqdm.trange(len(source), desc=f"{config.data.corpus_size}: reading", unit="chunk"):
        r = source[i]
        n = int(r["num_frames"])
        cqt.append(quantise(r["cqt"][:n]))
        frames.append(np.packbits(np.asarray(r["frames"][:n], bool), axis=1))
        onsets.append(np.packbits(np.asarray(r["onsets"][:n], bool), axis=1))
        lengths.append(n)
        piece_ids.append(int(r["piece_id"]))
    lengths_C = np.array(lengths)
    with files.atomic_path(os.path.join(out, LABELS_FILE)) as tmp:  # makes `out`
        np.savez_compressed(tmp, frames=np.concatenate(frames), onsets=np.concatenate(onsets))
    # Parts of whole chunks, about equal in frames.
    bounds = np.searchsorted(np.cumsum(lengths_C), np.linspace(0, lengths_C.sum(), parts + 1)[1:-1])
    edges = [0, *[int(b) + 1 for b in bounds], len(lengths_C)]
    written = []
    for k in tqdm.trange(parts, desc=f"{config.data.corpus_size}: compressing", unit="part"):
        lo, hi = edges[k], edges[k + 1]
        q_NxF = np.concatenate(cqt[lo:hi])
        name = f"cqt-{k}.{codec}"
        files.write_bytes(os.path.join(out, name), _encode(q_NxF, codec))
        written.append({"name": name, "chunks": [lo, hi], "shape": list(q_NxF.shape)})
    index = {
        "corpus_size": config.data.corpus_size,
        "codec": codec,
        "levels": LEVELS,
        "range": [LOW, HIGH],
        "n_bins": int(cqt[0].shape[1]),
        "lengths": lengths_C.tolist(),
        "piece_ids": piece_ids,
        "parts": written,
        "seconds": float(info["seconds"]),
    }
    # Written last (atomically, as the parts): an index.json means a finished export.
    files.write_text(os.path.join(out, INDEX_FILE), json.dumps(index))
    return index


def load(data_dir: str, require_all: bool = True) -> dict:
    """The exported split: {'cqt': N x F uint8 levels, 'frames'/'onsets': N x 128 uint8,
    'starts'/'lengths': C chunk offsets and frames, 'present': C bool, 'index': index.json}.

    The parts present are filled in (decoded in threads; each decoded part is kept beside
    its file as `.npy`, read instead while newer than it); a missing part raises unless `require_all`
    is False: then its rows stay at level 0 (silence) and its chunks are not 'present'."""
    with open(os.path.join(data_dir, INDEX_FILE)) as f:
        index = json.load(f)
    lengths_C = np.array(index["lengths"], np.int64)
    starts_C = np.concatenate([[0], np.cumsum(lengths_C)[:-1]])
    cqt_NxF = np.zeros((int(lengths_C.sum()), index["n_bins"]), np.uint8)
    present_C = np.zeros(len(lengths_C), bool)

    def fill(part) -> None:
        path = os.path.join(data_dir, part["name"])
        if not os.path.exists(path):
            if require_all:
                raise FileNotFoundError(f"{path}: part of the exported split is missing")
            return
        cached = path + ".npy"
        if os.path.exists(cached) and os.path.getmtime(cached) >= os.path.getmtime(path):
            q_NxF = np.load(cached)
        else:
            with open(path, "rb") as f:
                q_NxF = _decode(f.read(), part["shape"], index.get("codec", "xz"))
            np.save(cached, q_NxF)
        lo, hi = part["chunks"]
        cqt_NxF[starts_C[lo] : starts_C[lo] + len(q_NxF)] = q_NxF
        present_C[lo:hi] = True

    with concurrent.futures.ThreadPoolExecutor(len(index["parts"])) as pool:
        list(pool.map(fill, index["parts"]))  # list(): re-raises a part's error
    labels = np.load(os.path.join(data_dir, LABELS_FILE))
    unpack = lambda x: np.unpackbits(x, axis=1, count=128)  # noqa: E731
    return {
        "cqt": cqt_NxF,
        "frames": unpack(labels["frames"]),
        "onsets": unpack(labels["onsets"]),
        "starts": starts_C,
        "lengths": lengths_C,
        "present": present_C,
        "index": index,
    }


def load_many(data_dirs, require_all: bool = True) -> dict:
    """Several exports (takes of a corpus, or corpora) as one split, `load`'s dict: their
    chunks end to end in the order given; 'index' is the first's with every folder's
    'lengths' and 'piece_ids' and the 'corpus_sizes' (one per chunk)."""
    bins = set()
    for d in data_dirs:
        with open(os.path.join(d, INDEX_FILE)) as f:
            bins.add(int(json.load(f)["n_bins"]))
    if len(bins) != 1:
        raise ValueError(f"{list(data_dirs)}: exports with different numbers of CQT bins")
    loaded = [load(d, require_all) for d in data_dirs]
    join = lambda key: np.concatenate([x[key] for x in loaded])  # noqa: E731
    lengths_C = join("lengths")
    index = dict(loaded[0]["index"])
    index.update(
        lengths=lengths_C.tolist(),
        piece_ids=[p for x in loaded for p in x["index"]["piece_ids"]],
        corpus_sizes=[
            x["index"].get("corpus_size", d)
            for d, x in zip(data_dirs, loaded, strict=True)
            for _ in x["lengths"]
        ],
        seconds=sum(float(x["index"]["seconds"]) for x in loaded),
    )
    return {
        "cqt": join("cqt"),
        "frames": join("frames"),
        "onsets": join("onsets"),
        "starts": np.concatenate([[0], np.cumsum(lengths_C)[:-1]]),
        "lengths": lengths_C,
        "present": join("present"),
        "index": index,
    }


def main(argv=None) -> None:
    from experiments.E017_gpu_scratch import config as e017

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--variant", default=None, help="config variant ('tiny': tests)")
    parser.add_argument("--corpus-size", default=None, help="another take (default: config's)")
    parser.add_argument("--codec", default="bz2", choices=CODECS)
    args = parser.parse_args(argv)
    config = e017.get_config(args.variant)
    if args.corpus_size:
        config.data.corpus_size = args.corpus_size
    index = export(config, args.out, args.parts, args.codec)
    for part in index["parts"]:
        size = os.path.getsize(os.path.join(args.out, part["name"]))
        print(f"{part['name']}: chunks {part['chunks']}, {size / 2**20:.1f} MiB")
    print(f"{len(index['lengths'])} chunks, {sum(index['lengths'])} frames")


if __name__ == "__main__":
    main()
