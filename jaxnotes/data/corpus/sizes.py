"""The sizes the default corpus renders at: how many of music21's scores, and what is added.

Owns `SizePlan` and `SIZES`, the table behind `config.data.corpus_size`. Choosing the
pieces from a plan, and rendering them, are `build`'s and `rendering`'s business. Must not
import either (build imports this module), nor model, loop or metric code.
"""

import dataclasses

COMPOSERS = ("bach", "beethoven", "haydn", "mozart", "schubert")  # MusicNet's, in music21


@dataclasses.dataclass(frozen=True)
class SizePlan:
    """How much of music21's corpus one size renders.

    `train` and `test` count pieces per composer (None in `train`: every piece
    left); `test_fraction` instead takes about that share of each composer's
    pieces as test works; `max_seconds` cuts every piece after that long.
    """

    train: dict
    test: dict
    test_fraction: float = 0.0
    max_seconds: float | None = None
    piano_fraction: float = 0.0  # train scores played by the sampled piano (piano.py)
    textures: int = 0  # generated piano textures (textures.py) added to train
    texture_seconds: float = 60.0
    acoustics_fraction: float = 0.0  # train pieces given a room, microphone and noise
    performed: bool = False  # scores on the sampled piano played expressively (performance.py)
    octaves: bool = False  # ... and with octave doublings of bass and melody (performance.py)
    # Each sampled-piano piece on another piano made of the samples, its voicing drawn this
    # way (voicing.VOICING_KINDS: 'narrow', 'wide' or 'timbre'); None: the samples as recorded.
    voicings: str | None = None
    take: int = 0  # > 0: new rooms, performances and pianos for the same pieces, a stream each
    # Some keys let go early where the sustain pedal holds their sound, in every pedalled
    # train piece (performance.lift_under_pedal): the same audio, the labels moved.
    lifts: bool = False
    # Rooms' microphones at a distance: the audio lags the keys by the direct sound's travel
    # (acoustics.draw_acoustics(distant=True)), as in ambient recordings such as MAPS'.
    distances: bool = False


SIZES = {
    # Seconds of chorales: the tests and the `:tiny` config render it in a few seconds.
    "tiny": SizePlan(train={"bach": 3}, test={"bach": 1}, max_seconds=5.0),
    # The same chorales twice as long: the tests' second corpus (extra_train_sizes).
    "tiny_long": SizePlan(train={"bach": 3}, test={"bach": 1}, max_seconds=10.0),
    # About an hour, ~10 % test: the README's main job renders it in a few minutes.
    "default": SizePlan(
        train={"bach": 40, "mozart": 7, "haydn": 4, "beethoven": 2, "schubert": 1},
        test={"bach": 4, "mozart": 2},
        max_seconds=150.0,
    ),
    "full": SizePlan(train=dict.fromkeys(COMPOSERS), test={}, test_fraction=0.1),
    # The shipped model's training audio (configs/release.py), about 5 hours: more scores,
    # a third of them and 60 generated textures on a sampled concert grand, most pieces in
    # a simulated room. Its test split is the default size's (same works, same rendering).
    "release": SizePlan(
        train={"bach": 150, "mozart": None, "haydn": None, "beethoven": None, "schubert": None},
        test={"bach": 4, "mozart": 2},
        max_seconds=150.0,
        piano_fraction=0.35,
        textures=60,
        acoustics_fraction=0.85,
    ),
}
# The release corpus with every score on the sampled piano given a performance (dynamics,
# voicing, rubato, sustain pedal) instead of the page's flat loudness: experiment E010.
# The same pieces, soundfonts and rooms as 'release'.
SIZES["release_performed"] = dataclasses.replace(SIZES["release"], performed=True)
# ... and with the bass, and now and then the melody, doubled in octaves (E010).
SIZES["release_octaves"] = dataclasses.replace(SIZES["release_performed"], octaves=True)
# The release corpus with every sampled-piano piece (scores and textures) played by another
# piano made of the same samples (voicing.Voicing): experiment E010.
SIZES["release_variants"] = dataclasses.replace(SIZES["release"], voicings="narrow")
# Stage 3 of the shipped model (configs/release.py:stage3): more of the scores (3 in 5) on
# the sampled piano, performed (dynamics, rubato, sustain pedal), and every sampled-piano
# piece on a piano voiced further from the recording ('wide' voicings: samples up to 6
# semitones away, shifted by register, unisons tuned apart).
SIZES["release_pianos"] = dataclasses.replace(
    SIZES["release"], piano_fraction=0.6, performed=True, voicings="wide"
)
# Its second take: the same pieces, each in another room, performance and piano (E012).
SIZES["release_pianos2"] = dataclasses.replace(SIZES["release_pianos"], take=1)
# Its third and fourth takes: E018's later stages (its GPU stage heard the first two).
SIZES["release_pianos3"] = dataclasses.replace(SIZES["release_pianos"], take=2)
SIZES["release_pianos4"] = dataclasses.replace(SIZES["release_pianos"], take=3)
# Its fifth and sixth takes: more takes for a GPU stage (E018 `takes6`), `release_pianos4`
# kept unheard for the later stage.
SIZES["release_pianos5"] = dataclasses.replace(SIZES["release_pianos"], take=4)
SIZES["release_pianos6"] = dataclasses.replace(SIZES["release_pianos"], take=5)
# `release_pianos4` with keys let go early under the pedal: its audio, other labels (E019).
SIZES["release_pianos4_lifted"] = dataclasses.replace(SIZES["release_pianos4"], lifts=True)
# ... and with its rooms' microphones at a distance: its labels, the audio later (E020).
SIZES["release_pianos4_far"] = dataclasses.replace(SIZES["release_pianos4"], distances=True)
# The fifth and sixth takes so treated: with `release_pianos4_far`, three takes release 5
# never heard, for a later stage that draws from all three at once (E021).
SIZES["release_pianos5_far"] = dataclasses.replace(SIZES["release_pianos5"], distances=True)
SIZES["release_pianos6_far"] = dataclasses.replace(SIZES["release_pianos6"], distances=True)
# ... and the other takes of E018's next GPU run (its NEXT_RUN), so treated.
SIZES["release_pianos_far"] = dataclasses.replace(SIZES["release_pianos"], distances=True)
SIZES["release_pianos2_far"] = dataclasses.replace(SIZES["release_pianos2"], distances=True)
SIZES["release_pianos3_far"] = dataclasses.replace(SIZES["release_pianos3"], distances=True)
SIZES["release_variants_far"] = dataclasses.replace(SIZES["release_variants"], distances=True)
# Stage 3's corpus with stage 2's narrow voicings, to tell the wide ones' share (E011).
SIZES["release_pianos_narrow"] = dataclasses.replace(SIZES["release_pianos"], voicings="narrow")
# Stage 3's corpus (the same pieces, rooms and performances) with every sampled-piano piece
# on its wide piano with the partials rebalanced ('timbre' voicings: harmonics 2-16 within
# +-6 dB of the fundamental, drawn for bass and treble): experiment E013.
SIZES["release_timbres"] = dataclasses.replace(SIZES["release_pianos"], voicings="timbre")
