"""The kinds of segment a generated piano texture is made of: the note-pattern generators.

Owns `GENERATORS`, one function per kind (block chords, scales and runs, arpeggios and
Alberti bass, dense random polyphony over all 88 keys, repeated notes and trills, octaves,
slow melody with accompaniment), each filling a `texture_segment.Segment` with its notes,
and how often each kind is drawn (`KIND_WEIGHTS`). Putting segments together into a
`Texture` and cleaning its notes is `textures`'s business. Must not import `textures`
(which imports this module), nor model, loop or metric code.
"""

import numpy as np

from jaxnotes.data.corpus.texture_segment import (
    HIGHEST_KEY,
    LOWEST_KEY,
    MIN_NOTE_S,
    Segment,
    fold,
    keys_in,
)

MAX_DENSE_POLYPHONY = 10


def _block_chords(seg: Segment) -> None:
    """Block chords of 2-6 notes in close, wide or two-hand voicings, 0.5-4 chords per second."""
    rng = seg.rng
    rate = rng.uniform(0.5, 4.0)
    voicing = str(rng.choice(["close", "wide", "two_hands"]))
    top = rng.uniform(55, 100)
    bass = rng.uniform(24, 55)
    roll_s = float(rng.choice([0.0, 0.0, 0.0, 0.015, 0.03]))
    t, beat = seg.start_s, 0
    while t < seg.end_s:
        pcs = seg.chord_at(t)
        size = int(rng.integers(2, 7))
        if voicing == "close":
            keys = keys_in(pcs, top - 14, top + 14)
            first = int(rng.integers(0, max(1, len(keys) - size + 1)))
            chord = keys[first : first + size]
        elif voicing == "wide":
            root = keys_in(pcs[:1], bass - 6, bass + 6)[:1]
            upper = keys_in(pcs, (root or [int(bass)])[0] + 7, (root or [int(bass)])[0] + 40)
            take = min(size - len(root), len(upper))
            chord = root + list(rng.choice(upper, take, replace=False)) if take > 0 else root
        else:
            root = keys_in(pcs[:1], bass - 6, bass + 6)[:1]
            left = root + [root[0] + int(rng.choice([7, 12, 16]))] if root else []
            keys = keys_in(pcs, top - 10, top + 10)
            take = max(1, size - 1)
            first = int(rng.integers(0, max(1, len(keys) - take + 1)))
            chord = left + keys[first : first + take]
        ioi = rng.uniform(0.9, 1.1) / rate
        duration = seg.duration(ioi)
        velocity = seg.velocity(t, accent=beat % 4 == 0 and rng.random() < 0.5)
        for i, pitch in enumerate(sorted(set(chord))):
            seg.add(pitch, t + i * roll_s, duration, velocity)
        t += ioi
        beat += 1


def _scales(seg: Segment) -> None:
    """Diatonic or chromatic runs, one hand or two (parallel or contrary), 4-16 notes/s."""
    rng = seg.rng
    rate = rng.uniform(4.0, 16.0)
    pcs = range(12) if rng.random() < 0.3 else seg.scale
    width = int(rng.integers(12, 49))
    lo = int(rng.integers(LOWEST_KEY, HIGHEST_KEY - width + 1))
    ladder = keys_in(pcs, lo, lo + width)
    hands = str(rng.choice(["one", "parallel", "contrary"]))
    interval = int(rng.choice([-12, -15, -16, -24, 12]))
    group = int(rng.choice([3, 4, 6, 8]))
    index = int(rng.integers(len(ladder)))
    direction = 1 if rng.random() < 0.5 else -1
    t, i = seg.start_s, 0
    while t < seg.end_s:
        ioi = rng.uniform(0.95, 1.05) / rate
        duration = seg.duration(ioi)
        velocity = seg.velocity(t, accent=i % group == 0)
        seg.add(ladder[index], t, duration, velocity)
        if hands == "parallel":
            seg.add(ladder[index] + interval, t, duration, velocity - 5)
        elif hands == "contrary":
            seg.add(ladder[len(ladder) - 1 - index], t, duration, velocity - 5)
        if rng.random() < 0.05:
            direction = -direction
        if not 0 <= index + direction < len(ladder):
            direction = -direction
        index = min(max(index + direction, 0), len(ladder) - 1)
        t += ioi * (2.0 if rng.random() < 0.03 else 1.0)
        i += 1


