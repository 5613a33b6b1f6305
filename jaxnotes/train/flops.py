"""FLOPs of a jitted step from XLA's cost analysis, and model FLOP utilisation (MFU).

`step_flops(jitted, *args)` lowers the step for those arguments and reads XLA's count of
floating-point operations (a multiply-add counts 2) on the HLO as lowered: the whole
step over all devices (before SPMD partitioning), the backward pass, elementwise work and
the optimizer included, each dot and convolution as written. These models recompute
nothing (no rematerialisation), so it is the model FLOPs of MFU's definition (Chowdhery
et al. 2022, PaLM, appendix B) plus a little elementwise work. Lowering takes a second
or two; nothing is compiled.

Why not the compiled step's count (`jitted.lower(...).compile().cost_analysis()`, a dict
in JAX 0.10, None where a backend has none)? On a GPU it misses the matmuls XLA hands to
cuBLAS: on an H200 (jax 0.11.2) it gave 3.4 GFLOP for the cnn_mlp step at batch 256 in
float32 and 29.7 in bfloat16, where the lowered HLO has 46 (CPU: 46.3 compiled, 46.0
lowered). On a CPU the two agree within 10 %. The CPU backend counts lowered HLO through
the public `Lowered.cost_analysis()`; GPU and TPU backends (PJRT plugins) don't, so the
same HLO is counted by the CPU's cost model (a private jax call, guarded). Only if that
fails too is the compiled count used: one device's program (its share of the batch and a
full copy of the replicated optimizer update) times the devices (`compiled_flops`).

`model_flop_utilization` divides the achieved FLOP/s by the peak dense FLOP/s of the
devices (PEAK_FLOPS, by `device.device_kind` and compute dtype); it is None where the
peak is not known (a CPU, an unlisted accelerator or dtype). `throughput_metrics` gives
the training loop's `train/tflops` and `train/mfu` from a step count and the seconds
they took.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

# Peak dense (no structured sparsity) FLOP/s of one chip by jax's `device_kind`, per
# compute dtype, from the vendors' datasheets. Exact kinds only: a variant with another
# peak (H100 PCIe or NVL, H200 NVL, TPU v4 lite) is not listed rather than guessed.
#  - NVIDIA H100 SXM5 ('NVIDIA H100 80GB HBM3') and H200 SXM ('NVIDIA H200'), the
#    datasheets at nvidia.com/en-us/data-center/h100/ and /h200/: BF16 Tensor Core
#    1,979 TFLOPS "with sparsity", so 989 dense; FP32 67 TFLOPS (CUDA cores, no tensor
#    cores).
#  - NVIDIA A100 SXM4 and PCIe, 40 and 80 GB (the A100 datasheet, nvidia.com/en-us/
#    data-center/a100/, the same peaks for both form factors): BF16 Tensor Core 312
#    TFLOPS dense; FP32 19.5 TFLOPS.
#  - Google TPU v4 (cloud.google.com/tpu/docs/v4): 275 TFLOPS bf16; TPU v5e, jax's
#    'TPU v5 lite' (cloud.google.com/tpu/docs/v5e): 197 TFLOPS bf16; TPU v5p, jax's
#    'TPU v5' (cloud.google.com/tpu/docs/v5p): 459 TFLOPS bf16. No float32 entry: a TPU
#    runs float32 matmuls as several bf16 passes, a rate Google does not list.
# float32 on these GPUs: at jax's default matmul precision XLA may run float32 matmuls as
# TF32 on the tensor cores, faster than the FP32 peak, so float32 MFU can read above 1
# unless JAX_DEFAULT_MATMUL_PRECISION=highest. It is a utilisation of the plain FP32 rate.
_H100_H200 = {"bfloat16": 989e12, "float32": 67e12}
_A100 = {"bfloat16": 312e12, "float32": 19.5e12}
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "NVIDIA H100 80GB HBM3": _H100_H200,
    "NVIDIA H200": _H100_H200,
    "NVIDIA A100-SXM4-40GB": _A100,
    "NVIDIA A100-SXM4-80GB": _A100,
    "NVIDIA A100-PCIE-40GB": _A100,
    "NVIDIA A100 80GB PCIe": _A100,
    "TPU v4": {"bfloat16": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12},
    "TPU v5e": {"bfloat16": 197e12},
    "TPU v5": {"bfloat16": 459e12},
    "TPU v5p": {"bfloat16": 459e12},
}


def flops_from_cost_analysis(cost: Any) -> float | None:
    """The 'flops' of a `Compiled.cost_analysis()` result, or None if it has none.

    JAX 0.10 returns one dict (None where the backend has no cost model); older versions
    returned a list with one dict per program, so a list is summed.
    """
    if cost is None:
        return None
    if isinstance(cost, Mapping):
        flops = cost.get("flops")
        return None if flops is None or flops < 0 else float(flops)
    if isinstance(cost, Sequence):
        counts = [flops_from_cost_analysis(c) for c in cost]
        return None if not counts or None in counts else float(sum(counts))
    return None


def _num_devices(compiled: jax.stages.Compiled) -> int:
    """Devices the compiled program runs on (the largest device set of its inputs)."""
    shardings = jax.tree.leaves(
        compiled.input_shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding)
    )
    sizes = [len(s.device_set) for s in shardings if isinstance(s, jax.sharding.Sharding)]
    return max(sizes, default=1)


def compiled_flops(compiled: jax.stages.Compiled) -> float | None:
    """FLOPs of one run of `compiled`: one device's count times its devices (None if XLA
    can't count). Misses library calls (cuBLAS matmuls on a GPU): see the module docstring."""
    per_device = flops_from_cost_analysis(compiled.cost_analysis())
    return None if per_device is None else per_device * _num_devices(compiled)


