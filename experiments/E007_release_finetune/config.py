"""E007: what a second, short training stage on the release corpus buys on real recordings.

Both points start from the release model (stage 1, `config.init_from`: the workdir of
`bash scripts/release.sh`, runs/release by default) and train 4 more epochs on the release
corpus at a lower peak rate (configs/release.py:finetune): one as it is, one with the random
equaliser over frequency (`augment.eq_db`). The first point separates "more training" from
"the equaliser". A third trains the same 4 epochs on `release_variants` (E010: the sampled
piano's pieces played by other pianos made of its samples), to see other pianos at the
converged end of training rather than after E010's 2,000 steps; the fourth adds the
equaliser to it: that is the shipped model's stage 2 (release 2, scripts/release.sh). Run
from the repository root after stage 1:
  python -m experiments.run E007_release_finetune --variant finetune --actions train-val,test \
      --score ../shared/realdev/maps_enstdk_am
"""

from configs import release

STAGE_ONE = "runs/release"


def get_config(arg=None):
    return release.continued(arg, STAGE_ONE)


def sweep():
    return [
        {"augment.eq_db": 0.0},
        {"augment.eq_db": 8.0},
        {"data.corpus_size": "release_variants"},
        {"data.corpus_size": "release_variants", "augment.eq_db": 8.0},
    ]
