"""Sections shared by every model config.

Each field that comes from the original PyTorch command line says so with
`# --option`. Config files call `get_base_config()` and then change only what
differs; variants (`tiny`, `quick`, `gpu`) are applied by `apply_variant`.
"""

import math

import ml_collections

# The batch size the defaults (notably optim.lr) were tuned at.
BASE_BATCH_SIZE = 16
# The ':gpu' variant's batch and the largest learning rate batch scaling may reach.
GPU_BATCH_SIZE = 256
MAX_SCALED_LR = 2e-3


def cqt() -> ml_collections.ConfigDict:
    """CQT parameters: the single source of truth for builder and transcriber."""
    c = ml_collections.ConfigDict()
    c.sr = 22050  # --sr: audio is resampled to this rate before the CQT
    c.hop_length = 512  # --hop-length: samples between frames (~23 ms)
    c.fmin_midi = 21  # lowest bin is centred on A0, the lowest MusicNet pitch
    c.bins_per_octave = 48  # --bins-per-octave (a multiple of 12)
    c.n_octaves = 8  # A0..A8: covers MIDI 21..116
    c.filter_scale = 0.5  # shorter filters than librosa's default 1.0
    # 'db_relative': log magnitude against a running peak with a slow release (causal,
    # one number of state), so the recording's level cancels and a live stream is
    # normalised exactly as a whole file is. 'db': against a fixed reference (keeps
    # the level; the models of jaxnotes <= 0.1).
    c.normalisation = "db_relative"
    return c


def data() -> ml_collections.ConfigDict:
    d = ml_collections.ConfigDict()
    # Folder in MusicNet's layout. Empty: render and use the default corpus.
    d.musicnet_dir = ""
    # Where jaxnotes keeps rendered corpora and TFDS datasets.
    d.cache_dir = "~/.cache/jaxnotes"
    d.corpus_size = "default"  # default corpus size: 'tiny' | 'default' | 'full' | 'release'
    d.corpus_seed = 0
    d.render_workers = 1  # processes rendering the default corpus
    d.exclude_works = ()  # music21 corpus paths kept out of the rendered train split
    d.label_format = "auto"  # 'auto' | 'csv' | 'midi'
    d.validation_fraction = 0.1  # of train recordings, held out by recording
    d.validation_ids = ()  # explicit validation recordings (overrides the fraction)
    d.split_seed = 0
    d.chunk_frames = 512  # frames per stored record (~12 s)
    d.batch_seconds = 1.0  # --batch-seconds: length of each training window
    d.batch_size = 16  # --batch-size: windows per step, summed over all hosts
    d.num_workers = 0  # --num-workers: grain worker processes (0: in-process)
    d.only_note_names = False  # --only-note-names: fold pitches modulo 12
    d.min_pitch = 21  # output range, MIDI (MusicNet uses 21..104)
    d.max_pitch = 108
    d.shuffle_seed = 0
    d.eval_batch_size = 8  # chunks per evaluation batch
    # Windows cut from each chunk read: reading a 512-frame chunk for one 43-frame window
    # is most of the pipeline's cost; >1 trades batch diversity for speed.
    d.windows_per_chunk = 1
    d.read_threads = 4  # threads per process reading and transforming records (grain)
    d.prefetch_batches = 8  # batches each process reads ahead (grain prefetch buffer)
    # Train recordings left out of training, as 'column=text' rules against the folder's
    # musicnet_metadata.csv (jaxnotes/data/selection.py), e.g. ('ensemble=Solo Piano',).
    d.train_exclude = ()
    # More corpus sizes (jaxnotes/data/corpus/sizes.py) whose train splits training draws
    # from with the main one (every chunk as likely as any other), e.g. other takes of the
    # same pieces; validation and test stay `corpus_size`'s. Default corpus only.
    d.extra_train_sizes = ()
    return d


def model() -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    m.c = 3  # --c: multiplier of the number of convolutional channels
    m.freq_kernel_semitones = 3.0  # frequency span of the front-end convolution
    m.time_kernel_frames = 1  # time span of the front-end convolution
    m.dropout = 0.1
    # dtype of activations and matmuls: 'float32' | 'bfloat16' (mixed precision: parameters,
    # optimizer state and the logits stay float32; see jaxnotes/models/layers.py). bfloat16
    # is for accelerators with bf16 matrix units (GPU, TPU); on a CPU it is slower.
    m.compute_dtype = "float32"
    return m