def _cpu_cost_model_flops(lowered: jax.stages.Lowered) -> float | None:
    """The CPU cost model's count of `lowered`'s HLO, whatever backend it was lowered for."""
    try:  # private jax API (jax 0.10, 0.11): None if it moves
        from jax._src import xla_bridge
        from jax._src.lib import _jax

        module = lowered.compiler_ir("hlo").as_hlo_module()
        cost = _jax.hlo_module_cost_analysis(xla_bridge.get_backend("cpu"), module)
    except Exception:  # any failure means: no count this way
        return None
    return flops_from_cost_analysis(cost)


def lowered_flops(lowered: jax.stages.Lowered) -> float | None:
    """FLOPs of the whole lowered computation, all devices together (module docstring)."""
    count = flops_from_cost_analysis(lowered.cost_analysis())
    return _cpu_cost_model_flops(lowered) if count is None else count


def step_flops(jitted: Callable, *args: Any) -> float | None:
    """FLOPs of one call `jitted(*args)` (a `jax.jit` function), all devices together.

    Lowering is not a call: donated arguments (the train step's state) stay valid, and
    arrays or jax.ShapeDtypeStructs both do. E.g. `step_flops(train_fn, state, batch, rng)`
    with steps.compile_steps' train_fn and a batch from steps.to_device. None if XLA
    cannot count.
    """
    lowered = jitted.lower(*args)
    count = lowered_flops(lowered)
    return compiled_flops(lowered.compile()) if count is None else count


def peak_flops_per_second(device_kind: str, dtype: Any) -> float | None:
    """Peak dense FLOP/s of one `device_kind` chip in `dtype` (PEAK_FLOPS), or None."""
    return PEAK_FLOPS.get(device_kind, {}).get(jnp.dtype(dtype).name)


def model_flop_utilization(
    flops_per_step: float | None,
    step_seconds: float,
    dtype: Any,
    devices: Sequence[jax.Device] | None = None,
) -> float | None:
    """Achieved FLOP/s over the devices' peak: a fraction (0.4 is 40 % MFU).

    Args:
      flops_per_step: the whole step's FLOPs over all `devices` (`step_flops`).
      step_seconds: wall time of one step.
      dtype: the compute dtype ('float32', 'bfloat16', or a jnp dtype).
      devices: the devices the step runs on (default: all of jax.devices()).

    Returns:
      None when a device's peak is unknown (e.g. a CPU) or there is nothing to divide.
    """
    devices = jax.devices() if devices is None else list(devices)
    if flops_per_step is None or not step_seconds > 0 or not devices:
        return None
    peaks = [peak_flops_per_second(d.device_kind, dtype) for d in devices]
    if None in peaks:
        return None
    return flops_per_step / step_seconds / sum(peaks)


def throughput_metrics(
    flops_per_step: float | None,
    num_steps: int,
    seconds: float,
    dtype: Any,
    devices: Sequence[jax.Device] | None = None,
    prefix: str = "train/",
) -> dict[str, float]:
    """`{prefix}tflops` (achieved TFLOP/s) and `{prefix}mfu` for `num_steps` in `seconds`.

    For the training loop's log: keys whose value is unknown are left out (no FLOP count:
    both; no known peak, e.g. on a CPU: mfu). `dtype` is config.model.compute_dtype.
    """
    if flops_per_step is None or num_steps <= 0 or not seconds > 0:
        return {}
    step_seconds = seconds / num_steps
    out = {f"{prefix}tflops": flops_per_step / step_seconds / 1e12}
    mfu = model_flop_utilization(flops_per_step, step_seconds, dtype, devices)
    if mfu is not None:
        out[f"{prefix}mfu"] = mfu
    return out
