"""Blocks shared by the models: CQT front end, positional encodings, local attention.

Owns the building blocks only: imports nothing from jaxnotes (models pass plain
numbers taken from `data.Meta`) and never touches files or datasets.

Shape legend: B batch, T frames, F CQT bins, P pitches, D width, H heads, K head
width, C channels (or key context in attention), N attention blocks, Q queries per
block.

Mixed precision (`config.model.compute_dtype`, `compute_dtype()` below): parameters are
always stored in float32 (`param_dtype`, so the optimizer and checkpoints are the same
whatever the compute dtype); blocks given `dtype=bfloat16` cast their input and
parameters to it and compute in it, except where precision matters: attention's softmax,
LayerNorm statistics (flax computes them in float32) and the output heads (`Head`), whose
logits are float32 so the loss and metrics are too.

Every block here is translation-equivariant in time (no absolute frame index
reaches an output), and all but the long-range masks are local, so an output
frame depends only on the bounded neighbourhood that a model's
`receptive_field()` reports. Streaming relies on that: a frame computed from a
short buffer equals the same frame computed offline.
"""

import math
import numbers

import jax
import jax.numpy as jnp
from flax import nnx

# Front-end channels per unit of `c` (the original's --c multiplier). With c=3
# this gives 9 channels, which puts the default transformer at the original's
# ~1.8 M parameters.
CHANNELS_PER_C = 3
# Finite stand-in for -inf in attention scores: exp underflows to exactly 0 (so
# masked frames get exactly zero weight and gradient) while a row with every key
# masked (a padding query) gives uniform weights instead of NaN.
MASK_VALUE = -1e9
# Base of the geometric frequency ladder of the sinusoids (Vaswani et al.).
_SINUSOID_BASE = 10_000.0
# config.model.compute_dtype values: the dtype of activations and matmuls.
COMPUTE_DTYPES = ("float32", "bfloat16")


def require(ok: bool, field: str, value: object, expected: str) -> None:
    """Raises a ValueError naming the config field when a model argument is bad.

    Args:
      ok: whether the value is acceptable.
      field: the field name in `config.model`.
      value: the value received.
      expected: what would have been acceptable, in words.
    """
    if not ok:
        raise ValueError(f"config.model.{field}={value!r} is invalid: expected {expected}")


