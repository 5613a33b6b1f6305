"""Throughput of the data path: chunk reads and the training pipeline.

    python benchmarks/pipeline_throughput.py --synthetic_pieces=0     # the default corpus
    python benchmarks/pipeline_throughput.py --synthetic_pieces=0 --baseline=HEAD \
        --windows_per_chunk=1,4
    python benchmarks/pipeline_throughput.py --config=configs/transformer.py \
        --config.data.musicnet_dir=/data/musicnet --synthetic_pieces=0

With --synthetic_pieces > 0 a MusicNet-layout folder of harmonic tones is written
(tests/musicnet_fixtures.py) under the cache dir and its records built; otherwise the
finished records of config.data.musicnet_dir (or the default corpus) are opened
read-only (build them first with --action=process-train). Prints the records and size
on disk, chunk read rates (TFDS decoding and the pipeline's `ChunkSource`), and the
train pipeline's frames/second for each --windows_per_chunk and --num_workers value;
in-process runs also print the CPU milliseconds per window (all threads).
--baseline=REV first times `jaxnotes/data/pipeline.py` as of git revision REV in the
same process (in-process only: its transforms cannot be pickled into workers): the CPU
one thread spends per batch, batches of the two taken in turn (the comparison to trust
on a shared machine), then frames/s as below.
"""

import importlib.util
import os
import subprocess
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
_WINDOWS = flags.DEFINE_list(
    "windows_per_chunk", [], "config.data.windows_per_chunk values to time (default: config's)."
)
_BATCHES = flags.DEFINE_integer("batches", 200, "Timed batches per setting.")
_BASELINE = flags.DEFINE_string(
    "baseline", "", "Git revision whose pipeline.py is timed first, in-process ('' : none)."
)


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


def _pipeline_at(revision: str):
    """jaxnotes/data/pipeline.py as of a git revision, imported under another name."""
    text = subprocess.run(
        ["git", "show", f"{revision}:jaxnotes/data/pipeline.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = "jaxnotes.data._pipeline_baseline"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    sys.modules[name] = module  # dataclasses look their module up by name
    exec(compile(text, f"pipeline.py@{revision}", "exec"), module.__dict__)
    return module


def _rate(read, count: int, seconds: float = 3.0) -> float:
    start = time.perf_counter()
    reads = 0
    while time.perf_counter() - start < seconds:
        read(reads % count)
        reads += 1
    return reads / (time.perf_counter() - start)


def _batches_of(pipeline, config):
    """The grain MapDataset behind `pipeline.make_train_iter` (caught as it becomes an
    iterator): its batches computed on demand in this thread."""
    import grain

    caught = []
    to_iter_dataset = grain.MapDataset.to_iter_dataset

    def catch(self, *args, **kwargs):
        caught.append(self)
        return to_iter_dataset(self, *args, **kwargs)

    grain.MapDataset.to_iter_dataset = catch
    try:
        pipeline.make_train_iter(config)
    finally:
        grain.MapDataset.to_iter_dataset = to_iter_dataset
    return caught[-1]


def _compare_cpu(runs: dict, config, count: int) -> None:
    """CPU time of one thread per batch for each {label: (pipeline, windows_per_chunk)},
    their batches taken in turn (so a shared machine's load falls on each alike)."""
    batches = {}
    for label, (pipeline, windows) in runs.items():
        config.data.windows_per_chunk = windows
        batches[label] = _batches_of(pipeline, config)
    seconds = {label: [] for label in batches}
    for i in range(count):
        for label, ds in batches.items() if i % 2 else reversed(batches.items()):
            start = time.thread_time()
            batch = ds[i]
            seconds[label].append(time.thread_time() - start)
    frames = batch["cqt"].shape[0] * batch["cqt"].shape[1]
    first = None
    for label, s in seconds.items():
        median = sorted(s)[len(s) // 2]
        first = first or median
        print(
            f"one thread, CPU per batch (median of {count}), {label}: {1e3 * median:.1f} ms,"
            f" {frames / median:.0f} frames/s per core (x{first / median:.2f})",
            flush=True,
        )


def _time_train(pipeline, config, label: str) -> None:
    it = pipeline.make_train_iter(config)
    for _ in range(10):  # warm-up: worker start and the prefetch buffer filling
        batch = next(it)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(_BATCHES.value):
        batch = next(it)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    windows = _BATCHES.value * batch["cqt"].shape[0]
    cpu_text = f", {1e3 * cpu / windows:.3f} ms CPU/window" if not config.data.num_workers else ""
    print(
        f"{label} windows_per_chunk={config.data.windows_per_chunk}"
        f" num_workers={config.data.num_workers}: {_BATCHES.value / elapsed:.1f} batches/s,"
        f" {windows * batch['cqt'].shape[1] / elapsed:.0f} frames/s{cpu_text}"
        f" (batch {batch['cqt'].shape})",
        flush=True,
    )
    del it


def main(argv):
    del argv
    from jaxnotes.data import chunks as chunks_lib
    from jaxnotes.data import pipeline, records

    config = _CONFIG.value
    if _PIECES.value > 0:
        config.data.musicnet_dir = _synthetic_folder(
            config.data.cache_dir, _PIECES.value, _SECONDS.value
        )
        start = time.perf_counter()
        path = records.ensure_dataset(config, ("train",))["train"]
        print(f"dataset: {path} (ready in {time.perf_counter() - start:.1f} s)")
    else:
        path = records.dataset_dir(config, "train")  # read-only; names the action if missing
        print(f"dataset: {path}")
    meta = records.read_metadata(path)
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
    print(
        f"  augment {config.augment.to_dict()}; read_threads={config.data.read_threads},"
        f" prefetch_batches={config.data.prefetch_batches}"
    )

    source, _ = records.open_split(config, "train")
    chunks = chunks_lib.ChunkSource(source)
    for label, read in (("TFDS decode", source.__getitem__), ("ChunkSource", chunks.__getitem__)):
        rate = _rate(read, len(source))
        print(
            f"chunk reads ({label}): {rate:.0f} records/s"
            f" ({rate * config.data.chunk_frames:.0f} frames/s)"
        )

    windows = [int(w) for w in _WINDOWS.value] or [int(config.data.windows_per_chunk)]
    if _BASELINE.value:
        baseline = _pipeline_at(_BASELINE.value)
        config.data.num_workers = 0
        runs = {f"@{_BASELINE.value} windows_per_chunk={w}": (baseline, w) for w in windows}
        runs.update({f"now windows_per_chunk={w}": (pipeline, w) for w in windows})
        _compare_cpu(runs, config, 40)
        for count in windows:
            config.data.windows_per_chunk = count
            _time_train(baseline, config, f"train pipeline @{_BASELINE.value}")
    for count in windows:
        for workers in (int(w) for w in _WORKERS.value):
            config.data.windows_per_chunk, config.data.num_workers = count, workers
            _time_train(pipeline, config, "train pipeline")


if __name__ == "__main__":
    app.run(main)
