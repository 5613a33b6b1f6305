"""E011: a third training stage on more pianos, voiced further from the recording.

Every point starts from release 2 (stage 2's workdir, `config.init_from`: runs/release-stage2,
as `bash scripts/release.sh` leaves it) and train 4 more epochs at peak lr 2e-4 with the
random equaliser (configs/release.py:stage3). The first is stage 3: `release_pianos`,
where 3 scores in 5 (not 1 in 3) are on the sampled piano, performed (dynamics, rubato,
sustain pedal: E010's performances), and every sampled-piano piece is played by a 'wide'
voicing (samples up to 6 semitones away and shifted across the keyboard, unisons tuned
apart, the note jitter drawn per piece; voicing.py). The second stays on stage 2's own
corpus, `release_variants`: what 4 more epochs of the same pianos buy. The third is
`release_pianos` with stage 2's narrow voicings (`release_pianos_narrow`): what the wide
ones add. Run from the repository root after stage 2:
  python -m experiments.run E011_release_stage3 --variant stage3 \
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from configs import release

STAGE_TWO = "runs/release-stage2"


def get_config(arg=None):
    return release.continued(arg, STAGE_TWO)


def sweep():
    return [
        {"data.corpus_size": "release_pianos"},
        {"data.corpus_size": "release_variants"},
        {"data.corpus_size": "release_pianos_narrow"},
    ]
