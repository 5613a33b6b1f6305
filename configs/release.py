"""The release recipe: the short-range transformer on the release corpus, on a CPU.

Release 3 was trained by this recipe alone. The shipped model, release 5, trains its first
stage on a GPU instead (experiments/E018_gpu_takes: from scratch on three takes of the
pieces at once, 39x these windows, then a stage of this schedule on `release_pianos3`; `bash
scripts/release_gpu.sh`); it reuses this file's settings, corpora and reserved works.

The release corpus (`config.data.corpus_size='release'`, about 5 hours) adds to the default
corpus's repertoire a sampled concert grand (Salamander Grand Piano V3, from npm) playing a third
of the scores and 60 generated piano textures, and puts most pieces in a simulated room with a
microphone, band limit and noise. Inputs are dB against a running reference ('db_relative'), so
a recording's level cancels. The works below are reserved for evaluation elsewhere and never
rendered for training.

Release 3 is trained in stages (`bash scripts/release.sh` runs them all, resumable:
rerun the same command after an interruption). Stage 1 trains from scratch on the release
corpus, about 90 minutes on a 2-core CPU:
  python -m jaxnotes.main --config=configs/release.py --workdir=runs/release \
      --action=process-train,process-test,train-val,test
Each later stage (`:stage2`, `:stage3`: `LATER_STAGES`; about 25 minutes each with its
corpus's rendering) continues the stage before it (`--config.init_from`) for 4 epochs at a
lower rate, with a random +-8 dB equaliser over frequency (`augment.eq_db`), on a corpus of
more pianos: `release_variants` (the release pieces with every sampled-piano piece played by
another piano made of the same samples), then `release_pianos` (3 scores in 5 performed on
the sampled piano, and every sampled-piano piece voiced further from the recording):
  python -m jaxnotes.main --config=configs/release.py:stage2 --workdir=runs/release-stage2 \
      --config.init_from=runs/release --action=process-train,process-test,train-val,test
then `python -m jaxnotes.pretrained --workdir=runs/release-stage3` packs the last stage's dev
model into the package. `configs/release.py:finetune` is the same schedule on this corpus
(experiment E007) or on a folder of your own (`--config.data.musicnet_dir`).
"""

from configs import transformer

RESERVED_WORKS = (
    *("bach/bwv255", "bach/bwv256", "bach/bwv274", "bach/bwv275", "bach/bwv296"),
    *("bach/bwv297", "bach/bwv326", "bach/bwv327", "bach/bwv364", "bach/bwv385"),
    *("bach/bwv48.3", "bach/bwv62.6"),
)

# Release 3's later stages (scripts/release.sh): each continues the stage before it
# (its workdir, as the script names it) for 4 epochs at peak lr 2e-4 on its own corpus.
# 2: every sampled-piano piece on another piano made of the samples (E007, E010);
# 3: 3 scores in 5 performed on the sampled piano, every sampled-piano piece on a piano
#    voiced further from the recording (voicing.py's 'wide') (E011).
# A fourth on a second take of stage 3's pieces bought nothing more (E012), nor did one on
# pianos with rebalanced partials (E013), with 4-second training windows (E014) or with onset
# positives weighted 10x (E016).
LATER_STAGES = {
    "stage2": ("release_variants", "runs/release"),
    "stage3": ("release_pianos", "runs/release-stage2"),
}


def get_config(arg: str | None = None):
    config = transformer.get_config(None)
    d = config.data
    d.corpus_size = "release"
    d.exclude_works = RESERVED_WORKS
    d.render_workers = 2
    config.num_epochs = 24  # ~21k steps of 16 x 1 s windows: ~80 min on 2 cores
    config.optim.warmup_steps = 300
    config.checkpoint_every_steps = 500
    config.log_every_steps = 100
    if arg == "tiny":  # the tests: the same recipe on seconds of audio
        config = transformer.get_config("tiny")
        config.data.exclude_works = RESERVED_WORKS
    elif arg == "finetune" or arg in LATER_STAGES:
        # Fine-tuning a trained model (--config.init_from='pretrained' or a workdir): a few
        # epochs at a lower peak rate, on this corpus (experiment E007) or on your own
        # folder (--config.data.musicnet_dir).
        config.num_epochs = 4
        config.optim.lr = 2e-4
        config.optim.warmup_steps = 100
        if arg in LATER_STAGES:  # with the random equaliser (E007), from the stage before
            config.data.corpus_size, config.init_from = LATER_STAGES[arg]
            config.augment.eq_db = 8.0
    elif arg:
        expected = ", ".join(repr(v) for v in ("tiny", "finetune", *LATER_STAGES))
        raise ValueError(f"unknown config variant {arg!r}; expected {expected} or none")
    return config


def continued(arg: str | None, init_from: str):
    """The `arg` variant continuing the workdir `init_from`, tested on its dev model (the
    best validation model, as scripts/release.sh tests): the experiments on later stages."""
    config = get_config(arg)
    config.init_from = init_from
    config.eval.test_dev = True
    return config
