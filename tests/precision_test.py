"""Mixed precision (config.model.compute_dtype), FLOPs and MFU (train/flops.py), and the
':gpu' config variant.

A bfloat16 step starts from the same float32 parameters and batch as a float32 step and
must land close to it, with parameters and optimizer state still float32. The tolerances
were measured on the CPU (jax 0.10.2, the tiny configs, a batch of 4 x 43 frames) and are
stated next to each check; bfloat16 keeps 8 bits of mantissa (~4e-3 relative per
rounding), so a few layers deep ~1e-2 is its round-off, not a bug.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from configs import cnn_mlp, transformer
from jaxnotes import files, models, sections
from jaxnotes.data import spec
from jaxnotes.models import layers
from jaxnotes.train import flops, optim, parallel, steps

pytestmark = pytest.mark.usefixtures("fast_compiles")

CONFIGS = {"transformer": transformer, "cnn_mlp": cnn_mlp}


def _batch(config, meta, batch_size=4):
    rng = np.random.default_rng(0)
    shape = (batch_size, spec.window_frames(config))
    return {
        "cqt": rng.normal(size=(*shape, meta.n_bins)).astype(np.float32),
        "frames": (rng.random((*shape, meta.n_pitches)) < 0.1).astype(np.float32),
        "onsets": (rng.random((*shape, meta.n_pitches)) < 0.03).astype(np.float32),
        "mask": np.ones(shape, np.float32),
    }


def _project_optimizer(config):
    return optim.make_optimizer(config, steps_per_epoch=10)[0]


@pytest.fixture(scope="module", params=["transformer", "cnn_mlp"])
def stepped(request):
    """One train step of the tiny config in float32 and in bfloat16 from the same float32
    initial state and batch, with the project's optimizer (clip + AdamW):
    {'name', 'before', 'float32': (state after, metrics, FLOPs), 'bfloat16': ...}."""
    name = request.param
    config = CONFIGS[name].get_config("tiny")
    meta = spec.load_meta(config)
    tx = _project_optimizer(config)
    mesh = parallel.make_mesh(jax.devices()[:1])
    _, _, init_fn = steps.create_train_state(config, meta, tx, mesh)  # float32 parameters
    before = jax.device_get(init_fn())
    batch = steps.to_device(_batch(config, meta), mesh)
    out = {"name": name, "before": before}
    for dtype in ("float32", "bfloat16"):
        config.model.compute_dtype = dtype
        graphdef, _, _ = steps.create_train_state(config, meta, tx, mesh)
        train_fn, _ = steps.compile_steps(
            graphdef, tx, mesh, onset_positive_weight=config.onset_positive_weight
        )
        state = jax.device_put(before, parallel.replicated(mesh))  # the step donates it
        per_step = flops.step_flops(train_fn, state, batch, jax.random.key(1))
        after, metrics = train_fn(state, batch, jax.random.key(1))
        out[dtype] = (jax.device_get(after), jax.device_get(metrics), per_step)
    return out


def _delta(after, before):
    return jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, after.params, before.params)


def _norm(tree):
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in tree)))


def _relative_error(tree, reference):
    diff = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, tree, reference)
    return _norm(jax.tree.leaves(diff)) / _norm(jax.tree.leaves(reference))


def test_bf16_train_step_stays_close_to_float32(stepped):
    """Loss, gradients and the update of a bf16 step agree with the float32 step's.

    Measured (transformer / cnn_mlp): loss within 1.6e-5 / 9.2e-5 relative; gradient norm
    within 1.2e-3 / 6.9e-4; the gradient itself (Adam's first moment after one step, which
    is (1 - b1) x the clipped gradient) within 0.65 % / 1.0 % of its norm; the parameter
    update within 6.8 % / 5.5 % of its norm. The update differs more than the gradient:
    Adam's first update is about lr * sign(gradient) per element, so elements whose
    gradient is near zero can step either way under any round-off, by at most two steps.
    """
    before = stepped["before"]
    (f32, m32, _), (bf16, m16, _) = stepped["float32"], stepped["bfloat16"]
    loss32, loss16 = (float(m["loss_sum"] / m["frame_count"]) for m in (m32, m16))
    assert np.isfinite(loss16) and abs(loss16 - loss32) <= 2e-3 * loss32
    assert abs(m16["grad_norm"] - m32["grad_norm"]) <= 1e-2 * m32["grad_norm"]
    for leaf in jax.tree.leaves((bf16.params, bf16.opt_state)):
        assert np.all(np.isfinite(leaf))
    # Parameters and optimizer state stay float32 (step counters are int32).
    assert {x.dtype for x in jax.tree.leaves(bf16.params)} == {np.dtype(np.float32)}
    opt_dtypes = {x.dtype for x in jax.tree.leaves(bf16.opt_state)}
    assert opt_dtypes == {np.dtype(np.float32), np.dtype(np.int32)}
    mu16, mu32 = (optax.tree_utils.tree_get(s.opt_state, "mu") for s in (bf16, f32))
    assert _relative_error(mu16, mu32) <= 3e-2
    d32, d16 = _delta(f32, before), _delta(bf16, before)
    assert _relative_error(d16, d32) <= 0.2
    largest_step = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(d32))
    diff = jax.tree.map(np.subtract, d16, d32)
    assert max(float(np.max(np.abs(x))) for x in jax.tree.leaves(diff)) <= 2.01 * largest_step


def test_train_step_flops_and_mfu(stepped):
    """XLA counts the tiny train step's FLOPs (bf16 does the same work); MFU needs a peak."""
    config = CONFIGS[stepped["name"]].get_config("tiny")
    per_step = stepped["float32"][2]
    # At least forward + backward (3 x 2 x MACs) of the two output heads alone.
    frames, width = 4 * spec.window_frames(config), stepped["before"].params
    (kernel,) = jax.tree.leaves(width["frame_head"]["kernel"])
    assert per_step > 2 * 3 * 2 * frames * kernel.shape[0] * kernel.shape[1]
    assert stepped["bfloat16"][2] == pytest.approx(per_step, rel=0.2)

    class Cpu:
        device_kind = "cpu"

    cpu = [Cpu()]
    assert flops.model_flop_utilization(per_step, 0.1, "float32", cpu) is None
    assert flops.throughput_metrics(per_step, 10, 1.0, "float32", cpu) == {
        "train/tflops": pytest.approx(per_step * 10 / 1e12)
    }
    assert flops.throughput_metrics(None, 10, 1.0, "float32") == {}


