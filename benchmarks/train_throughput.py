"""Training throughput of both models at their default sizes, and the share spent on data.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --steps=50 --cache_dir=~/.cache/jaxnotes
    python benchmarks/train_throughput.py --musicnet_dir=/data/musicnet
    python benchmarks/train_throughput.py --models=transformer --batch_sizes=16,64 \
        --compare_dtypes

For configs/transformer.py and configs/cnn_mlp.py as they are (384 CQT bins, batch 16 x 43
frames; --batch_sizes and --compute_dtype change that), prints per model and batch size:
  1. the jitted train step on random batches, moved to the device each step as the loop
     does: compile time, steps/s, frames/s and ms per step (the model's ceiling), and the
     step's FLOPs from XLA's cost analysis (jaxnotes/train/flops.py), the achieved TFLOP/s
     and the model FLOP utilisation against the device's peak ("n/a" where the peak is
     unknown, e.g. on a CPU). --compare_dtypes times float32 and bfloat16 compute in the
     same process and prints their step times side by side;
  2. the same step fed by the real grain pipeline, as train.py's loop feeds it: frames/s and
     the share of wall time spent waiting in next(train_iter). This needs a processed
     dataset or a source to build it from: --musicnet_dir, or a default corpus already
     rendered under --cache_dir. Otherwise it says so and skips (rendering takes long);
     --nopipeline skips it (and the pipeline's imports: grain, TFDS).
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
_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes", [], "config.data.batch_size values to time (default: the config's)."
)
_DTYPE = flags.DEFINE_enum(
    "compute_dtype",
    None,
    ["float32", "bfloat16"],
    "config.model.compute_dtype (default: the config's).",
)
_COMPARE = flags.DEFINE_bool(
    "compare_dtypes", False, "Time float32 and bfloat16 compute side by side."
)
_PIPELINE = flags.DEFINE_bool(
    "pipeline", True, "Also time the real grain pipeline where a dataset is available."
)


def _config(name: str, batch_size: int | None, dtype: str | None):
    import importlib

    config = importlib.import_module(f"configs.{name}").get_config()
    if _CACHE.value:
        config.data.cache_dir = _CACHE.value
    config.data.musicnet_dir = _MUSICNET.value
    config.data.num_workers = _WORKERS.value
    if batch_size:
        config.data.batch_size = batch_size
    if dtype:
        config.model.compute_dtype = dtype
    return config


def _setup(config, meta):
    import jax

    from jaxnotes.train import optim, parallel, steps

    tx, _ = optim.make_optimizer(config, 1000)
    mesh = parallel.make_mesh()
    graphdef, _, init_fn = steps.create_train_state(config, meta, tx, mesh)
    train_fn, _ = steps.compile_steps(
        graphdef, tx, mesh, onset_positive_weight=config.onset_positive_weight
    )
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


def _flops_text(flops_per_step, step_seconds, dtype, mesh) -> str:
    """'x GFLOP/step, y TFLOP/s, MFU z' ('n/a' for what is unknown)."""
    from jaxnotes.train import flops

    if flops_per_step is None:
        return "FLOPs n/a (no XLA cost analysis on this backend)"
    mfu = flops.model_flop_utilization(flops_per_step, step_seconds, dtype, mesh.devices.flat)
    return (
        f"{flops_per_step / 1e9:,.2f} GFLOP/step, "
        f"{flops_per_step / step_seconds / 1e12:.3f} TFLOP/s, "
        f"MFU {'n/a' if mfu is None else f'{100 * mfu:.1f}%'}"
    )


def _time_random(name, config, meta, frames, dtype):
    """Times the step on random batches; returns (mesh, state, train_fn, seconds per step)."""
    import itertools

    import jax

    from jaxnotes.train import flops, steps

    mesh, state, train_fn, num_params = _setup(config, meta)
    rng = jax.random.key(0)
    batch = _random_batch(config, meta, frames)
    frames_per_step = config.data.batch_size * frames
    print(
        f"\n{name} ({dtype}): {num_params:,} params, {meta.n_bins} bins, batch "
        f"{config.data.batch_size} x {frames} frames"
    )
    start = time.perf_counter()
    state, _, _ = _time_steps(train_fn, state, itertools.repeat(batch), mesh, rng, 1)
    print(f"  compile + first step: {time.perf_counter() - start:.1f} s")
    flops_per_step = flops.step_flops(train_fn, state, steps.to_device(batch, mesh), rng)
    state, _, _ = _time_steps(train_fn, state, itertools.repeat(batch), mesh, rng, 2)
    state, seconds, _ = _time_steps(
        train_fn, state, itertools.repeat(batch), mesh, rng, _STEPS.value
    )
    step_seconds = seconds / _STEPS.value
    print(
        f"  random batches: {1 / step_seconds:.2f} steps/s, "
        f"{frames_per_step / step_seconds:,.0f} frames/s, {1e3 * step_seconds:.1f} ms/step; "
        + _flops_text(flops_per_step, step_seconds, dtype, mesh)
    )
    return mesh, state, train_fn, step_seconds


def main(argv):
    del argv
    import jax

    from jaxnotes.data import spec

    print(f"devices: {jax.devices()} ({jax.devices()[0].device_kind})")
    batch_sizes = [int(b) for b in _BATCH_SIZES.value] or [None]
    for name in _MODELS.value:
        for batch_size in batch_sizes:
            if _COMPARE.value:
                dtypes = ["float32", "bfloat16"]
            else:
                dtypes = [_DTYPE.value or _config(name, None, None).model.compute_dtype]
            timed = {}
            for dtype in dtypes:
                config = _config(name, batch_size, dtype)
                meta = spec.load_meta(config)
                frames = spec.window_frames(config)
                timed[dtype] = (config, *_time_random(name, config, meta, frames, dtype))
            if len(timed) > 1:
                ms = {d: 1e3 * t[-1] for d, t in timed.items()}
                print(
                    f"  {name}, batch {config.data.batch_size}: step time float32 "
                    f"{ms['float32']:.1f} ms | bfloat16 {ms['bfloat16']:.1f} ms "
                    f"(bfloat16 / float32 = {ms['bfloat16'] / ms['float32']:.2f}x)"
                )
            config, mesh, state, train_fn, _ = timed[dtypes[0]]
            if not _PIPELINE.value:
                continue
            why_not = _pipeline_available(config)
            if why_not:
                print(f"  real pipeline: skipped ({why_not})")
                continue
            from jaxnotes.data import pipeline, records

            records.ensure_dataset(config, ("train",))
            train_iter = pipeline.make_train_iter(config)
            rng = jax.random.key(0)
            frames_per_step = config.data.batch_size * spec.window_frames(config)
            state, _, _ = _time_steps(train_fn, state, train_iter, mesh, rng, 2)
            state, seconds, waiting = _time_steps(
                train_fn, state, train_iter, mesh, rng, _STEPS.value
            )
            print(
                f"  real pipeline ({config.data.num_workers} workers, {dtypes[0]}): "
                f"{_STEPS.value * frames_per_step / seconds:,.0f} frames/s, "
                f"{100 * waiting / seconds:.0f}% of the time waiting for data"
            )


if __name__ == "__main__":
    app.run(main)
