"""CNN + MLP baseline: the conv front end, then a per-frame MLP; no attention.

cqt_BxTxF -> layers.FrontEnd (default time span 3 frames) -> `mlp_dims` ReLU layers
with dropout -> frame and onset heads (P logits each). The original reached 25 %
frame accuracy with this kind of model against the transformer's 30 %.

Shape legend: B batch, T frames, F CQT bins, P pitches, D width.

Parameter count. With C = 3c front-end channels, k_f = 2*round(freq_kernel_semitones
* bins_per_semitone / 2) + 1 frequency taps, k_t = time_kernel_frames,
F2 = ceil(ceil(n_bins / 2) / 2) and widths d_0 = F2*C, d_1.. = mlp_dims:
  front end  k_t*k_f*C + C + 3*C*C + C
  MLP        sum over layers of d_i*d_{i+1} + d_{i+1}
  heads      2*(d_last*P + P)
The default config (n_bins=384, 4 bins/semitone, P=88, c=3, time span 3,
mlp_dims=(512, 256)) has 620,052 parameters.
"""

import itertools
from collections.abc import Sequence

import jax
from flax import nnx

from jaxnotes.data import Meta
from jaxnotes.models import layers


class Model(nnx.Module):
    """The baseline; `model(cqt_BxTxF) -> {'frame', 'onset'}` logits_BxTxP."""

    def __init__(
        self,
        *,
        meta: Meta,
        rngs: nnx.Rngs,
        c: int,
        freq_kernel_semitones: float,
        time_kernel_frames: int,
        dropout: float,
        mlp_dims: Sequence[int],
        compute_dtype: str,
    ):
        """Builds the model; arguments are the `config.model` fields (their defaults live in
        configs/, the one home of model settings).

        Args:
          meta: data.Meta (n_bins, n_pitches, bins_per_semitone).
          rngs: parameter and dropout randomness.
          c, freq_kernel_semitones, time_kernel_frames: the front end (layers.FrontEnd).
          dropout: rate after each hidden layer.
          mlp_dims: widths of the hidden layers (may be empty).
          compute_dtype: 'float32' or 'bfloat16', the dtype of activations and matmuls
            (layers.COMPUTE_DTYPES); parameters are float32 and the logits float32 either way.
        """
        layers.require(0 <= dropout < 1, "dropout", dropout, "a rate in [0, 1)")
        layers.require(
            isinstance(mlp_dims, Sequence) and all(layers.is_positive_int(d) for d in mlp_dims),
            "mlp_dims",
            mlp_dims,
            "a sequence of positive ints",
        )
        dtype = layers.compute_dtype(compute_dtype)
        self.meta = meta
        self.front = layers.FrontEnd(
            meta.n_bins,
            meta.bins_per_semitone,
            c=c,
            freq_kernel_semitones=freq_kernel_semitones,
            time_kernel_frames=time_kernel_frames,
            dtype=dtype,
            rngs=rngs,
        )
        dims = [self.front.out_features, *mlp_dims]
        self.hidden = nnx.List(
            [
                nnx.Linear(d_in, d_out, dtype=dtype, rngs=rngs)
                for d_in, d_out in itertools.pairwise(dims)
            ]
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        # float32 logits whatever the compute dtype (layers.Head).
        self.frame_head = layers.Head(dims[-1], meta.n_pitches, rngs=rngs)
        self.onset_head = layers.Head(dims[-1], meta.n_pitches, rngs=rngs)

    def receptive_field(self) -> tuple[int, int]:
        """(past, future) frames of input an output frame depends on (exact)."""
        # Everything after the front end is per frame.
        return self.front.receptive_field()

    def __call__(self, cqt_BxTxF: jax.Array) -> dict[str, jax.Array]:
        """Frame and onset logits_BxTxP (float32) for cqt_BxTxF (any T >= 1)."""
        x_BxTxD = self.front(cqt_BxTxF)
        for linear in self.hidden:
            x_BxTxD = self.dropout(nnx.relu(linear(x_BxTxD)))
        return {"frame": self.frame_head(x_BxTxD), "onset": self.onset_head(x_BxTxD)}