def optim() -> ml_collections.ConfigDict:
    o = ml_collections.ConfigDict()
    o.lr = 5e-4  # --lr
    o.schedule = "cosine"  # 'cosine' | 'step' (step: multiply by gamma at milestones)
    o.gamma = 0.1  # --gamma: step schedule multiplier
    o.milestones = ()  # --milestones: epochs at which the lr is multiplied by gamma
    o.warmup_steps = 100
    o.weight_decay = 0.01
    o.clip_norm = 1.0
    return o


def augment() -> ml_collections.ConfigDict:
    a = ml_collections.ConfigDict()
    a.pitch_shift_semitones = 2  # random shift in [-n, n] semitones (CQT bins and labels)
    a.pitch_jitter_bins = 0  # extra shift of the CQT alone by up to this many bins
    # Random gain in [-g, g] dB of the features: with 'db_relative' an error of the running
    # reference (the recording's own level cancels whatever it is), with 'db' a gain.
    a.gain_db = 6.0
    # A random equaliser: straight lines in dB between control points one octave apart, each
    # drawn in [-e, e] dB (augment.eq_curve), standing for the colouring of a microphone, a
    # room or another instrument of the same kind. 0: off.
    a.eq_db = 0.0
    return a


def evaluation() -> ml_collections.ConfigDict:
    e = ml_collections.ConfigDict()
    e.thresholds = (0.5,)  # --thresholds: probability thresholds for the accuracy
    e.allowed_errors = (0, 1)  # --allowed-errors: wrong notes a frame may have
    e.test_dev = False  # --test-dev: test the dev (best validation) model
    e.fallback_checkpoint = False  # test the newest intact checkpoint if the latest is damaged
    e.onset_tolerance_s = 0.05
    # Note decoding; thresholds and the shortest note are tuned on validation when None.
    e.frame_threshold = ml_collections.config_dict.placeholder(float)
    e.onset_threshold = ml_collections.config_dict.placeholder(float)
    e.min_note_s = ml_collections.config_dict.placeholder(float)  # seconds
    # A sounding note goes on while its frames stay >= this (<= frame_threshold: hysteresis);
    # tuned on validation with the rest when None.
    e.sustain_threshold = ml_collections.config_dict.placeholder(float)
    e.gap_join_s = 0.03
    e.num_piano_rolls = 10  # pictures written by the test action (first N pieces)
    # Models without a bounded context (model.long_range 'full' or 'criss_cross') run offline
    # on segments of segment_s seconds (None: the training window, batch_seconds) overlapping
    # by this fraction, each output from the segment where it is most central.
    e.segment_s = ml_collections.config_dict.placeholder(float)
    e.segment_overlap = 0.5
    return e


def get_base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model_name = "transformer"
    config.cqt = cqt()
    config.data = data()
    config.model = model()
    config.optim = optim()
    config.augment = augment()
    config.eval = evaluation()
    config.num_epochs = 25  # --num-epochs
    # Loss weight of onset cells that are on (1 is plain BCE). On the default corpus, 5 raised
    # the transformer's test note F1 from 0.68 to 0.75 for 0.004 frame F1 (README, Results).
    config.onset_positive_weight = 5.0
    # A train epoch is one pass over the train split's frames in random windows.
    # If > 0 and below num_epochs' steps: the run's length in steps, the cosine schedule
    # decaying over it (smoke tests; ablations at equal steps on data of different sizes).
    config.max_steps = -1
    config.log_every_steps = 50
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 2
    config.early_stopping_patience = -1  # epochs without improvement; -1: never stop
    # train-val keeps the checkpoint best on this validation number as the dev model
    # ('...loss': lower is better, else higher): the loss needs no decoding threshold,
    # which the test action tunes later on the same split.
    config.dev_metric = "val/loss"
    # Warm start (jaxnotes/train/warm_start.py): a new run's first parameters from
    # 'pretrained' (the shipped model) or a workdir's model; the optimizer, schedule and data
    # order start afresh. Needs the same config.cqt, pitch range and model. '': random.
    config.init_from = ""
    return config


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """`base_lr` (tuned at BASE_BATCH_SIZE) for `batch_size`: square-root scaling, capped.

    Adam-type optimizers keep the same training dynamics when the learning rate grows with
    the square root of the batch (Malladi et al. 2022, "On the SDEs and Scaling Rules for
    Adaptive Gradient Algorithms"; linear scaling is SGD's rule); the cap at MAX_SCALED_LR
    keeps very large batches from reaching rates at which transformers diverge.
    """
    return min(MAX_SCALED_LR, base_lr * math.sqrt(batch_size / BASE_BATCH_SIZE))


