"""Two processes joined by `jax.distributed` train as one process fed the same global batches.

Everything on the two-process side is the real thing: `python -m jaxnotes.main --action=train`
twice on this machine, joined through `parallel.maybe_initialize_distributed`'s environment
variables (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), CPU collectives
across the processes (Gloo, JAX's CPU default), each process reading its own shard through
grain, and Orbax writing one checkpoint from both into the shared workdir.

What "the same global batch" means here. `pipeline.make_train_iter` shards the records
(`source[process_index::process_count]`) and then shuffles, windows and augments each
shard on its own, so the windows a run draws depend on the process count: a plain
one-process run draws other windows (same distribution, another sample) and ends with
other parameters. The reference is therefore the real training loop in one process fed,
at each step, process 0's rows followed by process 1's (`make_train_iter(...,
process_index=i, process_count=2)`, the very call each process makes with JAX's index),
which is the global batch the two processes assemble: their devices come in process
order in the mesh (`jax.devices()`), and `host_batch_to_global` puts each process's
rows on its own devices.

Both runs use a 4-device mesh (2 fake CPU devices per process; tests/conftest.py's 4 in
this one) with the same rows on the same device, and the same XLA options. What differs is
how the gradient sums cross devices: Gloo between the processes vs. XLA's in-process
all-reduce, which may add in another order. Hence tolerances, not bit equality.

About 2.5 minutes on a busy 2-core CPU (three processes importing and compiling); the
numbers are printed (`-s`). Leave it out with `--deselect tests/multi_process_test.py`.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

import jax
import musicnet_fixtures as fx
import numpy as np
import pytest
from flax import nnx

from jaxnotes import actions, files, sections
from jaxnotes.data import pipeline
from jaxnotes.train import checkpoint, loop

_NOISE = re.compile(r"[IW]\d{4} \d\d:\d\d:|\[Gloo\]")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_PROCESSES = 2
DEVICES_PER_PROCESS = 2
TIMEOUT_S = 420  # each process imports JAX, TFDS, flax... on a shared 2-core CPU

# Parameters after 4 Adam steps. The two runs sum the same float32 gradients across
# devices in possibly another order (~1e-7 relative round-off per add), and Adam divides by
# sqrt(v), so round-off in a tiny gradient can grow. Measured: at most 3e-8 apart (CPU,
# Gloo); multi_device_test allows rtol=2e-5, atol=2e-6 for 1 vs 4 devices. The last step
# alone moves parameters by up to 2.5e-4 (lr 5e-4, Adam), 25x this tolerance at |p| = 1,
# so one wrong batch, a missing step or a dropped gradient shard would fail.
PARAM_TOL = dict(rtol=1e-5, atol=1e-6)
LOSS_RTOL = 1e-5  # logged training loss (a sum over the global batch, float64 on the host)

pytestmark = [
    pytest.mark.usefixtures("fast_compiles"),
    pytest.mark.skipif(
        jax.default_backend() != "cpu",
        reason="starts CPU processes; needs tests/conftest.py's 4 fake CPU devices",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _config_flags(config, workdir) -> list[str]:
    return [
        "--config=configs/transformer.py:tiny",
        f"--workdir={workdir}",
        f"--config.data.musicnet_dir={config.data.musicnet_dir}",
        f"--config.data.cache_dir={config.data.cache_dir}",
    ]


def _start_processes(config, workdir, logs_dir) -> list[subprocess.Popen]:
    """`--action=train` in NUM_PROCESSES processes joined through the environment."""
    port = _free_port()
    procs = []
    for i in range(NUM_PROCESSES):
        env = dict(os.environ)
        env.update(
            JAX_PLATFORMS="cpu",
            XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}",
            JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
            JAX_NUM_PROCESSES=str(NUM_PROCESSES),
            JAX_PROCESS_ID=str(i),
            # The XLA options of this module's in-process reference (the fast_compiles
            # fixture), so both runs compile the same way (and quickly).
            JAX_DISABLE_MOST_OPTIMIZATIONS="1",
        )
        with open(os.path.join(logs_dir, f"process_{i}.log"), "w") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "jaxnotes.main", *_config_flags(config, workdir)]
                    + ["--action=train"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return procs


def _wait(procs: list[subprocess.Popen], logs_dir, deadline: float) -> None:
    """Waits for every process to exit 0; stops all on a failure or at `deadline`."""
    try:
        # A process that fails leaves the other waiting at a collective: stop it too.
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs) or time.perf_counter() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    codes = [p.returncode for p in procs]
    if codes != [0] * len(procs):
        tails = []
        for i, code in enumerate(codes):
            with open(os.path.join(logs_dir, f"process_{i}.log")) as f:
                # Without absl's INFO/WARNING lines (Orbax is chatty) and Gloo's.
                lines = [ln for ln in f.read().splitlines() if not _NOISE.match(ln)]
            tails.append(f"--- process {i} (exit {code}):\n" + "\n".join(lines[-15:]))
        pytest.fail("two-process training failed\n" + "\n".join(tails))


class _GlobalBatches:
    """The global batches of a NUM_PROCESSES-process run, read in one process.

    Checkpointable as the loop needs (grain's handler saves a non-grain iterator's
    `get_state()` bytes).
    """

    def __init__(self, iterators):
        self.iterators = iterators

    def __iter__(self):
        return self

    def __next__(self):
        shards = [next(it) for it in self.iterators]  # process 0's rows first
        return {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}

    def get_state(self) -> bytes:
        return json.dumps([it.get_state() for it in self.iterators]).encode()

    def set_state(self, state: bytes) -> None:
        for it, s in zip(self.iterators, json.loads(state), strict=True):
            it.set_state(s)


def _params(workdir) -> tuple[int, dict[str, np.ndarray]]:
    """(step, {path: array}) of the parameters in a workdir's latest checkpoint."""
    model, _, _, step = checkpoint.load_model(workdir)
    return step, _flat_params(model)


