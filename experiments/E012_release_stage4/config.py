"""E012: a fourth training stage, a second take of stage 3's pieces.

The point starts from stage 3 (E011's `release_pianos` point, `config.init_from`:
runs/release-stage3, as `bash scripts/release.sh` leaves it) and trains 4 more epochs at
peak lr 2e-4 with the random equaliser (stage 3's schedule, configs/release.py:stage3) on
`release_pianos2`: the same pieces as `release_pianos`, each in another room, performance
and wide piano (`SizePlan.take`). E011's second point (4 more epochs of the same corpus)
is the control for "more steps". Run from the repository root after stage 3:
  python -m experiments.run E012_release_stage4 --variant stage3 \
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from configs import release

STAGE_THREE = "runs/release-stage3"


def get_config(arg=None):
    return release.continued(arg, STAGE_THREE)


def sweep():
    return [{"data.corpus_size": "release_pianos2"}]