def apply_variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies a named variant (the text after ':' in --config=file.py:variant)."""
    if not arg:
        return config
    if arg == "tiny":
        # Seconds of audio, a few steps: every action in well under a minute on CPU.
        config.data.corpus_size = "tiny"
        config.data.batch_size = 4
        config.data.chunk_frames = 128
        config.data.validation_fraction = 0.34
        config.cqt.bins_per_octave = 24
        config.num_epochs = 2
        config.max_steps = 6
        config.log_every_steps = 2
        config.checkpoint_every_steps = 3
        config.optim.warmup_steps = 2
    elif arg == "quick":
        # The README's main job on the default corpus within its CPU time budget.
        config.num_epochs = 8
        config.optim.warmup_steps = 50
    elif arg == "gpu":
        # Training on an accelerator (one or more GPUs or a TPU slice), on a large dataset
        # such as MusicNet (--config.data.musicnet_dir) or the release corpus.
        d, o = config.data, config.optim
        # 16x the base batch: a batch of 16 x 43 frames leaves a GPU mostly idle. 256
        # divides evenly over 1, 2, 4, 8, ... devices and processes.
        d.batch_size = GPU_BATCH_SIZE
        # Square-root scaling from 5e-4 at 16 (scaled_lr): 5e-4 * sqrt(256 / 16) = 2e-3,
        # which is also the cap.
        o.lr = scaled_lr(o.lr, d.batch_size)
        # A 4x higher peak rate gets a 2x longer ramp in steps (100 -> 200): the rate rises
        # by 1e-5 a step instead of 5e-6, and Adam's moment estimates see more steps before
        # the peak. 200 steps are under half an epoch of MusicNet at this batch (about 380
        # steps), about 15 % of the release recipe; on the small default corpus (about 6
        # steps per epoch) most of a run, which is not what this variant is for.
        o.warmup_steps = 200
        # Reading a 512-frame chunk for one 43-frame window is most of the pipeline's cost
        # (decompressing it): 8 windows per read cut the reads 8x (in-process on 2 CPU cores
        # 118k frames/s against 31k at 1, benchmarks/pipeline_throughput.py), and a batch
        # still comes from 32 chunks. 8 divides the per-process batch for up to 32 processes.
        d.windows_per_chunk = 8
        # Grain worker processes: 8 of a one-GPU machine's 16 cores (here) feed the step,
        # the rest stay for the training process and the read threads.
        d.num_workers = 8
        # Read threads per process (each worker has its own: 8 x 4 threads, partly waiting
        # on record reads); also what the in-process eval iterator uses.
        d.read_threads = 4
        # Batches read ahead per process. A batch is 16x the base's (about 25 MB of
        # float32 CQT and labels), so 4 instead of 8 still covers step-time jitter while
        # bounding host memory (workers hold their own buffers too).
        d.prefetch_batches = 4
        # 64 chunks of 512 frames (about 50 MB of CQT) per eval step: eval is forward
        # only, so 8x the base's 8 chunks fits easily and cuts the per-step overhead.
        d.eval_batch_size = 64
        # Mixed precision: bf16 activations and matmuls on the tensor cores, float32
        # parameters, optimizer state and logits (configs/common.py model()).
        config.model.compute_dtype = "bfloat16"
    else:
        raise ValueError(f"unknown config variant {arg!r}; expected 'tiny', 'quick' or 'gpu'")
    return config
