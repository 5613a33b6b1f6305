"""A pianist's performance of a score's notes: dynamics, voicing, timing and sustain pedal.

Owns `perform`: from a score's events as written (`scores.Event`, the flat loudness and
strict time of the page) and a seed, the events as a pianist might play them, and the
sustain pedal they play with. What it draws, per piece:
  - dynamics: a level between pp and f and a slow curve around it (phrases swell and fade
    over a few seconds), so that one recording holds soft and loud passages;
  - voicing: the top part sings above the others, inner parts sit below, the bass between;
    each note varies a little around its part's level;
  - timing: a smooth tempo curve (rubato, a few percent either way) and chords spread by a
    few milliseconds, notes of a chord rarely falling together;
  - sustain pedal, in most pieces: caught just after a bass note and lifted just before
    the next one that comes at least `MIN_PEDAL_S` later (legato pedalling with the
    harmony), held no longer than `MAX_PEDAL_S`;
  - octave doublings, when asked for (`octaves=True`): in some pieces the bass is doubled an
    octave below, in fewer the melody an octave above, as pianists arrange a chorale or a
    quartet. This reaches the keyboard's lowest octaves, which the scores' cellos and basses
    never do, and puts octave-related notes together, whose upper note hides in the lower's
    harmonics. Drawn from a stream of their own: the rest of the performance is the same
    with or without them.
Labels stay the keys as played (press to release): the pedal lengthens the sound, not the
notes, as in MAPS and MAESTRO's raw MIDI. Under the pedal a key's release is silent, so a
pianist need not hold it: `lift_under_pedal` lets some keys go early where the pedal holds
their sound (any pedalled piece, a texture too), which moves their labels, not the sound.
Must not import `rendering` or `build`, nor model, loop or metric code.
"""

import dataclasses

import numpy as np

from jaxnotes.data.corpus import scores
from jaxnotes.data.corpus.texture_segment import HIGHEST_KEY, LOWEST_KEY

LEVEL_RANGE = (30.0, 95.0)  # a piece's mean MIDI velocity: pp-ish .. f
VELOCITY_RANGE = (12, 127)
SWELL_KNOT_S = (2.0, 6.0)  # the dynamics curve has a new target this often
SWELL_DEPTH = (10.0, 30.0)  # how far the curve strays from the piece's level, in velocity
TEMPO_KNOT_S = 3.0  # the tempo curve has a new value this often
RUBATO = (0.0, 0.08)  # its spread (fraction of the tempo)
SPREAD_S = (0.0, 0.012)  # standard deviation of a note's onset around its chord's
PEDAL_PROBABILITY = 0.75
MIN_PEDAL_S = 0.3  # bass notes closer than this do not change the pedal
MAX_PEDAL_S = 4.0  # the pedal is changed at least this often
BASS_OCTAVE_PROBABILITY = 0.6  # pieces whose bass part is doubled an octave below
MELODY_OCTAVE_PROBABILITY = 0.3  # pieces whose top part is doubled an octave above
LIFT_SHARE = (0.3, 0.9)  # a piece's share of the pedal-held keys let go early
LIFT_HOLD_S = 0.1  # a key let go early is still held this long ...
LIFT_CATCH_S = 0.03  # ... and until this long after the pedal went down (it caught the sound)


@dataclasses.dataclass(frozen=True)
class Performance:
    """A score's events as played, and the sustain pedal as (down_s, up_s) intervals."""

    events: list
    pedal: tuple[tuple[float, float], ...]


