"""E013: a fourth training stage on stage 3's pieces played by pianos of other timbres.

The point starts from stage 3 (runs/release-stage3, as `bash scripts/release.sh` leaves it)
and trains 4 more epochs at peak lr 2e-4 with the random equaliser (stage 3's schedule,
configs/release.py:stage3) on `release_timbres`: `release_pianos`' pieces, rooms and
performances, every sampled-piano piece on its wide piano with the partials rebalanced
(voicing.py's 'timbre': harmonics 2-16 within +-6 dB of the fundamental, drawn for the bass
and the treble). E012 (4 more epochs on a second take of `release_pianos`: new rooms,
performances and wide pianos) is the control for "more steps on new audio of the same
kind". Run from the repository root after stage 3:
  python -m experiments.run E013_release_timbres --variant stage3 \
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E012_release_stage4 import config as e012

# E012's stage: 4 more epochs from runs/release-stage3 at stage 3's schedule.
get_config = e012.get_config


def sweep():
    return [{"data.corpus_size": "release_timbres"}]
