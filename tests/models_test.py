"""Tests of the models (jaxnotes/models): shapes, sizes, locality, dropout, registry."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import cnn_mlp as cnn_mlp_config
from configs import transformer as transformer_config
from jaxnotes import models
from jaxnotes.data import Meta
from jaxnotes.models import layers

FPS = 22050 / 512
# The default config's inputs: 48 bins/octave x 8 octaves, MIDI 21..108.
FULL_META = Meta(n_bins=384, n_pitches=88, min_pitch=21, frames_per_second=FPS)
# Small inputs keep CPU tests fast: 4 octaves at 2 bins per semitone.
SMALL_META = Meta(n_bins=96, n_pitches=88, min_pitch=21, frames_per_second=FPS, bins_per_semitone=2)
CONFIGS = {"cnn_mlp": cnn_mlp_config, "transformer": transformer_config}


pytestmark = pytest.mark.usefixtures("fast_compiles")


def _kwargs(name, variant=None, **overrides):
    return {**CONFIGS[name].get_config(variant).model.to_dict(), **overrides}


def _build(name, meta=SMALL_META, variant="tiny", **overrides):
    kwargs = _kwargs(name, variant, **overrides)
    model = models.get_model(name, meta=meta, rngs=nnx.Rngs(0), **kwargs)
    model.eval()
    return model


@functools.partial(jax.jit, static_argnums=0)
def _forward_jit(graphdef, state, cqt_BxTxF):
    return nnx.merge(graphdef, state)(cqt_BxTxF)


def _forward(model, cqt_BxTxF):
    """model(cqt_BxTxF), compiled once per model structure and shape (eval mode only)."""
    return _forward_jit(*nnx.split(model), cqt_BxTxF)


def _num_params(model):
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _abstract(name, meta=FULL_META, **overrides):
    kwargs = _kwargs(name, **overrides)
    return nnx.eval_shape(lambda: models.get_model(name, meta=meta, rngs=nnx.Rngs(0), **kwargs))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _input_gradient(graphdef, state, cqt_1xTxF, t):
    def output_at_t(cqt_1xTxF):
        out = nnx.merge(graphdef, state)(cqt_1xTxF)
        # Random weights over pitches so no two contributions can cancel exactly.
        w_P = jax.random.normal(jax.random.key(1), out["frame"].shape[-1:])
        return jnp.sum((out["frame"][0, t] + out["onset"][0, t]) * w_P)

    return jax.grad(output_at_t)(cqt_1xTxF)


def _influence(model, num_frames, t):
    """Bool per input frame: does output frame t depend on it (nonzero gradient)?

    Compared exactly: outside the receptive field the gradient is structurally 0 (masked
    out, not small), on any machine; inside, random weights keep it away from 0.
    """
    cqt_1xTxF = jax.random.normal(jax.random.key(0), (1, num_frames, model.meta.n_bins))
    grad_1xTxF = _input_gradient(*nnx.split(model), cqt_1xTxF, t)
    return np.asarray(jnp.any(grad_1xTxF[0] != 0, axis=-1))


def _expected(num_frames, t, past, future):
    frames_T = np.arange(num_frames)
    return (frames_T >= t - past) & (frames_T <= t + future)


@pytest.mark.parametrize("name", ["cnn_mlp", "transformer"])
@pytest.mark.parametrize("num_frames", [1, 43, 130])
def test_output_shapes_tiny(name, num_frames):
    """Tiny models give frame and onset logits_BxTxP for any T, odd and > block size."""
    model = _build(name)
    out = _forward(model, jnp.zeros((3, num_frames, SMALL_META.n_bins)))
    assert set(out) == {"frame", "onset"}
    for logits_BxTxP in out.values():
        assert logits_BxTxP.shape == (3, num_frames, 88)
        assert logits_BxTxP.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(logits_BxTxP)))


@pytest.mark.parametrize("name", ["cnn_mlp", "transformer"])
@pytest.mark.parametrize("num_frames", [43, 37, 512])
def test_output_shapes_full_size(name, num_frames):
    """Default-size models map B x T x 384 to B x T x 88 (abstract: no FLOPs)."""
    model = _abstract(name)
    graphdef, state = nnx.split(model)
    cqt = jax.ShapeDtypeStruct((16, num_frames, 384), jnp.float32)
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, cqt)
    assert {k: v.shape for k, v in out.items()} == {
        "frame": (16, num_frames, 88),
        "onset": (16, num_frames, 88),
    }


def test_golden_parameter_counts():
    """Default sizes are the documented ones (transformer ~ the original's 1.8M).

    If you changed an architecture on purpose, update these numbers and the
    formulas in the model docstrings.
    """
    assert _num_params(_abstract("transformer")) == 1_782_890
    assert _num_params(_abstract("cnn_mlp")) == 620_052


@pytest.mark.parametrize(
    "n_bins, bps, c, kt, pos",
    [(384, 4, 3, 1, "sinusoidal"), (97, 2, 2, 4, "conv"), (130, 3, 1, 3, "sinusoidal")],
)
def test_parameter_count_formula(n_bins, bps, c, kt, pos):
    """The documented transformer parameter formula holds off the default sizes too."""
    meta = Meta(
        n_bins=n_bins, n_pitches=12, min_pitch=0, frames_per_second=FPS, bins_per_semitone=bps
    )
    d, a, m, layers_n, pos_k = 24, 16, 40, 2, 5
    model = _abstract(
        "transformer",
        meta=meta,
        c=c,
        time_kernel_frames=kt,
        pos_encoding=pos,
        embed_dim=d,
        num_heads=2,
        head_dim=a // 2,
        mlp_dim=m,
        num_layers=layers_n,
        pos_conv_frames=pos_k,
    )
    ch, kf = 3 * c, 2 * round(3.0 * bps / 2) + 1
    f2 = math.ceil(math.ceil(n_bins / 2) / 2)
    expected = (
        (kt * kf * ch + ch + 3 * ch * ch + ch)
        + (f2 * ch * d + d)
        + layers_n * (4 * d + 3 * d * a + 3 * a + a * d + d + 2 * d * m + m + d)
        + (pos_k * d + d if pos == "conv" else 0)
        + 2 * d
        + 2 * (d * 12 + 12)
    )
    assert _num_params(model) == expected


@pytest.mark.parametrize(
    "overrides, rf",
    [
        # Centred: 2 layers x 21 frames each side, dense and blocked attention.
        (dict(block_frames=1024), (42, 42)),
        (dict(block_frames=16), (42, 42)),
        # Lookahead 4 frames per layer, plus the front end's and the conv's spans.
        (dict(attention_lookahead_s=0.1, time_kernel_frames=3, pos_encoding="conv"), (79, 11)),
        (dict(attention_lookahead_s=0.0), (84, 0)),  # causal
    ],
)
def test_transformer_attention_is_local(overrides, rf):
    """Output frame t depends on exactly the frames receptive_field() reports, no others."""
    model = _build("transformer", num_layers=2, **{"block_frames": 16, **overrides})
    assert model.receptive_field() == rf
    num_frames, t = 140, 90
    influence_T = _influence(model, num_frames, t)
    np.testing.assert_array_equal(influence_T, _expected(num_frames, t, *rf))


@pytest.mark.parametrize("time_kernel_frames, rf", [(1, (0, 0)), (3, (1, 1)), (4, (2, 1))])
def test_cnn_mlp_receptive_field(time_kernel_frames, rf):
    """The baseline's output frame depends on exactly its front end's time span."""
    model = _build("cnn_mlp", time_kernel_frames=time_kernel_frames)
    assert model.receptive_field() == rf
    np.testing.assert_array_equal(_influence(model, 20, 9), _expected(20, 9, *rf))


def test_cropped_input_matches_whole_input(float_tol):
    """A frame computed from a buffer holding its receptive field equals the offline one.

    Streaming relies on this: no absolute positions, blocked == dense attention. Equal up to
    float32 round-off (tests/conftest.py `float_tol`), not bit for bit: the shapes differ.
    """
    model = _build(
        "transformer", num_layers=2, attention_lookahead_s=0.2, pos_encoding="sinusoidal"
    )
    past, future = model.receptive_field()
    cqt_1xTxF = jax.random.normal(jax.random.key(3), (1, 300, SMALL_META.n_bins))
    whole = _forward(model, cqt_1xTxF)["frame"]
    start, stop = 150, 200
    part = _forward(model, cqt_1xTxF[:, start - past : stop + future])["frame"]
    np.testing.assert_allclose(
        part[:, past : past + stop - start], whole[:, start:stop], **float_tol
    )


def test_full_long_range_reaches_every_frame():
    """long_range='full': the last block sees the whole input, far beyond the window."""
    model = _build("transformer", num_layers=2, long_range="full")
    assert _influence(model, 200, 0).all()
    with pytest.raises(ValueError, match="long_range"):
        model.receptive_field()


def test_criss_cross_reaches_strided_far_frames():
    """long_range='criss_cross' with one block: the local window plus every stride-th frame."""
    model = _build("transformer", num_layers=1, long_range="criss_cross", long_range_stride_s=0.5)
    stride = round(0.5 * FPS)
    num_frames, t = 200, 30
    frames_T = np.arange(num_frames)
    expected_T = _expected(num_frames, t, 21, 21) | ((t - frames_T) % stride == 0)
    np.testing.assert_array_equal(_influence(model, num_frames, t), expected_T)
    assert expected_T[num_frames - 1 - (num_frames - 1 - t) % stride]  # a far frame is seen
    # Two blocks: the earlier local block fills the gaps, so every frame is reached.
    deep = _build("transformer", num_layers=2, long_range="criss_cross")
    assert _influence(deep, num_frames, t).all()


def test_criss_cross_mask_rows():
    """Mask row t is the band t-past..t+future plus every frame s with (t - s) % stride == 0."""
    mask_TxT = np.asarray(layers.criss_cross_mask(30, 2, 1, 7))
    assert np.flatnonzero(mask_TxT[10]).tolist() == [3, 8, 9, 10, 11, 17, 24]
    assert np.array_equal(np.asarray(layers.local_mask(30, 2, 1))[10].nonzero()[0], [8, 9, 10, 11])


def test_blocked_attention_matches_dense(float_tol):
    """The linear-memory blocked layout gives the dense banded result, edges included.

    Up to float32 round-off (`float_tol`): the two layouts sum in other orders.
    """
    kwargs = dict(num_layers=2, attention_lookahead_s=0.1)
    cqt_2xTxF = jax.random.normal(jax.random.key(4), (2, 101, SMALL_META.n_bins))
    dense = _forward(_build("transformer", block_frames=1024, **kwargs), cqt_2xTxF)
    blocked = _forward(_build("transformer", block_frames=16, **kwargs), cqt_2xTxF)
    for key in ("frame", "onset"):
        np.testing.assert_allclose(blocked[key], dense[key], **float_tol)


@pytest.mark.parametrize("name", ["cnn_mlp", "transformer"])
def test_dropout_follows_train_and_eval(name):
    """eval(): repeated calls are identical; train(): dropout changes the output.

    Exact: the same compiled function on the same input and machine must repeat itself.
    """
    model = _build(name, dropout=0.5)
    cqt_2xTxF = jax.random.normal(jax.random.key(5), (2, 20, SMALL_META.n_bins))
    call = nnx.jit(lambda model, cqt_BxTxF: model(cqt_BxTxF)["frame"])
    np.testing.assert_array_equal(call(model, cqt_2xTxF), call(model, cqt_2xTxF))
    model.train()
    # The dropout RNG streams advance between calls, so masks differ.
    assert not np.allclose(call(model, cqt_2xTxF), call(model, cqt_2xTxF))
    model.eval()
    np.testing.assert_array_equal(call(model, cqt_2xTxF), call(model, cqt_2xTxF))


@pytest.mark.parametrize("name", ["cnn_mlp", "transformer"])
def test_pitch_classes_give_twelve_outputs(name):
    """only_note_names: the heads have 12 outputs (P comes from meta, not a constant)."""
    meta = Meta(
        n_bins=96,
        n_pitches=12,
        min_pitch=21,
        frames_per_second=FPS,
        only_note_names=True,
        bins_per_semitone=2,
    )
    out = _forward(_build(name, meta=meta), jnp.zeros((1, 7, 96)))
    assert out["frame"].shape == out["onset"].shape == (1, 7, 12)


def test_no_implicit_rank_promotion():
    """Models run under jax_numpy_rank_promotion='raise' (the project's test setting)."""
    cqt = jax.ShapeDtypeStruct((2, 20, SMALL_META.n_bins), jnp.float32)
    variants = [
        ("cnn_mlp", {}),
        ("transformer", dict(pos_encoding="conv")),
        ("transformer", dict(num_layers=2, block_frames=8, long_range="criss_cross")),
        ("transformer", dict(long_range="full")),
    ]
    with jax.numpy_rank_promotion("raise"):
        for name, overrides in variants:
            # Tracing is enough: rank promotion is checked when ops are staged.
            graphdef, state = nnx.split(_abstract(name, meta=SMALL_META, **overrides))
            jax.eval_shape(lambda s, x, g=graphdef: nnx.merge(g, s)(x), state, cqt)


def test_registry_errors_are_clear():
    """Unknown models, unknown fields and bad values name what to fix."""
    with pytest.raises(ValueError, match=r"unknown model 'rnn'.*cnn_mlp.*transformer"):
        models.get_model("rnn", meta=SMALL_META, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"config\.model\.foo not used by model 'cnn_mlp'"):
        models.get_model("cnn_mlp", meta=SMALL_META, rngs=nnx.Rngs(0), foo=1)
    with pytest.raises(ValueError, match=r"config\.model\.pos_encoding='learned'"):
        _build("transformer", pos_encoding="learned")
    with pytest.raises(ValueError, match=r"config\.model\.long_range='global'"):
        _build("transformer", long_range="global")
    with pytest.raises(ValueError, match=r"config\.model\.mlp_dims"):
        _build("cnn_mlp", mlp_dims=(32, 0))
    with pytest.raises(ValueError, match=r"config\.model\.head_dim=7"):
        _build("transformer", head_dim=7)
    assert "attention_lookahead_s" in models.model_fields("transformer")
