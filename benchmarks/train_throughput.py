"""Training throughput of both models at their default sizes, and the share spent on data.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --steps=50 --cache_dir=~/.cache/jaxnotes
    python benchmarks/train_throughput.py --musicnet_dir=/data/musicnet

For configs/transformer.py and configs/cnn_mlp.py as they are (384 CQT bins, batch 16 x 43
frames), prints:
  1. the jitted train step on random batches already on the device: compile time, steps/s
     and frames/s (the model's ceiling);
  2. the same step fed by the real grain pipeline, as train.py's loop feeds it: frames/s and
     the share of wall time spent waiting in next(train_iter). This needs a processed
     dataset or a source to build it from: --musicnet_dir, or a default corpus already
     rendered under --cache_dir. Otherwise it says so and skips (rendering takes long).
Numbers are for the devices JAX sees (this CPU unless a GPU is present); other processes
on the machine lower them.
"""

import os
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script from anywhere: `configs` and `jaxnotes` live here

_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per measurement (after 2 warm-up).")
_MODELS = flags.DEFINE_list("models", ["transformer", "cnn_mlp"], "Config files to time.")
_CACHE = flags.DEFINE_string("cache_dir", None, "config.data.cache_dir (default: the config's).")
_MUSICNET = flags.DEFINE_string("musicnet_dir", "", "MusicNet-layout folder for the pipeline.")
_WORKERS = flags.DEFINE_integer("num_workers", 0, "config.data.num_workers for the pipeline.")


def _config(name: str):
    import importlib

    config = importlib.import_module(f"configs.{name}").get_config()
    if _CACHE.value:
        config.data.cache_dir = _CACHE.value
    config.data.musicnet_dir = _MUSICNET.value
    config.data.num_workers = _WORKERS.value
    return config


def _setup(config, meta):
    import jax

    from jaxnotes.train import optim, parallel, steps

    tx, _ = optim.make_optimizer(config, 1000)
    mesh = parallel.make_mesh()
    graphdef, _, init_fn = steps.create_train_state(config, meta, tx, mesh)
    train_fn, _ = steps.compile_steps(graphdef, tx, mesh)
    state = init_fn()
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    return mesh, state, train_fn, num_params


def _random_batch(config, meta, frames: int):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (config.data.batch_size, frames)
    return {
        "cqt": rng.normal(size=(*shape, meta.n_bins)).astype(np.float32),
        "frames": (rng.random((*shape, meta.n_pitches)) < 0.05).astype(np.float32),
        "onsets": (rng.random((*shape, meta.n_pitches)) < 0.01).astype(np.float32),
        "mask": np.ones(shape, np.float32),
    }


def _time_steps(train_fn, state, batches, mesh, rng, num_steps: int):
    """(state, seconds, seconds in next(batches)) for `num_steps` steps fed as train.py does."""
    import jax

    from jaxnotes.train import steps

    start, waiting = time.perf_counter(), 0.0
    for _ in range(num_steps):
        t0 = time.perf_counter()
        batch = next(batches)
        waiting += time.perf_counter() - t0
        state, metrics = train_fn(state, steps.to_device(batch, mesh), rng)
    jax.block_until_ready(metrics)
    return state, time.perf_counter() - start, waiting


def _pipeline_available(config) -> str | None:
    """Why the real pipeline can't be timed without rendering a corpus, or None."""
    from jaxnotes.data.corpus import build as corpus

    if config.data.musicnet_dir:
        return None
    root = corpus.corpus_root(config.data)
    if os.path.exists(os.path.join(root, corpus.COMPLETE_FILE)):
        return None
    return f"no rendered corpus at {root} and no --musicnet_dir"


def main(argv):
    del argv
    import itertools

    import jax

    from jaxnotes.data import pipeline, records, spec

    print(f"devices: {jax.devices()}")
    for name in _MODELS.value:
        config = _config(name)
        meta = spec.load_meta(config)
        frames = spec.window_frames(config)
        mesh, state, train_fn, num_params = _setup(config, meta)
        rng = jax.random.key(0)
        batch = _random_batch(config, meta, frames)
        frames_per_step = config.data.batch_size * frames
        print(
            f"\n{name}: {num_params:,} params, {meta.n_bins} bins, batch "
            f"{config.data.batch_size} x {frames} frames"
        )
        start = time.perf_counter()
        state, _, _ = _time_steps(train_fn, state, itertools.repeat(batch), mesh, rng, 1)
        print(f"  compile + first step: {time.perf_counter() - start:.1f} s")
        state, _, _ = _time_steps(train_fn, state, itertools.repeat(batch), mesh, rng, 2)
        state, seconds, _ = _time_steps(
            train_fn, state, itertools.repeat(batch), mesh, rng, _STEPS.value
        )
        print(
            f"  random batches: {_STEPS.value / seconds:.2f} steps/s, "
            f"{_STEPS.value * frames_per_step / seconds:,.0f} frames/s"
        )
        why_not = _pipeline_available(config)
        if why_not:
            print(f"  real pipeline: skipped ({why_not})")
            continue
        records.ensure_dataset(config, ("train",))
        train_iter = pipeline.make_train_iter(config)
        state, _, _ = _time_steps(train_fn, state, train_iter, mesh, rng, 2)
        state, seconds, waiting = _time_steps(train_fn, state, train_iter, mesh, rng, _STEPS.value)
        print(
            f"  real pipeline ({config.data.num_workers} workers): "
            f"{_STEPS.value * frames_per_step / seconds:,.0f} frames/s, "
            f"{100 * waiting / seconds:.0f}% of the time waiting for data"
        )


if __name__ == "__main__":
    app.run(main)
