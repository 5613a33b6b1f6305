"""How one rendered piano differs from the Salamander grand as recorded: `Voicing`.

Owns the fields of a voicing and how a corpus draws them from a seed (`draw_voicing`:
'narrow', the `release_variants` corpus's pianos, or 'wide', `release_pianos`'). Applying
a voicing to the samples is `piano.PianoSampler.render`'s business. Must not import
`piano`, `rendering` or `build` (they use this module), nor model, loop or metric code.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Voicing:
    """Another instrument made of the same samples (the default is the recording itself).

    - `sample_shift`: every key is played from the samples about this many semitones above
      (+) or below (-) it, repitched: the body's resonances move with the strings, as on a
      smaller (brighter, shorter) or larger (darker, longer) instrument.
    - `treble_shift`: semitones added to `sample_shift` at the top key (C8), in proportion
      from none at A0: a scale whose strings and body differ by register.
    - `layer_shift`: velocity layers this many steps brighter (+) or duller (-) than the
      velocity's own, at the velocity's level: harder or softer hammers.
    - `cents` and `stretch_cents`: the tuning, shifted and stretched (cents per octave away
      from A4), as no two pianos are tuned alike.
    - `unison_cents`: every note is played twice, this many cents apart (half above, half
      below its pitch), at half the level each: a key's strings tuned apart, beating.
    - `damping_db_per_s`: every note decays this much faster: shorter sustain.
    - `release_scale`: the dampers' release times, scaled.
    """

    sample_shift: int = 0
    layer_shift: int = 0
    cents: float = 0.0
    stretch_cents: float = 0.0
    damping_db_per_s: float = 0.0
    release_scale: float = 1.0
    treble_shift: int = 0
    unison_cents: float = 0.0


RECORDED = Voicing()  # the Salamander grand as its samples were recorded
VOICING_KINDS = ("narrow", "wide")


def draw_voicing(seed: int, kind: str = "narrow") -> Voicing:
    """A random voicing drawn from `seed`.

    'narrow': samples 0 or +-3 semitones away (a third keep the recorded pitches), layers
    within 3 steps, tuning within 20 cents. 'wide' reaches further: samples up to 6
    semitones away, shifted up to 3 more across the keyboard, layers within 4 steps, tuning
    within 25 cents, and in half the pianos unisons 1-4 cents apart.
    """
    rng = np.random.default_rng(seed)
    if kind == "narrow":  # the draws of release_variants: keep their order
        return Voicing(
            sample_shift=int(rng.choice([-3, 0, 3])),
            layer_shift=int(rng.integers(-3, 4)),
            cents=float(rng.uniform(-20.0, 20.0)),
            stretch_cents=float(rng.uniform(-4.0, 6.0)),
            damping_db_per_s=float(rng.choice([0.0, rng.uniform(1.0, 8.0)])),
            release_scale=float(rng.uniform(0.5, 2.0)),
        )
    if kind != "wide":
        raise ValueError(f"voicing kind {kind!r}: expected one of {VOICING_KINDS}")
    return Voicing(
        sample_shift=int(rng.integers(-6, 7)),
        treble_shift=int(rng.integers(-3, 4)),
        layer_shift=int(rng.integers(-4, 5)),
        cents=float(rng.uniform(-25.0, 25.0)),
        stretch_cents=float(rng.uniform(-4.0, 8.0)),
        unison_cents=float(rng.choice([0.0, rng.uniform(1.0, 4.0)])),
        damping_db_per_s=float(rng.choice([0.0, rng.uniform(1.0, 10.0)])),
        release_scale=float(rng.uniform(0.5, 2.5)),
    )


def sample_shift_N(voicing: Voicing, pitch_N: np.ndarray, low: int, high: int) -> np.ndarray:
    """Semitones from each key to the sample it is played from (before rounding to one)."""
    across_N = (np.asarray(pitch_N) - low) / (high - low)
    return voicing.sample_shift + np.round(voicing.treble_shift * across_N).astype(int)
