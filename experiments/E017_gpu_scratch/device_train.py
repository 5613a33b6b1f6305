"""E017's trainer for one accelerator: the exported train split in device memory, every
window drawn and augmented inside the jitted step, `lax.scan` over `--scan` steps a call.

What each step does is the training loop's: `steps.train_step` of `steps.create_train_state`
(the same model, loss and AdamW with clipping), on batches made as the grain pipeline makes
them (`pipeline.CropWindows` + `DrawAugment` + `FinishBatch`): a chunk drawn uniformly, a
window uniformly inside its valid frames (what runs past them is silence, masked), a pitch
shift of CQT and labels (silence / no note moving in), a gain and an equaliser on the
non-silent bins. Two differences, both stated in experiments/README.md: the CQT arrives at
64 levels (`arrays.py`; each level is spread over its width by uniform dither), and the
schedule's length is set once the warmup has measured the speed: the cosine then decays to
zero exactly at the end of the time given (`--seconds`).

`--runs 0.25,0.75` trains one model from scratch per share of the time, one after the other,
each with its own full schedule (a compute-scaling point each); `--steps 26000,139700`
instead gives each run its steps (E017's two runs took those; run r's seed is config.seed +
r). Writes to `--out`, per run r: `weights-r.npz` (`pretrained.param_arrays` names: `jaxnotes.train.adopt` turns it into a
workdir) and `log.json` (steps, seconds, the loss every call, frames a second, the device).

    python -m experiments.E017_gpu_scratch.device_train --data .e017data --out $OUT \
        (--seconds 490 --runs 0.25,0.75 | --steps 26000,139700) [--allow-missing] \
        [--snapshot-every 60 | --no-snapshots] [--stop-after S] [--resume DIR]

Snapshots (`snapshots.py`): every `--snapshot-every` seconds, and at a run's end, the run's
state (TrainState and dropout key, an Orbax checkpoint) goes to `<out>/snapshots-r/` with
its progress (steps, schedule length, losses). A device call that runs out of time still
returns what is under $OUT, and `--stop-after S` ends a call cleanly with a snapshot, so a
run longer than one call, or one cut short, goes on with `--resume <that out>`: finished
runs are skipped (their weights copied), the unfinished one restarts from its snapshot, and
since each call's batches are drawn from a key folded with the step, it takes the steps,
batches and schedule of an uninterrupted run (bit for bit on the CPU, as a test checks; a
GPU's reductions need not repeat in their last bits, as DEVICE.md's resume test found).

`--data` may name several exports, comma-separated (E018: takes of the corpus): their
chunks are drawn from as one split, each chunk as likely as any other.
"""

import argparse
import functools
import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.E017_gpu_scratch import arrays
from experiments.E017_gpu_scratch import config as e017
from experiments.E017_gpu_scratch import snapshots as snapshots_lib
from jaxnotes import files, pretrained
from jaxnotes.data import features, spec
from jaxnotes.train import optim, parallel, steps