def is_positive_int(value: object) -> bool:
    """True for ints >= 1 (numpy ints included, bools excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def compute_dtype(name: object) -> jnp.dtype:
    """The jnp dtype of `config.model.compute_dtype` (a name in COMPUTE_DTYPES).

    Raises:
      ValueError: naming config.model.compute_dtype, for any other value.
    """
    require(name in COMPUTE_DTYPES, "compute_dtype", name, f"one of {COMPUTE_DTYPES}")
    return jnp.dtype(name)


class Head(nnx.Linear):
    """An output layer that computes in float32 whatever the model's compute dtype.

    x_BxTxD (any float dtype) -> logits_BxTxP float32: the loss (BCE with logits) and the
    metrics (logit >= 0) read these directly, and a logit rounded to bfloat16's 8-bit
    mantissa would move the loss; the layer is D x P, a small part of a model's FLOPs.
    An nnx.Linear (parameters `kernel`, `bias`), so stored weights load unchanged.
    """

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        super().__init__(in_features, out_features, dtype=jnp.float32, rngs=rngs)

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        return super().__call__(x_BxTxD.astype(jnp.float32))


def odd_kernel_bins(span_semitones: float, bins_per_semitone: float) -> int:
    """Odd kernel width in bins, centred, covering +-span/2 semitones."""
    # Odd so the kernel is centred on its bin: a 3-semitone span at 4 bins per
    # semitone gives 13 bins, i.e. +-1.5 semitones (the original's finding that
    # frequency convolutions should see at most 1.5 notes above and below).
    return 2 * round(span_semitones * bins_per_semitone / 2) + 1


def time_padding(kernel_frames: int) -> tuple[int, int]:
    """(past, future) frames a time kernel of this width reaches; also its zero padding."""
    # Even widths lean to the past, which keeps lookahead (streaming latency) small.
    return kernel_frames // 2, (kernel_frames - 1) // 2


class FrontEnd(nnx.Module):
    """Per-frame convolutions over frequency: cqt_BxTxF -> features_BxTxD.

    Two ReLU convolutions, each with stride 2 over frequency: the first spans
    `freq_kernel_semitones` (and optionally `time_kernel_frames` frames), the second
    3 bins at half resolution. With 4 bins per semitone the output has one
    position per semitone. D = ceil(ceil(F / 2) / 2) * CHANNELS_PER_C * c. Time
    edges are zero-padded, so T is preserved. The input is cast to `dtype`, the compute
    dtype of the output (parameters stay float32).
    """

    def __init__(
        self,
        n_bins: int,
        bins_per_semitone: float,
        *,
        c: int,
        freq_kernel_semitones: float,
        time_kernel_frames: int,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        require(is_positive_int(c), "c", c, "a positive integer")
        require(
            freq_kernel_semitones >= 0,
            "freq_kernel_semitones",
            freq_kernel_semitones,
            "a non-negative number of semitones",
        )
        require(
            is_positive_int(time_kernel_frames),
            "time_kernel_frames",
            time_kernel_frames,
            "a positive integer",
        )
        channels = CHANNELS_PER_C * c
        freq_bins = odd_kernel_bins(freq_kernel_semitones, bins_per_semitone)
        self.time_past, self.time_future = time_padding(time_kernel_frames)
        # Symmetric padding r = (k - 1) // 2 with an odd kernel and stride 2 gives
        # ceil(F / 2) outputs for any F, odd included.
        self.conv1 = nnx.Conv(
            1,
            channels,
            kernel_size=(time_kernel_frames, freq_bins),
            strides=(1, 2),
            padding=((self.time_past, self.time_future), (freq_bins // 2, freq_bins // 2)),
            dtype=dtype,
            rngs=rngs,
        )
        self.conv2 = nnx.Conv(
            channels,
            channels,
            kernel_size=(1, 3),
            strides=(1, 2),
            padding=((0, 0), (1, 1)),
            dtype=dtype,
            rngs=rngs,
        )
        self.dtype = dtype
        self.out_features = math.ceil(math.ceil(n_bins / 2) / 2) * channels

    def receptive_field(self) -> tuple[int, int]:
        """(past, future) frames an output frame depends on."""
        return self.time_past, self.time_future

    def __call__(self, cqt_BxTxF: jax.Array) -> jax.Array:
        x_BxTxFxC = nnx.relu(self.conv1(cqt_BxTxF.astype(self.dtype)[..., None]))
        x_BxTxFxC = nnx.relu(self.conv2(x_BxTxFxC))
        b, t, f, c = x_BxTxFxC.shape
        return x_BxTxFxC.reshape(b, t, f * c)


class ConvPositionalEncoding(nnx.Module):
    """x + depthwise conv over time: relative position from the content itself.

    The original found it as good as sinusoids. It adds (k // 2, (k - 1) // 2)
    frames to the receptive field; zero padding at the edges tells frames near a
    window's edge where they are.
    """

    def __init__(
        self,
        features: int,
        kernel_frames: int,
        *,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        require(
            is_positive_int(kernel_frames),
            "pos_conv_frames",
            kernel_frames,
            "a positive integer",
        )
        self.past, self.future = time_padding(kernel_frames)
        # Depthwise (one filter per channel): D * k weights instead of D * D * k.
        self.conv = nnx.Conv(
            features,
            features,
            kernel_size=(kernel_frames,),
            padding=((self.past, self.future),),
            feature_group_count=features,
            dtype=dtype,
            rngs=rngs,
        )

    def receptive_field(self) -> tuple[int, int]:
        """(past, future) frames an output frame depends on."""
        return self.past, self.future

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        return x_BxTxD + self.conv(x_BxTxD)


def sinusoid_angles(positions_T: jax.Array, dim: int) -> jax.Array:
    """Angles_Tx(dim/2) of the fixed sinusoidal encoding: position * base^(-2i/dim)."""
    inv_freq = _SINUSOID_BASE ** (-jnp.arange(dim // 2, dtype=jnp.float32) * 2 / dim)
    return positions_T.astype(jnp.float32)[:, None] * inv_freq[None, :]


def apply_rotary(x_TxHxK: jax.Array, positions_T: jax.Array) -> jax.Array:
    """Rotates query/key features by the sinusoidal angles of their positions.

    The same sinusoids as the original's additive encoding, applied as a rotation
    (RoPE, Su et al. 2021): the dot product of a rotated query and key depends only
    on their position difference, so scores are translation-invariant. Works for
    any leading dims: x is (..., T, H, K) with K even.
    """
    *lead, t, _, k = x_TxHxK.shape
    angles = sinusoid_angles(positions_T, k).reshape((1,) * len(lead) + (t, 1, k // 2))
    sin, cos = jnp.sin(angles), jnp.cos(angles)
    x1, x2 = x_TxHxK[..., : k // 2], x_TxHxK[..., k // 2 :]
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x_TxHxK.dtype)


def band_mask(query_pos: jax.Array, key_pos: jax.Array, past: int, future: int) -> jax.Array:
    """Bool mask, query x key: key within [query - past, query + future]."""
    offset = key_pos[None, :] - query_pos[:, None]
    return (offset >= -past) & (offset <= future)


def local_mask(num_frames: int, past: int, future: int) -> jax.Array:
    """Banded mask_TxT: frame t attends to frames t - past .. t + future."""
    pos_T = jnp.arange(num_frames)
    return band_mask(pos_T, pos_T, past, future)


def criss_cross_mask(num_frames: int, past: int, future: int, stride: int) -> jax.Array:
    """Local band plus every `stride`-th frame counted from the query, over all T.

    Frame t sees t - past .. t + future and every s with (t - s) % stride == 0
    (Child et al. 2019's "strided" pattern). When earlier local layers already
    summarise +-stride/2 frames around each frame, one such layer links every
    frame to the whole sequence at O(T * (W + T / stride)) useful scores.
    """
    pos_T = jnp.arange(num_frames)
    strided_TxT = (pos_T[:, None] - pos_T[None, :]) % stride == 0
    return local_mask(num_frames, past, future) | strided_TxT


def _softmax_attend(
    q_xQxHxK: jax.Array, k_xCxHxK: jax.Array, v_xCxHxK: jax.Array, mask_xQxC: jax.Array | None
) -> jax.Array:
    """Scaled dot-product attention over axis -3 (keys); leading dims are batch-like."""
    scale = 1.0 / math.sqrt(q_xQxHxK.shape[-1])
    scores_xHxQxC = jnp.einsum("...qhk,...chk->...hqc", q_xQxHxK * scale, k_xCxHxK)
    if mask_xQxC is not None:
        # Explicit masking with a finite value; mask has no head axis: add it.
        mask_xHxQxC = jnp.expand_dims(mask_xQxC, -3)
        mask_xHxQxC = jnp.broadcast_to(mask_xHxQxC, scores_xHxQxC.shape)
        scores_xHxQxC = jnp.where(mask_xHxQxC, scores_xHxQxC, MASK_VALUE)
    weights_xHxQxC = jax.nn.softmax(scores_xHxQxC.astype(jnp.float32), axis=-1)
    weights_xHxQxC = weights_xHxQxC.astype(v_xCxHxK.dtype)
    return jnp.einsum("...hqc,...chk->...qhk", weights_xHxQxC, v_xCxHxK)


def dense_attention(
    q_BxTxHxK: jax.Array,
    k_BxTxHxK: jax.Array,
    v_BxTxHxK: jax.Array,
    mask_TxT: jax.Array | None,
    *,
    rotary: bool,
) -> jax.Array:
    """Attention with an explicit T x T mask (None: every frame sees every frame)."""
    if rotary:
        pos_T = jnp.arange(q_BxTxHxK.shape[1])
        q_BxTxHxK, k_BxTxHxK = apply_rotary(q_BxTxHxK, pos_T), apply_rotary(k_BxTxHxK, pos_T)
    mask_1xTxT = None if mask_TxT is None else mask_TxT[None]
    return _softmax_attend(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, mask_1xTxT)


def local_attention(
    q_BxTxHxK: jax.Array,
    k_BxTxHxK: jax.Array,
    v_BxTxHxK: jax.Array,
    *,
    past: int,
    future: int,
    block_frames: int,
    rotary: bool,
) -> jax.Array:
    """Banded attention: frame t sees frames t - past .. t + future, for any T.

    Up to `block_frames` frames this is dense attention with the banded mask. Longer
    inputs are cut into blocks of Q = `block_frames` queries, each scoring only its
    Q + past + future candidate keys, so memory and time grow linearly in T (a
    whole piece of ~25k frames would need GBs of T x T scores). Both layouts give
    the same result up to float round-off. Rotary positions are counted from each
    block's first key, so angles stay small however long the input is.
    """
    b, t, h, k = q_BxTxHxK.shape
    if t <= block_frames:
        return dense_attention(
            q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, local_mask(t, past, future), rotary=rotary
        )
    q_len = block_frames
    n = -(-t // q_len)
    pad_end = n * q_len - t
    q_BxNxQxHxK = jnp.pad(q_BxTxHxK, ((0, 0), (0, pad_end), (0, 0), (0, 0)))
    q_BxNxQxHxK = q_BxNxQxHxK.reshape(b, n, q_len, h, k)
    # Keys of block i are frames i*Q - past .. i*Q + Q - 1 + future: gather them
    # from a copy padded by `past` in front, so index j of block i is frame
    # i*Q - past + j.
    ctx = q_len + past + future
    index_NxC = jnp.arange(n)[:, None] * q_len + jnp.arange(ctx)[None, :]
    kv_pad = ((0, 0), (past, pad_end + future), (0, 0), (0, 0))
    k_BxNxCxHxK = jnp.pad(k_BxTxHxK, kv_pad)[:, index_NxC]
    v_BxNxCxHxK = jnp.pad(v_BxTxHxK, kv_pad)[:, index_NxC]
    key_frame_NxC = index_NxC - past
    # Zero-padded keys (before frame 0 or after frame T-1) must never be seen.
    valid_NxC = (key_frame_NxC >= 0) & (key_frame_NxC < t)
    band_QxC = band_mask(jnp.arange(q_len) + past, jnp.arange(ctx), past, future)
    mask_1xNxQxC = (band_QxC[None] & valid_NxC[:, None, :])[None]
    if rotary:
        q_BxNxQxHxK = apply_rotary(q_BxNxQxHxK, jnp.arange(q_len) + past)
        k_BxNxCxHxK = apply_rotary(k_BxNxCxHxK, jnp.arange(ctx))
    out_BxNxQxHxK = _softmax_attend(q_BxNxQxHxK, k_BxNxCxHxK, v_BxNxCxHxK, mask_1xNxQxC)
    return out_BxNxQxHxK.reshape(b, n * q_len, h, k)[:, :t]
