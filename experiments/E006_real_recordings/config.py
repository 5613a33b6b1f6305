"""E006: what makes a model trained on rendered audio transcribe real recordings.

The normalisation and augmentation half of the question, on the default corpus at the
`quick` schedule: the first main job's recipe (fixed-reference dB, no augmentation) against
the running-reference dB with pitch-shift and gain augmentation (today's defaults). The data
half (sampled piano, textures, acoustics, more music, longer training) is the release recipe,
configs/release.py. Score every point on a folder of real recordings too:
  python -m experiments.run E006_real_recordings --score ../shared/realdev/maps_enstdk_am
"""

from configs import transformer


def get_config(arg=None):
    return transformer.get_config(arg)


def sweep():
    return [
        {"cqt.normalisation": "db", "augment.pitch_shift_semitones": 0, "augment.gain_db": 0.0},
        {"cqt.normalisation": "db", "augment.gain_db": 20.0},
        {"cqt.normalisation": "db_relative"},
    ]
