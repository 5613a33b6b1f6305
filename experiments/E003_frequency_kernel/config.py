"""E003: frequency span of the front-end convolution.

Original finding: "convolutions w.r.t. frequency must include at most 1.5 notes above/below"
(a span of 3 semitones). Spans of 1.5-12 semitones.
  python -m experiments.run E003_frequency_kernel
"""

from configs import transformer


def get_config(arg=None):
    return transformer.get_config(arg)


def sweep():
    return [{"model.freq_kernel_semitones": s} for s in (1.5, 3.0, 6.0, 12.0)]
