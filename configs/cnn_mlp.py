"""CNN + MLP baseline: convolutions over frequency, then a per-frame MLP.

  python -m jaxnotes.main --config=configs/cnn_mlp.py --workdir=runs/cnn_mlp --action=train-val
Main job on the default corpus (2-core CPU, about 2 minutes of training):
  python -m jaxnotes.main --config=configs/cnn_mlp.py:quick --workdir=runs/main/cnn_mlp \
      --action=process-train,process-test,train-val,test
  expected on its test split: frame AP 0.896, frame F1 0.827, note onset F1 0.573.
Tests and smoke checks: `configs/cnn_mlp.py:tiny`.
On a GPU or TPU, `configs/cnn_mlp.py:gpu` (configs/common.py apply_variant): batch 256 with
the learning rate scaled to it, bfloat16 compute (float32 parameters), 8 grain workers:
  python -m jaxnotes.main --config=configs/cnn_mlp.py:gpu --workdir=runs/cnn_mlp_gpu \
      --action=train-val --config.data.musicnet_dir=/data/musicnet
"""

from configs import common


def get_config(arg: str | None = None):
    config = common.get_base_config()
    config.model_name = "cnn_mlp"
    m = config.model
    m.time_kernel_frames = 3  # the original found small time spans help a bit
    m.mlp_dims = (512, 256)
    config = common.apply_variant(config, arg)
    if arg == "tiny":
        m.c = 1
        m.mlp_dims = (32,)
    return config
