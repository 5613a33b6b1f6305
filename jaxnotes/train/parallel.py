"""Devices, the mesh and shardings: data parallelism over every device of every host.

Owns the 1-D ('data',) mesh, the two shardings the loop uses (batch split over 'data',
state replicated) and the host -> global batch transfer. Must not import data, model
or loop code.

Multi-host: every process holds `batch_size // process_count` rows of each global batch
(its own shard, read by its own data pipeline) and `host_batch_to_global` assembles the
global array without any host seeing the others' rows.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Environment variables that mean "this process is one of several": the explicit JAX
# coordinator triple, or a launcher whose layout jax.distributed detects by itself.
_COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
_LAUNCHER_SIZE_ENVS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def maybe_initialize_distributed() -> bool:
    """Calls `jax.distributed.initialize` when the environment describes several processes.

    Must run before any other JAX call. Recognises `JAX_COORDINATOR_ADDRESS` (with
    `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`), and SLURM or Open MPI launches of more than
    one task, whose layout JAX reads by itself.

    Returns:
      True when the process joined a multi-process job.
    """
    if os.environ.get(_COORDINATOR_ENV):
        try:
            num_processes = int(os.environ["JAX_NUM_PROCESSES"])
            process_id = int(os.environ["JAX_PROCESS_ID"])
        except (KeyError, ValueError) as e:
            raise ValueError(
                f"{_COORDINATOR_ENV} is set, so JAX_NUM_PROCESSES and JAX_PROCESS_ID must be "
                f"integers too: {e}"
            ) from e
        jax.distributed.initialize(
            coordinator_address=os.environ[_COORDINATOR_ENV],
            num_processes=num_processes,
            process_id=process_id,
        )
        return True
    for env in _LAUNCHER_SIZE_ENVS:
        if int(os.environ.get(env, "1") or 1) > 1:
            jax.distributed.initialize()
            return True
    return False


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D ('data',) mesh over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("make_mesh needs at least one device")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data'; the other axes whole on each device."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full copy on every device (parameters, optimizer state, metrics)."""
    return NamedSharding(mesh, PartitionSpec())


def local_batch_multiple(mesh: Mesh) -> int:
    """Rows of a process-local batch must be a multiple of this (its devices in the mesh)."""
    local = {d.id for d in jax.local_devices()}
    return max(1, sum(d.id in local for d in mesh.devices.flat))


def check_batch_size(global_batch_size: int, mesh: Mesh, field: str) -> int:
    """Returns the per-process batch size; raises ValueError naming `field` if it can't split.

    Args:
      global_batch_size: rows summed over all processes.
      mesh: the mesh the batch is split over.
      field: the config field the size came from, for the message.
    """
    num_devices, num_processes = mesh.devices.size, jax.process_count()
    if global_batch_size <= 0 or global_batch_size % num_devices:
        raise ValueError(
            f"config.{field}={global_batch_size} must be a positive multiple of the number of "
            f"devices ({num_devices}), so each device gets the same number of rows"
        )
    return global_batch_size // num_processes


def pad_batch(batch: Mapping[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
    """Pads every array's leading axis with zeros up to a multiple of `multiple`.

    Zero rows have `mask` 0, so padded rows never count in masked sums.
    """
    batch = dict(batch)
    rows = len(next(iter(batch.values())))
    extra = -rows % multiple
    if extra:
        for key, value in batch.items():
            value = np.asarray(value)
            pad = np.zeros((extra, *value.shape[1:]), value.dtype)
            batch[key] = np.concatenate([value, pad])
    return batch


def host_batch_to_global(batch: Any, mesh: Mesh) -> Any:
    """Turns this process's rows of a batch (a pytree of arrays) into global jax.Arrays.

    Each leaf's leading axis is split over 'data'. With one process this is a plain
    sharded device_put; with several, each process contributes the rows it read.
    """
    sharding = data_sharding(mesh)
    multiple = local_batch_multiple(mesh)

    def to_global(local):
        local = np.asarray(local)
        if local.ndim == 0 or local.shape[0] % multiple:
            raise ValueError(
                f"a batch array of shape {local.shape} cannot be split over this process's "
                f"{multiple} devices: its leading (batch) axis must be a multiple of {multiple}"
            )
        return jax.make_array_from_process_local_data(sharding, local)

    return jax.tree.map(to_global, batch)


def describe(mesh: Mesh) -> str:
    """One line for the log: processes, devices, platform."""
    kinds = sorted({d.device_kind for d in mesh.devices.flat})
    return (
        f"{jax.process_count()} process(es), {mesh.devices.size} device(s) in the "
        f"'{DATA_AXIS}' mesh ({', '.join(kinds)}); this is process {jax.process_index()}"
    )