@pytest.mark.parametrize("name", ["transformer", "cnn_mlp"])
def test_bf16_inference_logits_close_to_float32(name):
    """Eval-mode logits on 300 frames (more than a local-attention block).

    Measured: max |difference| 0.047 (transformer) / 0.010 (cnn_mlp) on logits up to ~4,
    RMS 0.0065 / 0.0017, probabilities within 0.011 / 0.0024. (The shipped full-size model:
    logits within 0.2, probabilities within 0.03.)
    """
    config = CONFIGS[name].get_config("tiny")
    meta = spec.load_meta(config)
    cqt_BxTxF = jax.random.normal(jax.random.key(0), (2, 300, meta.n_bins))
    out = {}
    for dtype in ("float32", "bfloat16"):
        model = models.get_model(
            name, meta=meta, rngs=nnx.Rngs(0), **{**config.model, "compute_dtype": dtype}
        )
        model.eval()
        assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {
            np.dtype(np.float32)
        }
        out[dtype] = jax.jit(lambda g, s, x: nnx.merge(g, s)(x))(*nnx.split(model), cqt_BxTxF)
    for head in ("frame", "onset"):
        f32, bf16 = out["float32"][head], out["bfloat16"][head]
        assert f32.dtype == bf16.dtype == jnp.float32  # the heads compute in float32
        assert bool(jnp.all(jnp.isfinite(bf16)))
        f32, bf16 = np.asarray(f32), np.asarray(bf16)
        assert np.max(np.abs(bf16 - f32)) <= 0.15
        assert np.sqrt(np.mean(np.square(bf16 - f32))) <= 0.02
        np.testing.assert_allclose(jax.nn.sigmoid(bf16), jax.nn.sigmoid(f32), atol=0.03)


def test_compute_dtype_is_validated():
    config = transformer.get_config("tiny")
    meta = spec.load_meta(config)
    for name in ("transformer", "cnn_mlp"):
        kwargs = {**CONFIGS[name].get_config("tiny").model, "compute_dtype": "float16"}
        with pytest.raises(ValueError, match=r"config\.model\.compute_dtype='float16'"):
            models.get_model(name, meta=meta, rngs=nnx.Rngs(0), **kwargs)
    assert layers.compute_dtype("bfloat16") == jnp.bfloat16
    assert transformer.get_config().model.compute_dtype == "float32"
    assert cnn_mlp.get_config().model.compute_dtype == "float32"


