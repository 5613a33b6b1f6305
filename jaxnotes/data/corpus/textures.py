"""Generated piano textures: random note lists that span the range and density of piano music.

Owns drawing, from a seed, a `Texture`: timed piano notes and sustain-pedal intervals, made
of segments of a few seconds each of varied kinds (block chords, scales and runs, arpeggios
and Alberti bass, dense random polyphony over all 88 keys, repeated notes and trills,
octaves, slow melody with accompaniment), with varied tempo, dynamics, articulation and
pedalling. The scores of the default corpus rarely reach the extremes of the keyboard, fast
runs or ten-note textures; these textures do. This module assembles the segments one after
another and cleans the result; a segment's drawing state (key, harmony, dynamics, pedal)
is `texture_segment`'s and the notes each kind plays are `texture_kinds`'s. Rendering the
notes to audio is the caller's business. Must not import model, loop or metric code.

Guarantees, for any seed and length: pitches within 21..108 (A0..C8), velocities within
15..127, every note at least `MIN_NOTE_S` (`texture_segment`'s) long and starting before
`seconds`, ending by `seconds`; no two notes on one key overlap (a key cannot be struck
while it is down: the earlier note is cut at the next one's onset, and a repeat within
`MIN_NOTE_S` of the previous onset is dropped); pedal intervals are sorted, disjoint, with
down < up.
"""

import dataclasses

import numpy as np

from jaxnotes.data.corpus import texture_kinds, texture_segment

SEGMENT_S = (2.0, 6.0)
GAP_PROBABILITY = 0.3  # a short silence before a segment
GAP_S = (0.2, 1.5)
TIME_DECIMALS = 4  # times are rounded to 0.1 ms, so equal onsets compare equal


@dataclasses.dataclass(frozen=True)
class Texture:
    """Timed piano notes and sustain pedal, drawn by `generate_texture`.

    `notes` are (pitch, start_s, end_s, velocity), sorted by start then pitch; `pedal` are
    (down_s, up_s) intervals of the sustain pedal, sorted; `kind` names the segments in order,
    joined by '+', e.g. 'chords+scales+dense'.
    """

    notes: tuple[tuple[int, float, float, int], ...]
    pedal: tuple[tuple[float, float], ...]
    kind: str


def generate_texture(seed: int, seconds: float) -> Texture:
    """A piano texture of `seconds` seconds, the same for the same seed."""
    rng = np.random.default_rng(seed)
    notes, pedal, kinds = [], [], []
    t = float(rng.uniform(0.0, 0.3))
    while t < seconds - 0.1:
        kind = str(rng.choice(texture_kinds.KINDS, p=texture_kinds.KIND_WEIGHTS))
        end = min(t + float(rng.uniform(*SEGMENT_S)), seconds)
        segment = texture_segment.Segment(rng, t, end)
        texture_kinds.GENERATORS[kind](segment)
        notes += segment.notes
        pedal += segment.pedal_intervals()
        kinds.append(kind)
        t = end
        if rng.random() < GAP_PROBABILITY:
            t += float(rng.uniform(*GAP_S))
    return Texture(
        notes=_clean_notes(notes, seconds), pedal=_clean_pedal(pedal, seconds), kind="+".join(kinds)
    )


def _clean_notes(notes, seconds: float) -> tuple[tuple[int, float, float, int], ...]:
    """Notes cut to `seconds`, one key never down twice, sorted by (start, pitch)."""
    by_pitch: dict[int, list[list]] = {}
    for pitch, start, end, velocity in sorted(notes, key=lambda n: (n[1], n[0])):
        start = round(start, TIME_DECIMALS)
        end = round(min(end, seconds), TIME_DECIMALS)
        if end - start < texture_segment.MIN_NOTE_S:
            continue
        kept = by_pitch.setdefault(pitch, [])
        if kept and start - kept[-1][1] < texture_segment.MIN_NOTE_S:
            continue  # struck again too soon after the previous onset: dropped
        if kept and kept[-1][2] > start:
            kept[-1][2] = start  # the key comes up when it is struck again
        kept.append([pitch, start, end, velocity])
    cleaned = [tuple(n) for kept in by_pitch.values() for n in kept]
    return tuple(sorted(cleaned, key=lambda n: (n[1], n[0])))


def _clean_pedal(pedal, seconds: float) -> tuple[tuple[float, float], ...]:
    """Pedal intervals within 0..seconds, sorted and disjoint."""
    cleaned: list[tuple[float, float]] = []
    for down, up in sorted(pedal):
        down = round(max(down, 0.0), TIME_DECIMALS)
        up = round(min(up, seconds), TIME_DECIMALS)
        if cleaned and down <= cleaned[-1][1]:
            down = round(cleaned[-1][1] + 0.02, TIME_DECIMALS)  # lifted before it is caught again
        if up - down > 0.05:
            cleaned.append((down, up))
    return tuple(cleaned)
