"""Short-range transformer (the original project's best model), full size.

Full-size run, as a user would launch it on real MusicNet with a GPU:
  python -m jaxnotes.main --config=configs/transformer.py --workdir=runs/transformer \
      --action=train-val --config.data.musicnet_dir=/data/musicnet
Main job on the default corpus (2-core CPU, about 6 minutes of training):
  python -m jaxnotes.main --config=configs/transformer.py:quick --workdir=runs/main/transformer \
      --action=process-train,process-test,train-val,test
  expected on its test split: frame AP 0.948, frame F1 0.881, note onset F1 0.769.
Tests and smoke checks: `configs/transformer.py:tiny`.
On a GPU or TPU, `configs/transformer.py:gpu` (configs/common.py apply_variant): batch 256 with
the learning rate scaled to it, bfloat16 compute (float32 parameters), 8 grain workers:
  python -m jaxnotes.main --config=configs/transformer.py:gpu --workdir=runs/transformer_gpu \
      --action=train-val --config.data.musicnet_dir=/data/musicnet
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None):
    config = common.get_base_config()
    config.model_name = "transformer"
    m = config.model
    m.num_layers = 4
    m.num_heads = 4
    m.head_dim = 32
    m.embed_dim = 192
    m.mlp_dim = 768
    m.attention_window_s = 1.0  # each frame attends to frames within +-0.5 s
    # Part of that window in the future; None: half (centred). Smaller = lower
    # streaming latency; 0 makes attention causal.
    m.attention_lookahead_s = ml_collections.config_dict.placeholder(float)
    m.pos_encoding = "sinusoidal"  # 'sinusoidal' | 'conv'
    m.pos_conv_frames = 5  # kernel width (frames) of the 'conv' positional encoding
    m.long_range = "none"  # 'none' | 'full' | 'criss_cross'
    m.long_range_stride_s = 0.5  # 'criss_cross': the last block also sees frames this far apart
    config = common.apply_variant(config, arg)
    if arg == "tiny":
        m.num_layers = 1
        m.num_heads = 2
        m.head_dim = 8
        m.embed_dim = 16
        m.mlp_dim = 32
        m.c = 1
    return config
