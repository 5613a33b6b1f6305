"""Throughput of the data path: dataset build, chunk reads, and the training pipeline.

    python benchmarks/pipeline_throughput.py --config=configs/transformer.py \
        --synthetic_pieces=8 --synthetic_seconds=30
    python benchmarks/pipeline_throughput.py --config=configs/transformer.py \
        --config.data.musicnet_dir=/data/musicnet --synthetic_pieces=0

With --synthetic_pieces > 0 a MusicNet-layout folder of harmonic tones is
written (tests/musicnet_fixtures.py) under the cache dir and used as the
source; otherwise config.data.musicnet_dir (or the default corpus) is read.
Prints the build speed (x real time), records and size on disk, chunk read
rate, and train-pipeline frames/second for each --num_workers value.
"""

import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script from anywhere: `configs` and `jaxnotes` live here

_CONFIG = config_flags.DEFINE_config_file("config", "configs/transformer.py", "Model config.")
_PIECES = flags.DEFINE_integer("synthetic_pieces", 8, "Synthetic train recordings (0: none).")
_SECONDS = flags.DEFINE_float("synthetic_seconds", 30.0, "Length of each synthetic recording.")
_WORKERS = flags.DEFINE_list("num_workers", ["0", "2"], "grain worker counts to time.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Timed batches per worker count.")


def _synthetic_folder(cache_dir: str, pieces: int, seconds: float) -> str:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import musicnet_fixtures as fx

    root = os.path.join(os.path.expanduser(cache_dir), f"synthetic_{pieces}x{seconds:g}s")
    if not os.path.isdir(root):
        train = [str(4000 + i) for i in range(pieces)]
        fx.make_musicnet(root, train, ["4999"], seconds, notes_per_piece=int(seconds * 3))
    return root


def _disk_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main(argv):
    del argv
    from jaxnotes.data import pipeline, records, spec

    config = _CONFIG.value
    if _PIECES.value > 0:
        config.data.musicnet_dir = _synthetic_folder(
            config.data.cache_dir, _PIECES.value, _SECONDS.value
        )
    start = time.perf_counter()
    path = records.ensure_dataset(config, ("train",))["train"]
    print(f"dataset: {path} (ready in {time.perf_counter() - start:.1f} s)")
    meta = pipeline._metadata(path)
    for split, info in meta["splits"].items():
        speed = info["seconds"] / max(info["process_seconds"], 1e-9)
        print(
            f"  {split}: {len(info['pieces'])} recordings, {info['seconds']:.0f} s of audio,"
            f" {info['num_chunks']} records, {info['num_frames']} frames;"
            f" processed at {speed:.0f}x real time when built"
        )
    size = _disk_bytes(path)
    frames = sum(info["num_frames"] for info in meta["splits"].values())
    print(f"  on disk: {size / 2**20:.1f} MiB ({size / frames:.0f} bytes/frame)")

    source, _ = records.open_split(config, "train")
    start = time.perf_counter()
    reads = 0
    while time.perf_counter() - start < 3.0:
        source[reads % len(source)]
        reads += 1
    rate = reads / (time.perf_counter() - start)
    print(f"chunk reads: {rate:.0f} records/s ({rate * config.data.chunk_frames:.0f} frames/s)")

    window = spec.window_frames(config)
    for workers in (int(w) for w in _WORKERS.value):
        config.data.num_workers = workers
        it = pipeline.make_train_iter(config)
        for _ in range(10):  # warm-up: worker start and the prefetch buffer filling
            next(it)
        start = time.perf_counter()
        for _ in range(_BATCHES.value):
            batch = next(it)
        elapsed = time.perf_counter() - start
        per_batch = batch["cqt"].shape[0] * window
        print(
            f"train pipeline, num_workers={workers}: {_BATCHES.value / elapsed:.1f} batches/s,"
            f" {_BATCHES.value * per_batch / elapsed:.0f} frames/s"
            f" (batch {batch['cqt'].shape}, augment {config.augment.to_dict()})"
        )
        del it


if __name__ == "__main__":
    app.run(main)
