"""E018: E017's GPU stage (the shipped architecture from scratch, batches of 128 windows drawn
inside the jitted step) on several takes of the pieces at once instead of one; then, on the
CPU, E017's later stage on a take it never heard. Release 5 is `takes3` + `:pianos3`.

E017 found that 139,700 steps on one take (`release_pianos`, 1,238 passes over its 4 hours)
lost MAPS frame recall: the frame head learnt how long that take's pianos ring, and four
epochs on a take it had never heard undid it. Here the windows come from `RUNS`' takes: the
same 229 training pieces (`release_pianos`' validation split is held out of every take),
each rendered in other rooms, performances and pianos, so each take is heard a third or a
quarter as often. With the GPU on this machine, `bash scripts/release_gpu.sh` runs it all.
With the device tool (experiments/README.md, E018, has the calls):

    for t in release_pianos release_pianos2 release_variants; do
      python -m jaxnotes.main --config=experiments/E018_gpu_takes/config.py \
          --config.data.corpus_size=$t --action=process-train,process-test
      python -m experiments.E017_gpu_scratch.arrays --out .e018data/$t --corpus-size $t
    done
    # device: E018_gpu_takes/device.sh smoke, then copy (x4), then train 139700
    # then as E017: adopt weights-0.npz (--step 139700) as runs/experiments/E018_gpu_takes/
    # takes3 with this config, test it, and train `:pianos3` from it (--config.init_from).
"""

from experiments.E017_gpu_scratch import config as e017

# The two runs of 2026-11-26 on an H100 (`device.sh train N`, TAKES as here): the takes drawn
# from together, each chunk as likely as any other, and the steps (of 128 windows). takes3:
# release 3's stage-3 corpus, its second take, and the release corpus on other pianos made of
# the samples (E010's `release_variants`); takes4 adds E010's `release_octaves` (performed,
# with octave doublings, on the recorded piano) at half the steps (the device time left).
RUNS = {
    "takes3": (("release_pianos", "release_pianos2", "release_variants"), 139_700),
    "takes4": (
        ("release_pianos", "release_pianos2", "release_variants", "release_octaves"),
        70_000,
    ),
}
TAKES = RUNS["takes3"][0]  # device.sh's default
# Prepared on 2026-11-27 for the next lent GPU, not run yet: takes4's direction (more takes,
# fewer steps) with six takes, keeping `release_pianos4` unheard for the later stage. Since
# E020 (2026-12-08) every take has its rooms' microphones at a distance (the `_far` sizes:
# the same pieces, rooms and labels, the audio later by the direct sound's travel), and so
# has the later stage's (`:pianos4_far`). The calls are in experiments/README.md.
NEXT_RUN = (
    (
        "release_pianos_far",
        "release_pianos2_far",
        "release_pianos3_far",
        "release_pianos5_far",
        "release_pianos6_far",
        "release_variants_far",
    ),
    70_000,
)
NEXT_LATER_STAGE = "pianos4_far"  # e017.LATER_STAGES' name of the take it never heard
# The shipped model (release 5, scripts/release_gpu.sh): this run, then these later stages.
SHIPPED_RUN = "takes3"
SHIPPED = ("pianos3",)


def get_config(arg: str | None = None):
    """E017's: '' is the GPU stage (validated on `release_pianos`' split), a later stage's
    name (e017.LATER_STAGES: E018's is 'pianos3', a take neither run heard) trains on the
    CPU from it."""
    return e017.get_config(arg)


def sweep():
    # Adopted weights, not trained by `experiments.run` (see E017): use --actions test.
    return [{"max_steps": steps} for _, steps in RUNS.values()]