def make_sampler(data: dict, config, meta):
    """(sample, arrays): `sample(arrays, key)` is one training batch (the contract's keys,
    float32) drawn on the device from `arrays`, the split in device memory. The arrays are
    an argument, not constants of the compiled step, and have the same shapes whichever
    parts are present (a count says how many chunks are), so one compilation (cached on
    disk) serves every call of a device session."""
    d, a = config.data, config.augment
    cqt = features.CqtConfig.from_config(config.cqt)
    window, batch = spec.window_frames(config), int(d.batch_size)
    shift = int(a.pitch_shift_semitones)
    lo, hi = max(int(d.min_pitch) - shift, 0), min(int(d.max_pitch) + shift, 127)
    first, n_pitches = int(d.min_pitch) - lo, meta.n_pitches
    silence = np.float32(features.silence_value(cqt))
    level = np.float32((arrays.HIGH - arrays.LOW) / (arrays.LEVELS - 1))
    present_C = np.flatnonzero(data["present"])
    chunks_C = np.zeros(len(data["present"]), np.int32)  # the present ones first
    chunks_C[: len(present_C)] = present_C
    device_arrays = {
        "chunks": jnp.asarray(chunks_C),
        "num_chunks": jnp.int32(len(present_C)),
        "starts": jnp.asarray(data["starts"], jnp.int32),
        "lengths": jnp.asarray(data["lengths"], jnp.int32),
        "cqt": jnp.asarray(data["cqt"]),
        "frames": jnp.asarray(data["frames"][:, lo : hi + 1]),
        "onsets": jnp.asarray(data["onsets"][:, lo : hi + 1]),
    }
    num_frames, num_bins = data["cqt"].shape
    points_C = jnp.linspace(0.0, num_bins - 1.0, cqt.n_octaves + 1)  # one an octave

    def shift_last(x_BxTxK, k_B, fill):
        # out[..., j] = x[..., j - k] where that exists, else fill.
        idx_BxK = jnp.arange(x_BxTxK.shape[-1])[None, :] - k_B[:, None]
        ok_BxK = (idx_BxK >= 0) & (idx_BxK < x_BxTxK.shape[-1])
        moved = jnp.take_along_axis(
            x_BxTxK, jnp.clip(idx_BxK, 0, x_BxTxK.shape[-1] - 1)[:, None, :], axis=2
        )
        return jnp.where(ok_BxK[:, None, :], moved, fill)

    def sample(arrays_, key):
        keys = jax.random.split(key, 8)
        c_B = arrays_["chunks"][jax.random.randint(keys[0], (batch,), 0, arrays_["num_chunks"])]
        n_B = arrays_["lengths"][c_B]
        offset_B = jax.random.randint(keys[1], (batch,), 0, jnp.maximum(n_B - window, 0) + 1)
        t_BxT = offset_B[:, None] + jnp.arange(window)[None, :]
        mask_BxT = t_BxT < n_B[:, None]
        rows_BxT = jnp.clip(arrays_["starts"][c_B][:, None] + t_BxT, 0, num_frames - 1)
        q_BxTxF = arrays_["cqt"][rows_BxT].astype(jnp.float32)
        dither = jax.random.uniform(keys[2], q_BxTxF.shape, minval=-0.5, maxval=0.5)
        x_BxTxF = arrays.LOW + level * jnp.where(q_BxTxF > 0, q_BxTxF + dither, 0.0)
        x_BxTxF = jnp.where(mask_BxT[..., None], x_BxTxF, silence)
        m = mask_BxT[..., None].astype(jnp.uint8)
        frames_BxTxL = arrays_["frames"][rows_BxT] * m
        onsets_BxTxL = arrays_["onsets"][rows_BxT] * m
        # Augmentation, as pipeline.DrawAugment draws it and augment.augment_batch applies it.
        shift_B = jax.random.randint(keys[3], (batch,), -shift, shift + 1)
        jitter = int(a.pitch_jitter_bins)
        jitter_B = jax.random.randint(keys[4], (batch,), -jitter, jitter + 1)
        x_BxTxF = shift_last(x_BxTxF, shift_B * meta.bins_per_semitone + jitter_B, silence)
        frames_BxTxL = shift_last(frames_BxTxL, shift_B, 0)
        onsets_BxTxL = shift_last(onsets_BxTxL, shift_B, 0)
        gain_B = jax.random.uniform(keys[5], (batch,), minval=-1.0, maxval=1.0) * float(a.gain_db)
        eq_BxC = jax.random.uniform(keys[6], (batch, len(points_C)), minval=-1.0, maxval=1.0)
        eq_BxF = jax.vmap(
            lambda e: jnp.interp(jnp.arange(num_bins, dtype=jnp.float32), points_C, e)
        )(eq_BxC * float(a.eq_db))
        gain_BxF = (gain_B[:, None] + eq_BxF) / features.DB_SCALE
        loud = x_BxTxF > silence
        x_BxTxF = jnp.maximum(jnp.where(loud, x_BxTxF + gain_BxF[:, None, :], x_BxTxF), silence)
        take = slice(first, first + n_pitches)
        return {
            "cqt": x_BxTxF,
            "frames": frames_BxTxL[..., take].astype(jnp.float32),
            "onsets": onsets_BxTxL[..., take].astype(jnp.float32),
            "mask": mask_BxT.astype(jnp.float32),
            # What was drawn (the step reads only the keys above): for the tests.
            "rows": rows_BxT,
            "shift": shift_B,
        }

    return sample, device_arrays


def make_tx(config, total):
    """`optim.make_optimizer`'s transformation and schedule with the schedule's length
    `total` a traced value; the same state structure whatever `total` is."""
    o = config.optim
    lr, warmup = float(o.lr), int(o.warmup_steps)
    return optim.transformation(config, lambda count: optim.warmup_cosine(count, lr, warmup, total))


