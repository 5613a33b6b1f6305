"""Short-range transformer over CQT frames (the original project's best model).

cqt_BxTxF -> FrontEnd -> Linear to D -> positional encoding -> `num_layers` pre-LN
blocks (multi-head self-attention restricted to a window of `attention_window_s`,
then an MLP D -> mlp_dim -> D) -> LayerNorm -> frame and onset heads (P logits
each). Works for any T; knows nothing about files or datasets.

Shape legend: B batch, T frames, F CQT bins, P pitches, D width (embed_dim),
H heads, K head width (head_dim), M MLP width (mlp_dim).

Parameter count. With C = 3c front-end channels, k_f = 2*round(freq_kernel_semitones
* bins_per_semitone / 2) + 1 frequency taps, k_t = time_kernel_frames,
F2 = ceil(ceil(n_bins / 2) / 2), A = num_heads * head_dim:
  front end   k_t*k_f*C + C + 3*C*C + C
  embedding   F2*C*D + D
  per layer   4D (two LayerNorms) + 3*D*A + 3A (qkv) + A*D + D (out) + 2*D*M + M + D (MLP)
  'conv' pos  pos_conv_frames*D + D (only when pos_encoding='conv')
  final       2D (LayerNorm) + 2*(D*P + P) (heads)
So it depends on n_bins, bins_per_semitone, n_pitches, c, freq_kernel_semitones,
time_kernel_frames, embed_dim, num_heads * head_dim, mlp_dim, num_layers and
pos_encoding; not on frames_per_second, the attention window, lookahead,
long_range, dropout, compute_dtype or T. The default config (n_bins=384 = 48 bins/octave x 8
octaves, 4 bins/semitone, P=88, c=3) has 1,782,890 parameters, the original's
"1.8M" (it had one 96-way head instead of two 88-way heads).

Positional encoding. 'sinusoidal' uses the original's fixed sinusoids, applied as a
rotation of queries and keys (RoPE) instead of being added to the input: added
absolute encodings would make an output depend on its index within the input, so
a 512-frame eval chunk or a streaming buffer would see positions never seen on
43-frame training windows and streaming would not match offline. 'conv' adds a
depthwise convolution over time (the original found both equally good).

Long range ('long_range', applied to the last block only; the others stay local):
  'none'         every block is local: the output has a bounded receptive field.
  'full'         the last block attends over the whole input.
  'criss_cross'  the last block attends to its local window and to every frame
                 `long_range_stride_s` apart from itself across the whole input
                 (layers.criss_cross_mask). Earlier local blocks summarise each
                 frame's neighbourhood, so this reaches every frame sparsely.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnotes.data import Meta
from jaxnotes.models import layers

POS_ENCODINGS = ("sinusoidal", "conv")
LONG_RANGE = ("none", "full", "criss_cross")
# attend(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK) -> out_BxTxHxK: the mask layout of a block.
AttendFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def window_frames(
    frames_per_second: float, window_s: float, lookahead_s: float | None
) -> tuple[int, int]:
    """(past, future) frames one attention layer sees around each frame.

    The window holds max(1, round(window_s * fps)) frames, the current one included
    (1 s at 43.07 fps: 43 frames, 21 each side when centred). `lookahead_s` None
    centres it (an even window gives the extra frame to the past); a lookahead
    longer than the window is clipped to it.
    """
    total = max(1, round(window_s * frames_per_second))
    if lookahead_s is None:
        future = (total - 1) // 2
    else:
        future = min(round(lookahead_s * frames_per_second), total - 1)
    return total - 1 - future, future


class Attention(nnx.Module):
    """Multi-head self-attention with an explicit mask layout chosen per call."""

    def __init__(
        self, embed_dim: int, num_heads: int, head_dim: int, *, dtype: jnp.dtype, rngs: nnx.Rngs
    ):
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nnx.Linear(embed_dim, 3 * num_heads * head_dim, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(num_heads * head_dim, embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x_BxTxD: jax.Array, attend: AttendFn) -> jax.Array:
        b, t, _ = x_BxTxD.shape
        qkv_BxTx3xHxK = self.qkv(x_BxTxD).reshape(b, t, 3, self.num_heads, self.head_dim)
        q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = (qkv_BxTx3xHxK[:, :, i] for i in range(3))
        out_BxTxHxK = attend(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK)
        return self.out(out_BxTxHxK.reshape(b, t, self.num_heads * self.head_dim))


class Block(nnx.Module):
    """Pre-LN transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        mlp_dim: int,
        dropout: float,
        *,
        dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ):
        self.attn_norm = nnx.LayerNorm(embed_dim, dtype=dtype, rngs=rngs)
        self.attn = Attention(embed_dim, num_heads, head_dim, dtype=dtype, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(embed_dim, dtype=dtype, rngs=rngs)
        self.mlp_in = nnx.Linear(embed_dim, mlp_dim, dtype=dtype, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_dim, embed_dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x_BxTxD: jax.Array, attend: AttendFn) -> jax.Array:
        x_BxTxD = x_BxTxD + self.dropout(self.attn(self.attn_norm(x_BxTxD), attend))
        h_BxTxM = self.dropout(nnx.gelu(self.mlp_in(self.mlp_norm(x_BxTxD))))
        return x_BxTxD + self.dropout(self.mlp_out(h_BxTxM))


class Model(nnx.Module):
    """The short-range transformer; `model(cqt_BxTxF) -> {'frame', 'onset'}` logits_BxTxP."""

    def __init__(
        self,
        *,
        meta: Meta,
        rngs: nnx.Rngs,
        c: int,
        freq_kernel_semitones: float,
        time_kernel_frames: int,
        dropout: float,
        num_layers: int,
        num_heads: int,
        head_dim: int,
        embed_dim: int,
        mlp_dim: int,
        attention_window_s: float,
        attention_lookahead_s: float | None,
        pos_encoding: str,
        pos_conv_frames: int,
        long_range: str,
        long_range_stride_s: float,
        compute_dtype: str,
        block_frames: int = 128,
    ):
        """Builds the model; arguments are the `config.model` fields (their defaults live in
        configs/, the one home of model settings).

        Args:
          meta: data.Meta (n_bins, n_pitches, bins_per_semitone, frames_per_second).
          rngs: parameter and dropout randomness.
          c, freq_kernel_semitones, time_kernel_frames: the front end (layers.FrontEnd).
          dropout: rate after the embedding, attention and MLP.
          num_layers, num_heads, head_dim, embed_dim, mlp_dim: transformer size.
          attention_window_s: span of frames one attention layer sees, current included.
          attention_lookahead_s: how much of that span lies in the future; None:
            half (centred). 0 makes the model causal apart from the front end.
          pos_encoding: 'sinusoidal' (rotary) or 'conv'.
          pos_conv_frames: kernel width of the 'conv' positional encoding.
          long_range: 'none', 'full' or 'criss_cross' (module docstring).
          long_range_stride_s: the 'criss_cross' stride.
          compute_dtype: 'float32' or 'bfloat16', the dtype of activations and matmuls
            (layers.COMPUTE_DTYPES); parameters are float32 and the logits float32 either way.
          block_frames: query block of the linear-memory local attention; changes
            compute layout only, not results (beyond float round-off).
        """
        for field, value in (
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("head_dim", head_dim),
            ("embed_dim", embed_dim),
            ("mlp_dim", mlp_dim),
            ("block_frames", block_frames),
        ):
            layers.require(layers.is_positive_int(value), field, value, "a positive int")
        layers.require(0 <= dropout < 1, "dropout", dropout, "a rate in [0, 1)")
        dtype = layers.compute_dtype(compute_dtype)
        layers.require(pos_encoding in POS_ENCODINGS, "pos_encoding", pos_encoding, POS_ENCODINGS)
        layers.require(long_range in LONG_RANGE, "long_range", long_range, LONG_RANGE)
        layers.require(
            attention_window_s > 0, "attention_window_s", attention_window_s, "seconds > 0"
        )
        layers.require(
            attention_lookahead_s is None or 0 <= attention_lookahead_s,
            "attention_lookahead_s",
            attention_lookahead_s,
            "None (centred) or seconds >= 0",
        )
        layers.require(
            pos_encoding != "sinusoidal" or head_dim % 2 == 0,
            "head_dim",
            head_dim,
            "an even number with pos_encoding='sinusoidal' (rotary pairs features)",
        )
        self.meta = meta
        self.long_range = long_range
        self.rotary = pos_encoding == "sinusoidal"
        self.block_frames = block_frames
        self.past, self.future = window_frames(
            meta.frames_per_second, attention_window_s, attention_lookahead_s
        )
        self.stride = round(long_range_stride_s * meta.frames_per_second)
        layers.require(
            long_range != "criss_cross" or self.stride >= 1,
            "long_range_stride_s",
            long_range_stride_s,
            "at least one frame",
        )
        self.front = layers.FrontEnd(
            meta.n_bins,
            meta.bins_per_semitone,
            c=c,
            freq_kernel_semitones=freq_kernel_semitones,
            time_kernel_frames=time_kernel_frames,
            dtype=dtype,
            rngs=rngs,
        )
        self.embed = nnx.Linear(self.front.out_features, embed_dim, dtype=dtype, rngs=rngs)
        self.embed_dropout = nnx.Dropout(dropout, rngs=rngs)
        self.pos_conv = (
            layers.ConvPositionalEncoding(embed_dim, pos_conv_frames, dtype=dtype, rngs=rngs)
            if pos_encoding == "conv"
            else None
        )
        self.blocks = nnx.List(
            [
                Block(embed_dim, num_heads, head_dim, mlp_dim, dropout, dtype=dtype, rngs=rngs)
                for _ in range(num_layers)
            ]
        )
        self.final_norm = nnx.LayerNorm(embed_dim, dtype=dtype, rngs=rngs)
        # float32 logits whatever the compute dtype (layers.Head).
        self.frame_head = layers.Head(embed_dim, meta.n_pitches, rngs=rngs)
        self.onset_head = layers.Head(embed_dim, meta.n_pitches, rngs=rngs)

    def receptive_field(self) -> tuple[int, int]:
        """(past, future) frames of input an output frame depends on (exact).

        Raises:
          ValueError: with long_range 'full' or 'criss_cross', where an output
            depends on the whole input.
        """
        if self.long_range != "none":
            raise ValueError(
                f"long_range={self.long_range!r}: every output depends on the whole input, "
                "so there is no bounded receptive field (use long_range='none' to stream)"
            )
        past, future = self.front.receptive_field()
        if self.pos_conv is not None:
            past, future = past + self.pos_conv.past, future + self.pos_conv.future
        n = len(self.blocks)
        return past + n * self.past, future + n * self.future

    def _local(self, q_BxTxHxK, k_BxTxHxK, v_BxTxHxK) -> jax.Array:
        return layers.local_attention(
            q_BxTxHxK,
            k_BxTxHxK,
            v_BxTxHxK,
            past=self.past,
            future=self.future,
            block_frames=self.block_frames,
            rotary=self.rotary,
        )

    def _long_range(self, q_BxTxHxK, k_BxTxHxK, v_BxTxHxK) -> jax.Array:
        t = q_BxTxHxK.shape[1]
        if self.long_range == "full":
            mask_TxT = None
        else:
            mask_TxT = layers.criss_cross_mask(t, self.past, self.future, self.stride)
        return layers.dense_attention(q_BxTxHxK, k_BxTxHxK, v_BxTxHxK, mask_TxT, rotary=self.rotary)

    def __call__(self, cqt_BxTxF: jax.Array) -> dict[str, jax.Array]:
        """Frame and onset logits_BxTxP (float32) for cqt_BxTxF (any T >= 1)."""
        x_BxTxD = self.embed_dropout(self.embed(self.front(cqt_BxTxF)))
        if self.pos_conv is not None:
            x_BxTxD = self.pos_conv(x_BxTxD)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            long = i == last and self.long_range != "none"
            x_BxTxD = block(x_BxTxD, self._long_range if long else self._local)
        x_BxTxD = self.final_norm(x_BxTxD)
        return {
            "frame": self.frame_head(x_BxTxD),
            "onset": self.onset_head(x_BxTxD),
        }
