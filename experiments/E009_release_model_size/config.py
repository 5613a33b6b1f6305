"""E009: what model size buys on real piano, at equal training steps on the release corpus.

The release transformer (4 blocks of width 192, 1.8 M parameters) against a smaller
(2 blocks of width 128) and a larger one (6 blocks of width 256), each trained from scratch
for the 2,000 steps of E008 (its first point is this experiment's middle one). Offline speed
on the 2-core CPU for each: benchmarks/transcribe_speed.py with the same overrides.
  python -m experiments.run E009_release_model_size --variant '' --actions train-val,test \
      --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E008_release_data import config as e008


def get_config(arg=None):
    return e008.get_config(arg)


def sweep():
    return [
        {"model.num_layers": 2, "model.embed_dim": 128, "model.mlp_dim": 512},
        {"model.num_layers": 6, "model.embed_dim": 256, "model.mlp_dim": 1024},
    ]