def make_trainer(config, meta, sample, scan: int):
    """(graphdef, init_fn, run): a fresh TrainState, and `scan` steps of it as one jitted
    call `run((state, dropout_key), arrays, data_key, total) -> ((state, dropout_key),
    loss_S)`, compiled once for every run (`total`, the schedule's length, is an
    argument)."""
    mesh = parallel.make_mesh()
    graphdef, _, init_fn = steps.create_train_state(config, meta, make_tx(config, 1.0), mesh)
    weight = float(config.onset_positive_weight)

    def one(arrays_, total, carry, key):
        state, rng = carry
        tx = make_tx(config, total)
        state, metrics = steps.train_step(
            graphdef, tx, state, sample(arrays_, key), rng, onset_positive_weight=weight
        )
        return (state, rng), metrics["loss_sum"] / jnp.maximum(metrics["frame_count"], 1)

    @functools.partial(jax.jit, donate_argnums=0)
    def run(carry, arrays_, key, total):
        keys = jax.random.split(jax.random.fold_in(key, carry[0].step), scan)
        return jax.lax.scan(functools.partial(one, arrays_, total), carry, keys)

    return graphdef, init_fn, run


def train(
    config,
    trainer,
    arrays_,
    seconds: float,
    scan: int,
    seed: int,
    log: dict,
    steps=None,
    snapshots: snapshots_lib.Snapshots | None = None,
    deadline: float | None = None,
):
    """One model from scratch for `steps` steps (rounded up to whole calls), or else for
    about `seconds`; returns its final TrainState.

    Without `steps`, the warmup's calls are timed and the cosine's length is then set so
    that it ends with the time given. With `snapshots`, the run starts from the newest
    snapshot there (its schedule length, losses and time too), and saves one every
    `snapshots.every_s` seconds and at its end; past `deadline` (a `time.time()`) it saves
    one and stops, returning None (go on with `--resume`)."""
    _, init_fn, run = trainer
    carry = (init_fn(), jax.random.key(seed + 1))
    data_key = jax.random.key(seed + 2)
    warmup, unknown = int(config.optim.warmup_steps), float(1 << 30)
    total = unknown if steps is None else float(-(-int(steps) // scan) * scan)
    losses, step, timed_from, before = [], 0, None, 0.0
    restored = snapshots.restore(carry) if snapshots else None
    if restored is not None:
        carry, progress = restored
        step, losses, before = int(progress["steps"]), list(progress["losses"]), progress["seconds"]
        total = float(progress["total"])
        log.update(progress["log"], resumed_at=step)
        print(
            f"  resumed at step {step} of {int(total)} from {snapshots.mngr.directory}", flush=True
        )
    begin = time.time() - before  # the run's time so far counts against --seconds
    saved_at = time.time()

    def snapshot():
        progress = {"steps": step, "total": total, "losses": losses, "log": log}
        snapshots.save(step, carry, {**progress, "seconds": time.time() - begin})

    while step < total:
        carry, loss_S = run(carry, arrays_, data_key, jnp.float32(total))
        losses.append(float(jnp.mean(loss_S)))  # a fetch: the times below are real
        step += scan
        now = time.time()
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"loss {losses[-1]} at step {step}")
        if timed_from is None:  # the first call compiles
            timed_from = (step, now)
            log.setdefault("first_call_seconds", now - begin)
        elif "steps_per_second" not in log and step >= warmup:
            rate = (step - timed_from[0]) / (now - timed_from[1])
            log["steps_per_second"] = rate
            if total == unknown:
                total = float(step + max(int(rate * (seconds - (now - begin))) // scan, 0) * scan)
            print(f"  {rate:.0f} steps/s after {step} steps: {int(total)} steps in all", flush=True)
        if snapshots and step < total and deadline is not None and now >= deadline:
            snapshot()
            print(f"  stopped at step {step} of {int(total)}: the time given is up", flush=True)
            return None
        if snapshots and step < total and now - saved_at >= snapshots.every_s:
            snapshot()
            saved_at = time.time()
    if snapshots:
        snapshot()
    rate = log.get("steps_per_second", 0.0)  # at the end of the warmup
    if timed_from is not None and step > timed_from[0]:  # this process's calls but the first
        rate = log["steps_per_second_after_first_call"] = (step - timed_from[0]) / (
            now - timed_from[1]
        )
    log.update(
        steps=step,
        seconds=time.time() - begin,
        losses=losses,
        frames_per_second=rate * int(config.data.batch_size) * spec.window_frames(config),
    )
    return carry[0]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="exports (arrays.py), comma-separated")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=0.0, help="training time, all runs")
    parser.add_argument("--runs", default="1.0", help="shares of the time, one model each")
    parser.add_argument("--steps", default="", help="or each run's steps (E017: 26000,139700)")
    parser.add_argument("--scan", type=int, default=100, help="steps a jitted call")
    parser.add_argument("--variant", default=None, help="config variant ('tiny': tests)")
    parser.add_argument("--allow-missing", action="store_true", help="train on the parts present")
    parser.add_argument(
        "--snapshot-every",
        type=float,
        default=60.0,
        help="seconds between snapshots (0: each call)",
    )
    parser.add_argument("--no-snapshots", action="store_true", help="no snapshots (a smoke run)")
    parser.add_argument("--resume", default=None, help="an earlier --out to go on from")
    parser.add_argument(
        "--stop-after",
        type=float,
        default=0.0,
        help="seconds: then snapshot and stop, to go on with --resume (0: run to the end)",
    )
    args = parser.parse_args(argv)
    deadline = time.time() + args.stop_after if args.stop_after > 0 else None
    from flax import nnx

    if args.steps:
        runs = [(None, int(n)) for n in args.steps.split(",")]
    elif args.seconds > 0:
        runs = [(float(share), None) for share in args.runs.split(",")]
    else:
        parser.error("give --seconds (a time to fill) or --steps (each run's steps)")
    if args.resume and not os.path.isdir(args.resume):
        parser.error(f"--resume {args.resume}: no such folder")
    if args.no_snapshots and (args.resume or args.stop_after > 0):
        parser.error("--resume and --stop-after need snapshots: drop --no-snapshots")
    try:  # before the data load: an --out with an earlier run's snapshots
        for r in range(len(runs)):
            if not args.resume:
                snapshots_lib.refuse_earlier(args.out, r)
    except FileExistsError as e:
        parser.error(str(e))
    config = e017.get_config(args.variant)
    meta = spec.load_meta(config)
    t0 = time.time()
    data = arrays.load_many(args.data.split(","), require_all=not args.allow_missing)
    sample, device_arrays = make_sampler(data, config, meta)
    os.makedirs(args.out, exist_ok=True)
    logs = {"device": str(jax.devices()[0].device_kind), "load_seconds": time.time() - t0}
    logs["frames"] = int(data["lengths"][data["present"]].sum())
    logs["data"] = args.data.split(",")
    print(
        f"loaded {logs['frames']:,} of {int(data['lengths'].sum()):,} frames "
        f"in {logs['load_seconds']:.1f} s on {logs['device']}",
        flush=True,
    )
    earlier = {}
    if args.resume and os.path.exists(os.path.join(args.resume, "log.json")):
        with open(os.path.join(args.resume, "log.json")) as f:
            earlier = json.load(f)
    trainer = make_trainer(config, meta, sample, args.scan)
    for r, (share, steps_) in enumerate(runs):
        weights = os.path.join(args.out, f"weights-{r}.npz")
        done = args.resume and os.path.join(args.resume, f"weights-{r}.npz")
        if done and os.path.exists(done):  # finished before: its weights and log as they were
            if os.path.abspath(done) != os.path.abspath(weights):
                shutil.copyfile(done, weights)
            logs[f"run{r}"] = earlier.get(f"run{r}", {})
            print(f"run {r}: finished in {args.resume}", flush=True)
            continue
        log = {"share": share}
        logs[f"run{r}"] = log
        snapshots = (
            None
            if args.no_snapshots
            else snapshots_lib.for_run(args, r, config, meta, share, steps_)
        )
        seconds = args.seconds * (share or 0.0)
        state = train(
            config,
            trainer,
            device_arrays,
            seconds,
            args.scan,
            config.seed + r,
            log,
            steps_,
            snapshots,
            deadline,
        )
        if state is None:
            files.write_text(os.path.join(args.out, "log.json"), json.dumps(logs))
            print(f"run {r}: snapshot in {snapshots.mngr.directory}; --resume {args.out}")
            return
        model = nnx.merge(trainer[0], state.params, state.rest)
        pretrained.save_weights(model, weights)
        print(
            f"run {r}: {log['steps']} steps in {log['seconds']:.0f} s "
            f"({log.get('steps_per_second_after_first_call', 0):.0f} steps/s, "
            f"{log.get('frames_per_second', 0):,.0f} frames/s after the first call), "
            f"loss {log['losses'][0]:.3f} -> {log['losses'][-1]:.3f}",
            flush=True,
        )
        files.write_text(os.path.join(args.out, "log.json"), json.dumps(logs))


if __name__ == "__main__":
    main()
