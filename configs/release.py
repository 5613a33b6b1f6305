"""The shipped pretrained model: the short-range transformer on the release corpus.

The release corpus (`config.data.corpus_size='release'`, about 5 hours) adds to the default
corpus's repertoire a sampled concert grand (Salamander Grand Piano V3, from npm) playing a third
of the scores and 60 generated piano textures, and puts most pieces in a simulated room with a
microphone, band limit and noise. Inputs are dB against a running reference ('db_relative'), so
a recording's level cancels. The works below are reserved for evaluation elsewhere and never
rendered for training.

The shipped model is trained in two stages (`bash scripts/release.sh` runs both, resumable:
rerun the same command after an interruption). Stage 1 trains from scratch on the release
corpus, about 90 minutes on a 2-core CPU:
  python -m jaxnotes.main --config=configs/release.py --workdir=runs/release \
      --action=process-train,process-test,train-val,test
Stage 2 (`:stage2`, about 25 minutes with its corpus's rendering) continues the stage 1 model
(`--config.init_from`) for 4 epochs at a lower rate on `release_variants`, the same pieces with
every sampled-piano piece played by another piano made of the same samples, and a random
+-8 dB equaliser over frequency (`augment.eq_db`):
  python -m jaxnotes.main --config=configs/release.py:stage2 --workdir=runs/release-stage2 \
      --config.init_from=runs/release --action=process-train,process-test,train-val,test
then `python -m jaxnotes.pretrained --workdir=runs/release-stage2` packs its dev model into the
package. `configs/release.py:finetune` is the same schedule on this corpus (experiment E007)
or on a folder of your own (`--config.data.musicnet_dir`).
"""

from configs import transformer

RESERVED_WORKS = (
    *("bach/bwv255", "bach/bwv256", "bach/bwv274", "bach/bwv275", "bach/bwv296"),
    *("bach/bwv297", "bach/bwv326", "bach/bwv327", "bach/bwv364", "bach/bwv385"),
    *("bach/bwv48.3", "bach/bwv62.6"),
)


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
    elif arg in ("finetune", "stage2"):
        # Fine-tuning a trained model (--config.init_from='pretrained' or a workdir): a few
        # epochs at a lower peak rate, on this corpus (experiment E007) or on your own
        # folder (--config.data.musicnet_dir).
        config.num_epochs = 4
        config.optim.lr = 2e-4
        config.optim.warmup_steps = 100
        if arg == "stage2":
            # The shipped model's second stage (scripts/release.sh): the first stage's model
            # 4 epochs more on the release pieces with every sampled-piano piece played by
            # another piano made of its samples, with the random equaliser (experiments E007
            # and E010).
            config.data.corpus_size = "release_variants"
            config.augment.eq_db = 8.0
            config.init_from = "runs/release"
    elif arg:
        raise ValueError(
            f"unknown config variant {arg!r}; expected 'tiny', 'finetune', 'stage2' or none"
        )
    return config
