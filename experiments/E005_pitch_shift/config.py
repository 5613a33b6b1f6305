"""E005: pitch-shift augmentation (ICASSP 2018: +-5 semitones helped MusicNet models).

Shifts move CQT bins and labels together by whole semitones; the jitter moves the CQT
alone by up to one bin (a quarter semitone at 48 bins per octave).
  python -m experiments.run E005_pitch_shift
"""

from configs import transformer


def get_config(arg=None):
    return transformer.get_config(arg)


def sweep():
    return [
        {"augment.pitch_shift_semitones": 0},
        {"augment.pitch_shift_semitones": 5},
        {"augment.pitch_shift_semitones": 5, "augment.pitch_jitter_bins": 1},
    ]