def _arpeggios(seg: Segment) -> None:
    """Alberti bass under a melody, or broken chords sweeping over 1-4 octaves."""
    rng = seg.rng
    if rng.random() < 0.5:
        rate = rng.uniform(4.0, 12.0)
        bass = rng.uniform(28, 55)
        t, i = seg.start_s, 0
        while t < seg.end_s:
            keys = keys_in(seg.chord_at(t), bass, bass + 12)[:3]
            pattern = (0, 2, 1, 2)[i % 4]
            ioi = rng.uniform(0.95, 1.05) / rate
            seg.add(
                keys[min(pattern, len(keys) - 1)], t, seg.duration(ioi), seg.velocity(t, offset=-12)
            )
            t += ioi
            i += 1
        _melody_line(seg, rng.uniform(1.0, 4.0), rng.uniform(bass + 17, 92))
        return
    rate = rng.uniform(6.0, 16.0)
    octaves = int(rng.integers(1, 5))
    lo = rng.uniform(LOWEST_KEY, HIGHEST_KEY - 12 * octaves)
    second_hand = rng.random() < 0.4
    pattern = str(rng.choice(["up", "down", "up_down"]))
    t, index = seg.start_s, 0
    while t < seg.end_s:
        ladder = keys_in(seg.chord_at(t), lo, lo + 12 * octaves)
        ioi = rng.uniform(0.95, 1.05) / rate
        if pattern == "up":
            position = index % len(ladder)
        elif pattern == "down":
            position = len(ladder) - 1 - index % len(ladder)
        else:  # up and back down, bouncing off the ends
            period = max(1, 2 * (len(ladder) - 1))
            position = index % period
            position = position if position < len(ladder) else period - position
        pitch = ladder[position]
        velocity = seg.velocity(t, accent=position == 0)
        seg.add(pitch, t, seg.duration(ioi), velocity)
        if second_hand:
            seg.add(pitch - 12, t, seg.duration(ioi), velocity - 6)
        index += 1
        t += ioi


def _dense(seg: Segment) -> None:
    """Random polyphony over all 88 keys: groups of 1-6 onsets, at most 6-10 keys down."""
    rng = seg.rng
    events_per_s = rng.uniform(2.0, 10.0)
    cap = int(rng.integers(6, MAX_DENSE_POLYPHONY + 1))
    clustered = rng.random() < 0.3
    center = rng.uniform(30, 100)
    ends: list[float] = []
    t = seg.start_s + rng.exponential(1.0 / events_per_s)
    while t < seg.end_s:
        down = sum(end > t for end in ends)
        count = min(int(rng.integers(1, 7)), cap - down)
        if clustered:
            pitches = np.round(rng.normal(center, 12.0, count)).astype(int)
        else:
            pitches = rng.integers(LOWEST_KEY, HIGHEST_KEY + 1, count)
        for pitch in pitches:
            duration = float(np.exp(rng.uniform(np.log(0.05), np.log(1.5))))
            seg.add(int(pitch), t, duration, seg.velocity(t) + rng.normal(0.0, 8.0))
            ends.append(t + duration)
        t += rng.exponential(1.0 / events_per_s)


def _repeated(seg: Segment) -> None:
    """Repeated notes or chords (4-12/s), trills (8-16/s) or tremolos, over held bass notes."""
    rng = seg.rng
    style = str(rng.choice(["repeat", "trill", "tremolo"]))
    rate = rng.uniform(4.0, 12.0) if style == "repeat" else rng.uniform(8.0, 16.0)
    center = rng.uniform(36, 100)
    with_bass = rng.random() < 0.6
    t, i, chunk_end = seg.start_s, 0, seg.start_s
    pitches: list[int] = []
    while t < seg.end_s:
        if t >= chunk_end:
            chunk_end = t + rng.uniform(0.8, 3.0)
            keys = keys_in(seg.chord_at(t), center - 8, center + 8) or [int(center)]
            base = int(rng.choice(keys))
            if style == "repeat":
                pitches = (
                    [base] if rng.random() < 0.6 else sorted({base, fold(base + 4), fold(base + 7)})
                )
            elif style == "trill":
                pitches = [base, base + int(rng.choice([1, 2]))]
            else:
                pitches = [base, base + int(rng.choice([3, 4, 7, 12]))]
            if with_bass:
                root = keys_in(seg.chord_at(t)[:1], center - 36, center - 24) or [LOWEST_KEY]
                seg.add(root[0], t, chunk_end - t, seg.velocity(t, offset=-8))
        ioi = rng.uniform(0.95, 1.05) / rate
        velocity = seg.velocity(t, accent=i % 4 == 0 and rng.random() < 0.4)
        if style == "repeat":
            for pitch in pitches:
                seg.add(pitch, t, min(seg.duration(ioi), ioi), velocity)
        else:
            seg.add(pitches[i % 2], t, seg.duration(ioi), velocity)
        t += ioi
        i += 1


