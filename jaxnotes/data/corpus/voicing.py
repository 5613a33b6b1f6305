"""How one rendered piano differs from the Salamander grand as recorded: `Voicing`.

Owns the fields of a voicing and how a corpus draws them from a seed (`draw_voicing`:
'narrow', the `release_variants` corpus's pianos, 'wide', `release_pianos`', or 'timbre',
`release_timbres`': a wide piano whose partials are balanced otherwise), and the gain a
voicing gives each partial of a sample (`partial_gain_db`). Applying
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
    - `partial_db`: the balance of each note's partials, as (bass row, treble row) of gains
      in dB at harmonics 1, 2, 4, 8 and 16 of the sample's pitch (at A0 and at C8, linear
      in pitch between): a fundamental weaker than its octave, as on a real bass string
      heard from afar, or a duller or brighter treble. Empty: the partials as recorded.
    """

    sample_shift: int = 0
    layer_shift: int = 0
    cents: float = 0.0
    stretch_cents: float = 0.0
    damping_db_per_s: float = 0.0
    release_scale: float = 1.0
    treble_shift: int = 0
    unison_cents: float = 0.0
    partial_db: tuple[tuple[float, ...], ...] = ()


RECORDED = Voicing()  # the Salamander grand as its samples were recorded
VOICING_KINDS = ("narrow", "wide", "timbre")
PARTIAL_KNOTS = (1, 2, 4, 8, 16)  # harmonics at which `partial_db` is given
PARTIAL_DB = 6.0  # 'timbre' draws each knot above the fundamental within +- this


def draw_voicing(seed: int, kind: str = "narrow") -> Voicing:
    """A random voicing drawn from `seed`.

    'narrow': samples 0 or +-3 semitones away (a third keep the recorded pitches), layers
    within 3 steps, tuning within 20 cents. 'wide' reaches further: samples up to 6
    semitones away, shifted up to 3 more across the keyboard, layers within 4 steps, tuning
    within 25 cents, and in half the pianos unisons 1-4 cents apart. 'timbre' is the 'wide'
    piano of the same seed with its partials rebalanced: `partial_db` at harmonics 2-16
    within +-`PARTIAL_DB` of the fundamental, drawn for the bass and for the treble.
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
    if kind not in ("wide", "timbre"):
        raise ValueError(f"voicing kind {kind!r}: expected one of {VOICING_KINDS}")
    wide = Voicing(
        sample_shift=int(rng.integers(-6, 7)),
        treble_shift=int(rng.integers(-3, 4)),
        layer_shift=int(rng.integers(-4, 5)),
        cents=float(rng.uniform(-25.0, 25.0)),
        stretch_cents=float(rng.uniform(-4.0, 8.0)),
        unison_cents=float(rng.choice([0.0, rng.uniform(1.0, 4.0)])),
        damping_db_per_s=float(rng.choice([0.0, rng.uniform(1.0, 10.0)])),
        release_scale=float(rng.uniform(0.5, 2.5)),
    )
    if kind == "wide":
        return wide
    rows = rng.uniform(-PARTIAL_DB, PARTIAL_DB, (2, len(PARTIAL_KNOTS) - 1))
    partial_db = tuple((0.0, *map(float, row)) for row in rows)
    return dataclasses.replace(wide, partial_db=partial_db)


def partial_gain_db(voicing: Voicing, ratio_H: np.ndarray, across: float) -> np.ndarray:
    """Gain (dB) of frequencies `ratio_H` times a sample's pitch, `across` (0..1) the keyboard.

    Linear in log2 of the ratio between `PARTIAL_KNOTS`, flat below the fundamental and above
    the last knot; 0 everywhere for a voicing without `partial_db`.
    """
    if not voicing.partial_db:
        return np.zeros(np.shape(ratio_H))
    bass_K, treble_K = (np.asarray(row, np.float64) for row in voicing.partial_db)
    knots_K = (1 - across) * bass_K + across * treble_K
    octaves_H = np.log2(np.maximum(ratio_H, 1e-9))
    return np.interp(octaves_H, np.log2(PARTIAL_KNOTS), knots_K)


def sample_shift_N(voicing: Voicing, pitch_N: np.ndarray, low: int, high: int) -> np.ndarray:
    """Semitones from each key to the sample it is played from (before rounding to one)."""
    across_N = (np.asarray(pitch_N) - low) / (high - low)
    return voicing.sample_shift + np.round(voicing.treble_shift * across_N).astype(int)