def test_runs_from_before_compute_dtype_read_as_float32(tmp_path):
    """A stored model section without the field (release 1's shipped model had none) gets
    common.model()'s default; the run's own model fields win over the defaults."""
    shipped = os.path.join(os.path.dirname(files.__file__), "pretrained_model")
    assert files.read_config(shipped).model.compute_dtype == "float32"
    stored = files.config_to_dict(cnn_mlp.get_config("tiny"))
    del stored["model"]["compute_dtype"]
    os.makedirs(tmp_path / "run")
    files.write_json(str(tmp_path / "run" / files.CONFIG_FILE), stored)
    config = files.read_config(str(tmp_path / "run"))
    assert config.model.compute_dtype == "float32"
    assert config.model.time_kernel_frames == stored["model"]["time_kernel_frames"] == 3
    assert tuple(config.model.mlp_dims) == (32,)


@pytest.mark.parametrize("module", [transformer, cnn_mlp])
def test_gpu_variant_validates(module):
    config = module.get_config("gpu")
    run = sections.RunConfig.of(config)
    for processes in (1, 2, 4, 8, 16):
        spec.check(config, processes)
    assert run.model.compute_dtype == "bfloat16"
    assert run.data.batch_size == 256 and run.data.windows_per_chunk > 1
    assert run.optim.lr == pytest.approx(2e-3)  # 5e-4 * sqrt(256 / 16), at the cap
    assert run.data.num_workers == 8
    kwargs = dict(config.model.items())
    abstract = nnx.eval_shape(
        lambda: models.get_model(
            config.model_name, meta=spec.load_meta(config), rngs=nnx.Rngs(0), **kwargs
        )
    )
    assert {x.dtype for x in jax.tree.leaves(nnx.state(abstract, nnx.Param))} == {
        np.dtype(np.float32)
    }


def test_flops_from_cost_analysis_shapes():
    assert flops.flops_from_cost_analysis({"flops": 10.0, "bytes accessed": 3.0}) == 10.0
    assert flops.flops_from_cost_analysis([{"flops": 10.0}, {"flops": 5.0}]) == 15.0
    assert flops.flops_from_cost_analysis(None) is None
    assert flops.flops_from_cost_analysis({"bytes accessed": 3.0}) is None


def test_step_flops_counts_the_whole_step_over_devices():
    """A matmul has 2*M*N*K FLOPs, on one device or split over 4 (each does a quarter);
    on one GPU the 4 devices are that one."""
    m, k, n = 64, 32, 16
    x, w = jnp.ones((m, k)), jnp.ones((k, n))
    matmul = jax.jit(jnp.matmul)
    assert flops.step_flops(matmul, x, w) == 2 * m * k * n
    mesh = parallel.make_mesh(jax.devices()[:4])  # 4 fake CPU devices (conftest); 1 GPU
    x4 = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    w4 = jax.device_put(w, NamedSharding(mesh, PartitionSpec()))
    assert flops.step_flops(matmul, x4, w4) == 2 * m * k * n
    if jax.default_backend() == "cpu":  # a GPU's compiled count misses cuBLAS calls
        # The compiled count: one device's program (a quarter of the rows) x the devices.
        compiled = matmul.lower(x4, w4).compile()
        assert flops.compiled_flops(compiled) == 2 * m * k * n


def test_mfu_against_known_peaks():
    class FakeH100:
        device_kind = "NVIDIA H100 80GB HBM3"

    mfu = flops.model_flop_utilization(494.5e12, 1.0, "bfloat16", [FakeH100()])
    assert mfu == pytest.approx(0.5)
    two = flops.model_flop_utilization(494.5e12, 1.0, jnp.bfloat16, [FakeH100()] * 2)
    assert two == pytest.approx(0.25)
    assert flops.throughput_metrics(494.5e12, 2, 2.0, "bfloat16", [FakeH100()]) == {
        "train/tflops": pytest.approx(494.5),
        "train/mfu": pytest.approx(0.5),
    }
    assert flops.peak_flops_per_second("NVIDIA H100 80GB HBM3", "float32") == 67e12
    assert flops.peak_flops_per_second("TPU v5 lite", "bfloat16") == 197e12
    assert flops.peak_flops_per_second("TPU v4", "float32") is None
    assert flops.peak_flops_per_second("NVIDIA H100 PCIe", "bfloat16") is None
    assert flops.peak_flops_per_second("cpu", "bfloat16") is None


def test_frozen_run_config_builds_a_bf16_model():
    """compute_dtype travels in RunConfig.model like any model field."""
    config = transformer.get_config("tiny")
    config.model.compute_dtype = "bfloat16"
    run = sections.RunConfig.of(config)
    assert isinstance(run.model, ml_collections.FrozenConfigDict)
    model = models.from_config(run, spec.load_meta(run), nnx.Rngs(0))
    assert model.embed.dtype == jnp.bfloat16