def _octaves(seg: Segment) -> None:
    """A line in octaves (sometimes filled with the fifth) in either or both hands, 2-8 notes/s."""
    rng = seg.rng
    rate = rng.uniform(2.0, 8.0)
    hands = str(rng.choice(["right", "left", "both"]))
    low = rng.uniform(LOWEST_KEY, 60) if hands == "left" else rng.uniform(45, 84)
    ladder = keys_in(seg.scale, low, low + 24)
    filled = rng.random() < 0.3
    index = int(rng.integers(len(ladder)))
    t = seg.start_s
    while t < seg.end_s:
        ioi = rng.choice([1.0, 1.0, 2.0, 0.5]) / rate
        pitch = ladder[index]
        velocity = seg.velocity(t, accent=rng.random() < 0.15)
        duration = seg.duration(ioi)
        pitches = [pitch, pitch + 12] + ([pitch + 7] if filled else [])
        if hands == "both":
            pitches += [pitch - 24, pitch - 12]
        for p in pitches:
            seg.add(p, t, duration, velocity)
        index = min(max(index + int(rng.choice([-3, -2, -1, -1, 1, 1, 2, 3])), 0), len(ladder) - 1)
        t += ioi


def _melody(seg: Segment) -> None:
    """A slow melody (1-4 notes/s) over sustained chords, broken chords, waltz or bass notes."""
    rng = seg.rng
    rate = rng.uniform(1.0, 4.0)
    top = rng.uniform(60, 96)
    _melody_line(seg, rate, top)
    style = str(rng.choice(["sustained", "broken", "waltz", "bass"]))
    bass = rng.uniform(24, 50)
    changes = [start for start, _ in seg.harmony] + [seg.end_s]
    for (start, pcs), end in zip(seg.harmony, changes[1:], strict=True):
        span = end - start
        root = keys_in(pcs[:1], bass, bass + 11)[0]
        if style == "sustained":
            chord = [root] + keys_in(pcs, root + 12, root + 24)[:3]
            for pitch in chord:
                seg.add(
                    pitch,
                    start,
                    max(MIN_NOTE_S, span * min(seg.legato, 1.0)),
                    seg.velocity(start, offset=-15),
                )
        elif style == "broken":
            keys = keys_in(pcs, root, root + 19)
            step = 1.0 / rng.uniform(2.0, 6.0)
            for i, t in enumerate(np.arange(start, end, step)):
                seg.add(keys[i % len(keys)], t, seg.duration(step), seg.velocity(t, offset=-15))
        elif style == "waltz":
            beat = span / 3
            seg.add(root, start, seg.duration(beat), seg.velocity(start, offset=-10))
            for k in (1, 2):
                for pitch in keys_in(pcs, root + 12, root + 24)[:3]:
                    seg.add(
                        pitch, start + k * beat, seg.duration(beat), seg.velocity(start, offset=-18)
                    )
        else:
            seg.add(root, start, max(MIN_NOTE_S, span * 0.9), seg.velocity(start, offset=-10))
            seg.add(root - 12, start, max(MIN_NOTE_S, span * 0.9), seg.velocity(start, offset=-14))


def _melody_line(seg: Segment, rate: float, top: float) -> None:
    """A stepwise melody below `top`, chord tones on long notes, a little louder than the rest."""
    rng = seg.rng
    ladder = keys_in(seg.scale, top - 19, top)
    index = int(rng.integers(len(ladder)))
    offset = float(rng.uniform(5, 15))
    t = seg.start_s
    while t < seg.end_s:
        ioi = float(rng.choice([0.5, 1.0, 1.0, 1.0, 1.5, 2.0])) / rate
        if ioi * rate >= 1.5:  # long notes land on chord tones
            tones = [i for i, p in enumerate(ladder) if p % 12 in seg.chord_at(t)]
            if tones:
                index = min(tones, key=lambda i: abs(i - index))
        seg.add(
            ladder[index],
            t,
            seg.duration(ioi),
            seg.velocity(t, accent=rng.random() < 0.1, offset=offset),
        )
        step = int(rng.choice([-4, -2, -1, -1, -1, 0, 1, 1, 1, 2, 4]))
        index = min(max(index + step, 0), len(ladder) - 1)
        t += ioi


GENERATORS = {
    "chords": _block_chords,
    "scales": _scales,
    "arpeggios": _arpeggios,
    "dense": _dense,
    "repeated": _repeated,
    "octaves": _octaves,
    "melody": _melody,
}
KINDS = tuple(GENERATORS)
KIND_WEIGHTS = np.array([0.15, 0.15, 0.15, 0.15, 0.1, 0.1, 0.2])
