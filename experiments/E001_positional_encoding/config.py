"""E001: sinusoidal positional encoding vs a 1-D convolution over time.

Original finding: "sinusoidal positional encoding performs the same as a 1d convolution".
  python -m experiments.run E001_positional_encoding
"""

from configs import transformer


def get_config(arg=None):
    return transformer.get_config(arg)


def sweep():
    return [{"model.pos_encoding": "sinusoidal"}, {"model.pos_encoding": "conv"}]