def _params_at(workdir, step: int) -> dict[str, np.ndarray]:
    return _flat_params(checkpoint.load_model(workdir, step=step)[0])


def _flat_params(model) -> dict[str, np.ndarray]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {"/".join(map(str, path)): np.asarray(v.value) for path, v in flat}


def _logged_losses(workdir) -> dict[int, float]:
    with open(os.path.join(workdir, files.METRICS_FILE)) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_two_processes_train_like_one_process_on_the_same_global_batches(tmp_path, monkeypatch):
    """Same step count, parameters and logged losses (to round-off); one checkpoint holding
    each process's data position."""
    start = time.perf_counter()
    fx.make_musicnet(tmp_path / "musicnet")
    config = fx.tiny_config(tmp_path / "musicnet", tmp_path / "cache")
    config.lock()
    run_config = sections.RunConfig.of(config)
    # Records are built once, by one process (the process-train action), before training.
    actions.ACTIONS["process-train"](run_config, None)
    built = time.perf_counter()
    steps = min(config.num_epochs * pipeline.steps_per_epoch(config), config.max_steps)

    two = tmp_path / "two_processes"
    spawned = time.time()
    procs = _start_processes(config, two, tmp_path)
    try:
        # Meanwhile, the reference: the real loop in this process (4 devices), fed the
        # global batches of the two processes.
        real_make_train_iter = pipeline.make_train_iter

        def global_batches(config, split="train"):
            return _GlobalBatches(
                [
                    real_make_train_iter(
                        config, split, process_index=i, process_count=NUM_PROCESSES
                    )
                    for i in range(NUM_PROCESSES)
                ]
            )

        monkeypatch.setattr(pipeline, "make_train_iter", global_batches)
        one = tmp_path / "one_process"
        one_start = time.perf_counter()
        result = loop.train_and_evaluate(run_config, str(one), validate=False)
        one_seconds = time.perf_counter() - one_start
    except BaseException:
        for p in procs:
            p.kill()
            p.wait()
        raise
    _wait(procs, tmp_path, deadline=built + TIMEOUT_S)
    # From the start to the last line either process logged (the reference ran meanwhile).
    logs = [tmp_path / f"process_{i}.log" for i in range(NUM_PROCESSES)]
    two_seconds = max(os.path.getmtime(log) for log in logs) - spawned

    two_step, two_params = _params(two)
    one_step, one_params = _params(one)
    two_losses, one_losses = _logged_losses(two), _logged_losses(one)
    assert two_params.keys() == one_params.keys()
    worst = max(float(np.max(np.abs(two_params[k] - one_params[k]))) for k in one_params)
    print(
        f"\nprocess-train {built - start:.1f} s; {NUM_PROCESSES} processes x "
        f"{DEVICES_PER_PROCESS} CPU devices, {two_step} steps: {two_seconds:.1f} s wall "
        f"(1-process reference, run meanwhile: {one_seconds:.1f} s); max |parameter "
        f"difference| {worst:.2e}, the last step moved parameters by up to "
        f"{_last_step_change(two, two_step):.2e}; logged losses {two_losses} vs "
        f"{one_losses}; test total {time.perf_counter() - start:.1f} s"
    )

    assert result["step"] == one_step == two_step == steps, (result, one_step, two_step, steps)
    # Each process saved its own data-iterator position beside the one shared state.
    data_files = sorted(os.listdir(two / files.CHECKPOINTS / str(two_step) / "data"))
    expected = [f"process_{i}-of-{NUM_PROCESSES}.json" for i in range(NUM_PROCESSES)]
    assert [f for f in data_files if f.endswith(".json")] == expected, data_files
    for key, value in one_params.items():
        np.testing.assert_allclose(two_params[key], value, **PARAM_TOL, err_msg=key)
    assert two_losses.keys() == one_losses.keys() and two_losses, (two_losses, one_losses)
    for step, loss in one_losses.items():
        np.testing.assert_allclose(two_losses[step], loss, rtol=LOSS_RTOL, err_msg=f"step {step}")


def _last_step_change(workdir, step: int) -> float:
    """The largest parameter change of the run's last step (saved steps step-1 -> step)."""
    try:
        a, b = (_params_at(workdir, s) for s in (step - 1, step))
    except checkpoint.CheckpointNotFoundError:  # step - 1 not kept: only for the message
        return float("nan")
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
