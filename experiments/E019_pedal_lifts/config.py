"""E019: keys let go early under the sustain pedal, in a later stage from release 5.

Under the pedal a key's release makes no sound: the damper falls at pedal up whenever the
key came up. The corpus' performances and textures hold every key for its written length,
so wherever the pedal sustains a note the labels say the key is still down, and the frame
head learns that a sustained sound is a held key. Pianists lift their fingers under the
pedal, and MAPS labels the keys (its README: press to release, not extended by the pedal).
`release_pianos4_lifted` is `release_pianos4` (a take of the pieces release 5 never heard)
with some keys let go early where the pedal holds them (`performance.lift_under_pedal`, a
piece's share drawn in 0.3-0.9): the same audio, only those keys' labels end earlier. Both
points train release 5's later-stage recipe (4 epochs at peak lr 2e-4 with the equaliser,
E017's `:pianos4`) from the shipped weights; the first is the control.
  python -m experiments.run E019_pedal_lifts --variant '' \\
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E017_gpu_scratch import config as e017


def get_config(arg: str | None = None):
    """E017's `:pianos4` later stage from the shipped model; 'tiny': on the tiny corpus."""
    if arg not in (None, "", "tiny"):
        raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
    config = e017.get_config("tiny_pianos4" if arg == "tiny" else "pianos4")
    config.init_from = "pretrained"
    return config


def sweep():
    return [
        {"data.corpus_size": "release_pianos4"},
        {"data.corpus_size": "release_pianos4_lifted"},
    ]