def perform(events: list[scores.Event], seed: int, octaves: bool = False) -> Performance:
    """The events with new velocities and times, and a sustain pedal, drawn from `seed`.

    Event order and everything but `start_s`, `end_s` and `velocity` are kept. Times stay
    at or after `scores.LEAD_S`; a note never ends before it starts. With `octaves`, the
    doublings follow the events, in tracks of their own (`<track>-8vb`, `<track>-8va`).
    """
    if not events:
        return Performance([], ())
    rng = np.random.default_rng(seed)
    start_N = np.array([e.start_s for e in events])
    end_N = np.array([e.end_s for e in events])
    warp = _tempo_warp(rng, float(end_N.max()))
    start_N, end_N = warp(start_N), warp(end_N)
    start_N = np.maximum(
        scores.LEAD_S, start_N + rng.normal(0.0, rng.uniform(*SPREAD_S), len(events))
    )
    end_N = np.maximum(end_N, start_N + scores.MIN_NOTE_S)
    _untangle(events, start_N, end_N)
    velocity_N = _velocities(rng, events, start_N)
    pedal = _pedal(rng, events, start_N, end_N) if rng.random() < PEDAL_PROBABILITY else ()
    played = [
        dataclasses.replace(e, start_s=float(s), end_s=float(t), velocity=int(v))
        for e, s, t, v in zip(events, start_N, end_N, velocity_N, strict=True)
    ]
    if octaves:
        played += _doublings(np.random.default_rng([seed, 1]), played)
    return Performance(played, pedal)


def _doublings(rng, played) -> list[scores.Event]:
    """Octave doublings of the bass (below) and of the melody (above), each in some pieces.

    A doubling sounds with its note, a little softer; one that would fall off the keyboard,
    or onto a key another part holds then, is left out."""
    mean_pitch = _mean_pitches(played)
    ranked = sorted(mean_pitch, key=mean_pitch.get)  # the bass first
    if len(ranked) < 2:
        return []
    plan = []
    if rng.random() < BASS_OCTAVE_PROBABILITY:
        plan.append((ranked[0], -12, "-8vb"))
    if rng.random() < MELODY_OCTAVE_PROBABILITY:
        plan.append((ranked[-1], 12, "-8va"))
    held = {}
    for e in played:
        held.setdefault(e.pitch, []).append((e.start_s, e.end_s))
    added = []
    for track, interval, suffix in plan:
        for e in (e for e in played if e.track == track):
            pitch = e.pitch + interval
            if not LOWEST_KEY <= pitch <= HIGHEST_KEY:
                continue
            if any(a < e.end_s and e.start_s < b for a, b in held.get(pitch, ())):
                continue
            velocity = int(np.clip(round(e.velocity - rng.uniform(0.0, 10.0)), *VELOCITY_RANGE))
            added.append(
                dataclasses.replace(e, track=track + suffix, pitch=pitch, velocity=velocity)
            )
    return added


def _mean_pitches(events) -> dict[str, float]:
    """{track: mean pitch} of the events' parts, in the order of the track names."""
    tracks = sorted({e.track for e in events})
    return {t: np.mean([e.pitch for e in events if e.track == t]) for t in tracks}


def _untangle(events, start_N, end_N) -> None:
    """In place: repeated notes of one key in one part follow one another in their written
    order without overlapping (one MIDI channel cannot hold a key twice), each at least
    `scores.MIN_NOTE_S` long."""
    previous = {}
    for i in sorted(range(len(events)), key=lambda i: events[i].start_s):
        key = (events[i].track, events[i].pitch)
        if key in previous:
            j = previous[key]
            start_N[i] = max(start_N[i], start_N[j] + 2 * scores.MIN_NOTE_S)
            end_N[j] = min(end_N[j], start_N[i])
            end_N[i] = max(end_N[i], start_N[i] + scores.MIN_NOTE_S)
        previous[key] = i


def _tempo_warp(rng, seconds: float):
    """t -> performed time: the integral of a piecewise-linear tempo factor around 1,
    fixed at `scores.LEAD_S` (the silence before the first note is not stretched)."""
    knots_K = np.arange(scores.LEAD_S, seconds + 2 * TEMPO_KNOT_S, TEMPO_KNOT_S)
    factor_K = 1.0 + rng.normal(0.0, rng.uniform(*RUBATO), len(knots_K))
    factor_K = np.clip(factor_K, 0.8, 1.25)
    grid_G = np.linspace(
        scores.LEAD_S, knots_K[-1], max(2, int((knots_K[-1] - scores.LEAD_S) * 50))
    )
    step_G = np.diff(grid_G, prepend=grid_G[0]) * np.interp(grid_G, knots_K, factor_K)
    warped_G = scores.LEAD_S + np.cumsum(step_G)
    return lambda t: np.interp(t, grid_G, warped_G)


