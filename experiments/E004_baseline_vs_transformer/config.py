"""E004: the CNN + MLP baseline against the short-range transformer, and the time span.

Original findings: 25 % (CNN + MLP) vs 30 % (transformer) exact-frame accuracy; "the
temporal part of the convolution doesn't seem to help as much". This experiment runs the
baseline with time spans 1 and 3; the transformer is E001's sinusoidal point.
  python -m experiments.run E004_baseline_vs_transformer
"""

from configs import cnn_mlp


def get_config(arg=None):
    return cnn_mlp.get_config(arg)


def sweep():
    return [{"model.time_kernel_frames": 1}, {"model.time_kernel_frames": 3}]
