"""E021: a later stage from release 5 that draws from three takes it never heard at once.

E018 found that a GPU stage drawing every window from several takes of the same pieces
beats one take at the same steps, on MAPS' frames most; E020 that rooms' microphones at a
distance halve MAPS' onset lag. Here E020's later stage (release 5's recipe: 4 epochs at
peak lr 2e-4 with the equaliser, from the shipped weights) reads the train splits of three
distant-microphone takes as one (`config.data.extra_train_sizes`): `release_pianos4_far`
(E020's, whose validation split it is tested on), `release_pianos5_far` and
`release_pianos6_far`, the fifth and sixth takes of `release_pianos`' pieces (new rooms,
performances and pianos). Four epochs over the three are three times E020's steps
(10,832); the second point is the control, E020's take alone for as many (12 epochs, 10,836).
  python -m experiments.run E021_far_takes --variant '' \\
      --actions process-train,process-test,train,test --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E020_mic_distance import config as e020

TAKES = ("release_pianos5_far", "release_pianos6_far")  # read with release_pianos4_far


def get_config(arg: str | None = None):
    """E020's later stage ('tiny': on the tiny corpus, for the tests)."""
    config = e020.get_config(arg)
    if arg != "tiny":
        config.data.corpus_size = "release_pianos4_far"
    config.eval.test_dev = False  # the last step, as E019's and E020's dev models were
    return config


def sweep():
    return [
        {"data.extra_train_sizes": TAKES},
        {"num_epochs": 4 * (1 + len(TAKES))},
    ]