def _velocities(rng, events, start_N) -> np.ndarray:
    """Piece level + slow swell + the part's voicing + a little per note."""
    level = rng.uniform(*LEVEL_RANGE)
    end = float(start_N.max()) + 1.0
    knots_K = np.cumsum(np.concatenate([[0.0], rng.uniform(*SWELL_KNOT_S, int(end / 2) + 2)]))
    swell_K = rng.uniform(-1.0, 1.0, len(knots_K)) * rng.uniform(*SWELL_DEPTH)
    curve_N = level + np.interp(start_N, knots_K, swell_K)
    mean_pitch = _mean_pitches(events)
    ranked = sorted(mean_pitch, key=mean_pitch.get, reverse=True)  # top part first
    voicing = {t: -rng.uniform(0.0, 15.0) for t in ranked}
    voicing[ranked[0]] = rng.uniform(0.0, 12.0)  # the melody
    if len(ranked) > 2:
        voicing[ranked[-1]] = rng.uniform(-8.0, 6.0)  # the bass
    offset_N = np.array([voicing[e.track] for e in events])
    velocity_N = curve_N + offset_N + rng.normal(0.0, 4.0, len(events))
    return np.clip(np.round(velocity_N), *VELOCITY_RANGE).astype(int)


def _pedal(rng, events, start_N, end_N) -> tuple[tuple[float, float], ...]:
    """Legato pedalling: changed with the bass (the lowest note sounding at each onset)."""
    onsets = np.unique(np.round(start_N, 2))
    lowest = {}
    for e, s in zip(events, np.round(start_N, 2), strict=True):
        lowest[s] = min(lowest.get(s, 128), e.pitch)
    # A change where the bass moves, at most every MIN_PEDAL_S, at least every MAX_PEDAL_S.
    changes, last_bass = [], None
    for t in onsets:
        if not changes or (
            t - changes[-1] >= MIN_PEDAL_S
            and (lowest[t] != last_bass or t - changes[-1] >= MAX_PEDAL_S)
        ):
            changes.append(float(t))
            last_bass = lowest[t]
    changes.append(float(end_N.max()))
    intervals = []
    for a, b in zip(changes[:-1], changes[1:], strict=True):
        down, up = a + rng.uniform(0.03, 0.12), b - rng.uniform(0.0, 0.05)
        if up - down > 0.1:
            intervals.append((down, up))
    return tuple(intervals)


def lift_under_pedal(events: list[scores.Event], pedal, seed: int) -> list[scores.Event]:
    """The events with some keys let go early where the sustain pedal holds their sound.

    A key released while the pedal is down (in `pedal`, sorted disjoint (down_s, up_s)) is
    damped at pedal up whenever it is released, so its release can move anywhere after the
    pedal caught it without changing the sound (`piano.PianoSampler.render`): in a piece,
    `LIFT_SHARE` of such keys are released at a uniform time between `LIFT_HOLD_S` after the
    strike and `LIFT_CATCH_S` after pedal down, whichever is later, and the written release.
    Only `end_s` changes; keys released outside the pedal are kept. Drawn from `seed`, one
    draw per event in order, so an event's release depends on its index alone.
    """
    if not events or not pedal:
        return list(events)
    rng = np.random.default_rng([seed, 2])
    share = rng.uniform(*LIFT_SHARE)
    down_P = np.array([a for a, _ in pedal])
    up_P = np.array([b for _, b in pedal])
    start_N = np.array([e.start_s for e in events])
    end_N = np.array([e.end_s for e in events])
    lifted_N, at_N = rng.random(len(events)) < share, rng.random(len(events))
    k_N = np.searchsorted(down_P, end_N, side="right") - 1  # the last press before release
    held_N = (k_N >= 0) & (end_N < np.append(up_P, -np.inf)[k_N])
    earliest_N = np.maximum(start_N + LIFT_HOLD_S, down_P[np.maximum(k_N, 0)] + LIFT_CATCH_S)
    lifted_N &= held_N & (earliest_N < end_N)
    new_end_N = np.where(lifted_N, earliest_N + at_N * (end_N - earliest_N), end_N)
    return [
        dataclasses.replace(e, end_s=float(t)) if lifted else e
        for e, t, lifted in zip(events, new_end_N, lifted_N, strict=True)
    ]
