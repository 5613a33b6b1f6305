"""E002: how far should attention reach?

Original finding: "self-attention over short time range (1s) improves accuracy from 25 %
(CNN + MLP) to 30 %", and "linear layers or long-range convolutions w.r.t. time are useless".
Windows of 0.25-2 s, and the long-range options (full sequence, criss-cross).
  python -m experiments.run E002_attention_window
"""

from configs import transformer


def get_config(arg=None):
    return transformer.get_config(arg)


def sweep():
    windows = [{"model.attention_window_s": w} for w in (0.25, 0.5, 1.0, 2.0)]
    return windows + [{"model.long_range": "full"}, {"model.long_range": "criss_cross"}]
