"""E017: the shipped architecture trained from scratch on a lent GPU, 7x and 39x release 3's
windows; release 4 is its long run plus a CPU stage on a second take.

Is the model held back by compute? Release 3 saw 462k one-second windows in all (28,864
steps of 16) on the 2-core CPU. Here the same 4 x 192 transformer trains from random weights
on `release_pianos` (stage 3's corpus, with its equaliser) in steps of 128 windows for as
long as a fixed time on one GPU allows, the whole split held in GPU memory and every window
drawn and augmented inside the jitted step (`device_train.py`). A later stage
(`LATER_STAGES`, `:pianos2`) then trains 4 epochs on another take of the pieces, on the CPU.
With the GPU on this machine, `bash scripts/release_gpu.sh` runs it all. With the device
tool (experiments/README.md, E017, has the calls):
    python -m jaxnotes.main --config=experiments/E017_gpu_scratch/config.py \
        --workdir=runs/experiments/E017_gpu_scratch/run1 --action=process-train,process-test
    python -m experiments.E017_gpu_scratch.arrays --out .e017data   # -> 2 parts of ~50 MiB
    # device: experiments/E017_gpu_scratch/device.sh stage, then device.sh train 490
    python -m jaxnotes.train.adopt --weights weights-1.npz --step 139700 \
        --workdir=runs/experiments/E017_gpu_scratch/run1 --config=experiments/E017_gpu_scratch/config.py
    python -m jaxnotes.main --config=experiments/E017_gpu_scratch/config.py \
        --workdir=runs/experiments/E017_gpu_scratch/run1 --action=test
    python -m jaxnotes.main --config=experiments/E017_gpu_scratch/config.py:pianos2 \
        --workdir=runs/experiments/E017_gpu_scratch/run1_pianos2 \
        --config.init_from=runs/experiments/E017_gpu_scratch/run1 --action=train-val,test
"""

from configs import release

BATCH_SIZE = 128  # windows a step (release: 16)
LR = 1e-3  # peak (release stage 1: 5e-4 at batch 16)
WARMUP_STEPS = 1000
# Later stages, on the CPU: 4 epochs more at peak lr 2e-4 with the equaliser (configs/
# release.py's stage schedule) on another take of the pieces, from the stage before
# (--config.init_from); tested on their dev model. variant -> corpus size.
LATER_STAGES = {
    "pianos2": "release_pianos2",
    "timbres": "release_timbres",
    "pianos3": "release_pianos3",  # E018's
    "pianos4": "release_pianos4",
    "pianos5": "release_pianos5",  # the later-stage branches of 2026-11-27 (E018)
    "pianos6": "release_pianos6",
    "pianos4_far": "release_pianos4_far",  # E018's NEXT_RUN's later stage (E020's take)
}
# Release 4's later stages, in order (release 5's, and scripts/release_gpu.sh's, are E018's).
SHIPPED = ("pianos2",)


def get_config(arg: str | None = None):
    """'' (the GPU stage), a `LATER_STAGES` name, or either prefixed 'tiny' ('tiny',
    'tiny_pianos2'): the same on the tiny corpus, for the tests."""
    tiny = bool(arg) and arg.startswith("tiny")
    stage = (arg or "").removeprefix("tiny").lstrip("_")
    if stage and stage not in LATER_STAGES:
        raise ValueError(f"unknown config variant {arg!r}; expected '', {sorted(LATER_STAGES)}")
    if stage:
        config = release.get_config("tiny" if tiny else "finetune")
        config.augment.eq_db = 8.0
        config.eval.test_dev = True
        config.data.corpus_size = "tiny" if tiny else LATER_STAGES[stage]
        return config
    config = release.get_config("tiny" if tiny else None)
    config.data.corpus_size = "tiny" if tiny else "release_pianos"
    config.augment.eq_db = 8.0
    config.data.batch_size = 8 if tiny else BATCH_SIZE
    config.optim.lr = LR
    config.optim.warmup_steps = 2 if tiny else WARMUP_STEPS
    return config


# The two runs of 2026-11-26 (`device_train --runs 0.25,0.75 --seconds 490` on an H200): the
# steps each took. Their workdirs are `adopt`ed weights, not trained by `experiments.run`
# (this recipe would take days on a CPU): there use `--actions test` and `--score`.
RUN_STEPS = (26_000, 139_700)


def sweep():
    return [{"max_steps": steps} for steps in RUN_STEPS]
