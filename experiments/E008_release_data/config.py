"""E008: what each source of the release corpus buys, on real piano and on the default test.

Every point trains the release model from scratch for the same 2,000 steps (the cosine
schedule ending there) on the release corpus with one source left out of the train split
(`config.data.train_exclude`, matched against the corpus's musicnet_metadata.csv; the
records are shared, validation and test are untouched):
  - nothing left out (the reference);
  - the 60 generated piano textures ('composer=generated', about 1 h);
  - everything on the sampled Salamander piano, scores and textures ('soundfont=salamander',
    about 2.3 h): piano then comes from the General MIDI soundfonts alone;
  - everything rendered with the soundfonts ('source=fluidsynth', about 2 h): the sampled
    piano alone, no other instrument.
A last point repeats the reference with other seeds, to show what one seed moves.
The simulated room cannot be separated this way: 85% of the pieces are in a room, so
leaving them out mostly measures less data; that needs a dry render of the same pieces.
  python -m experiments.run E008_release_data --variant '' --actions train-val,test \
      --score ../shared/realdev/maps_enstdk_am
(after `--action=process-train,process-test` of configs/release.py, or scripts/release.sh).
"""

from configs import release

STEPS = 2000


def get_config(arg=None):
    config = release.get_config(arg)
    config.max_steps = STEPS
    return config


def sweep():
    return [
        {"data.train_exclude": ()},
        {"data.train_exclude": ("composer=generated",)},
        {"data.train_exclude": ("soundfont=salamander",)},
        {"data.train_exclude": ("source=fluidsynth",)},
        # The reference again with other seeds (initialisation, dropout, data order): how far
        # one seed moves the scores, to read the differences above against.
        {"data.train_exclude": (), "seed": 1, "data.shuffle_seed": 1},
    ]
