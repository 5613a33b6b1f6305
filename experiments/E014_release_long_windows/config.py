"""E014: training windows as long as the receptive field, in a fourth stage from release 3.

The shipped recipe trains on 1-second windows (`data.batch_seconds=1`, the original
project's default) while a frame's output depends on +-1.95 s of input (4 layers of +-0.5 s
attention): in training no frame ever sees its whole receptive field, and frames near a
window's edges see zeros, while inference (exact windows) always gives the full context.
The point trains 4 more epochs from stage 3 (runs/release-stage3) on `release_pianos2` at
stage 3's schedule, as E012 does, with 4-second windows in batches of 4 (the same frames a
step); E012 (1-second windows, batches of 16) is its control. Run from the repository root:
  python -m experiments.run E014_release_long_windows --variant stage3 \
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E012_release_stage4 import config as e012

# E012's stage: 4 more epochs from runs/release-stage3 at stage 3's schedule.
get_config = e012.get_config


def sweep():
    return [
        {"data.corpus_size": "release_pianos2", "data.batch_seconds": 4.0, "data.batch_size": 4}
    ]
