"""Generated piano textures: random note lists that span the range and density of piano music.

Owns drawing, from a seed, a `Texture`: timed piano notes and sustain-pedal intervals, made
of segments of a few seconds each of varied kinds (block chords, scales and runs, arpeggios
and Alberti bass, dense random polyphony over all 88 keys, repeated notes and trills,
octaves, slow melody with accompaniment), with varied tempo, dynamics, articulation and
pedalling. The scores of the default corpus rarely reach the extremes of the keyboard, fast
runs or ten-note textures; these textures do. Rendering the notes to audio is the caller's
business. Must not import model, loop or metric code.

Guarantees, for any seed and length: pitches within 21..108 (A0..C8), velocities within
15..127, every note at least `MIN_NOTE_S` long and starting before `seconds`, ending by
`seconds`; no two notes on one key overlap (a key cannot be struck while it is down: the
earlier note is cut at the next one's onset, and a repeat within `MIN_NOTE_S` of the
previous onset is dropped); pedal intervals are sorted, disjoint, with down < up.
"""

import dataclasses

import numpy as np

LOWEST_KEY = 21  # A0
HIGHEST_KEY = 108  # C8
MIN_NOTE_S = 0.03
SEGMENT_S = (2.0, 6.0)
GAP_PROBABILITY = 0.3  # a short silence before a segment
GAP_S = (0.2, 1.5)
PEDAL_PROBABILITY = 0.5  # segments that use the sustain pedal, changed with the harmony
VELOCITY_RANGE = (15, 125)  # pp..ff before accents (which may reach 127)
MAX_DENSE_POLYPHONY = 10
TIME_DECIMALS = 4  # times are rounded to 0.1 ms, so equal onsets compare equal

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
# Degree weights of diatonic harmony: I ii iii IV V vi vii.
DEGREE_WEIGHTS = np.array([3.0, 1.5, 1.0, 2.0, 3.0, 2.0, 0.7])
CHROMATIC_CHORDS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 6, 9), (0, 4, 8))
CHROMATIC_CHORD_PROBABILITY = 0.1


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
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        end = min(t + float(rng.uniform(*SEGMENT_S)), seconds)
        segment = _Segment(rng, t, end)
        GENERATORS[kind](segment)
        notes += segment.notes
        pedal += segment.pedal_intervals()
        kinds.append(kind)
        t = end
        if rng.random() < GAP_PROBABILITY:
            t += float(rng.uniform(*GAP_S))
    return Texture(
        notes=_clean_notes(notes, seconds), pedal=_clean_pedal(pedal, seconds), kind="+".join(kinds)
    )


def _fold(pitch: int) -> int:
    """The pitch moved by octaves into the keyboard."""
    while pitch < LOWEST_KEY:
        pitch += 12
    while pitch > HIGHEST_KEY:
        pitch -= 12
    return pitch


def _keys(pitch_classes, lo: int, hi: int) -> list[int]:
    """Keys within lo..hi (and the keyboard) whose pitch class is in `pitch_classes`."""
    pcs = {pc % 12 for pc in pitch_classes}
    lo, hi = max(int(lo), LOWEST_KEY), min(int(hi), HIGHEST_KEY)
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


class _Segment:
    """One segment being drawn: its key, harmony, dynamics, articulation, and the notes so far."""

    def __init__(self, rng: np.random.Generator, start_s: float, end_s: float):
        self.rng = rng
        self.start_s, self.end_s = start_s, end_s
        self.notes: list[tuple[int, float, float, int]] = []
        tonic = int(rng.integers(12))
        mode = MAJOR if rng.random() < 0.6 else HARMONIC_MINOR
        self.scale = tuple((tonic + step) % 12 for step in mode)
        self.harmony = self._draw_harmony()
        # Dynamics: a level pp..ff and a shape (flat, crescendo, diminuendo or hairpin).
        self.level = float(rng.uniform(*VELOCITY_RANGE))
        self.swell = float(rng.choice([0.0, 1.0, -1.0, 2.0], p=[0.4, 0.2, 0.2, 0.2]))
        self.swell_amount = float(rng.uniform(15, 50))
        self.accent_boost = float(rng.uniform(10, 30))
        # Articulation: sounding fraction of the inter-onset interval (legato > 1 overlaps).
        articulation = rng.choice(["staccato", "portato", "legato"], p=[0.25, 0.35, 0.4])
        self.legato = {
            "staccato": rng.uniform(0.15, 0.45),
            "portato": rng.uniform(0.5, 0.9),
            "legato": rng.uniform(0.95, 1.25),
        }[str(articulation)]
        self.timing_sd_s = float(rng.uniform(0.0, 0.008))
        self.uses_pedal = rng.random() < PEDAL_PROBABILITY

    def _draw_harmony(self) -> list[tuple[float, tuple[int, ...]]]:
        """Chord changes (start_s, pitch classes, root first) at a random harmonic rhythm."""
        rng = self.rng
        mean_span_s = rng.uniform(0.6, 3.0)
        harmony, t = [], self.start_s
        while t < self.end_s:
            if rng.random() < CHROMATIC_CHORD_PROBABILITY:
                root = int(rng.integers(12))
                shape = CHROMATIC_CHORDS[int(rng.integers(len(CHROMATIC_CHORDS)))]
                pcs = tuple((root + i) % 12 for i in shape)
            else:
                degree = int(rng.choice(7, p=DEGREE_WEIGHTS / DEGREE_WEIGHTS.sum()))
                steps = (0, 2, 4, 6) if rng.random() < 0.3 else (0, 2, 4)
                pcs = tuple(self.scale[(degree + s) % 7] for s in steps)
            harmony.append((t, pcs))
            t += mean_span_s * rng.uniform(0.7, 1.3)
        return harmony

    def chord_at(self, t: float) -> tuple[int, ...]:
        chord = self.harmony[0][1]
        for start_s, pcs in self.harmony:
            if start_s > t:
                break
            chord = pcs
        return chord

    def velocity(self, t: float, accent: bool = False, offset: float = 0.0) -> float:
        x = (t - self.start_s) / max(self.end_s - self.start_s, 1e-6)
        shape = {0.0: 0.0, 1.0: x - 0.5, -1.0: 0.5 - x, 2.0: 0.5 - abs(x - 0.5)}[self.swell]
        level = float(np.clip(self.level + self.swell_amount * shape, *VELOCITY_RANGE)) + offset
        # Accents shrink near the top, so that ff passages do not all pile up at 127.
        boost = self.accent_boost * min(1.0, max(0.0, 127.0 - level) / 40.0) if accent else 0.0
        return level + boost

    def duration(self, ioi_s: float) -> float:
        return max(MIN_NOTE_S, ioi_s * self.legato * float(self.rng.uniform(0.9, 1.1)))

    def add(self, pitch: int, start_s: float, duration_s: float, velocity: float) -> None:
        """Adds a note, with a little human timing and loudness jitter."""
        rng = self.rng
        start_s = max(0.0, start_s + float(rng.normal(0.0, self.timing_sd_s)))
        velocity = int(round(np.clip(velocity + rng.normal(0.0, 3.0), VELOCITY_RANGE[0], 127)))
        self.notes.append((_fold(int(pitch)), start_s, start_s + duration_s, velocity))

    def pedal_intervals(self) -> list[tuple[float, float]]:
        """Sustain pedal caught just after each chord change and lifted just before the next."""
        if not self.uses_pedal:
            return []
        rng, intervals = self.rng, []
        changes = [start for start, _ in self.harmony] + [self.end_s]
        i = 0
        while i < len(changes) - 1:
            # Now and then the pedal is held through two harmonies.
            j = min(i + (2 if rng.random() < 0.2 else 1), len(changes) - 1)
            down = changes[i] + float(rng.uniform(0.02, 0.12))
            up = changes[j] - float(rng.uniform(0.0, 0.06))
            if up - down > 0.1:
                intervals.append((down, up))
            i = j
        return intervals


def _block_chords(seg: _Segment) -> None:
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
            keys = _keys(pcs, top - 14, top + 14)
            first = int(rng.integers(0, max(1, len(keys) - size + 1)))
            chord = keys[first : first + size]
        elif voicing == "wide":
            root = _keys(pcs[:1], bass - 6, bass + 6)[:1]
            upper = _keys(pcs, (root or [int(bass)])[0] + 7, (root or [int(bass)])[0] + 40)
            take = min(size - len(root), len(upper))
            chord = root + list(rng.choice(upper, take, replace=False)) if take > 0 else root
        else:
            root = _keys(pcs[:1], bass - 6, bass + 6)[:1]
            left = root + [root[0] + int(rng.choice([7, 12, 16]))] if root else []
            keys = _keys(pcs, top - 10, top + 10)
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


def _scales(seg: _Segment) -> None:
    """Diatonic or chromatic runs, one hand or two (parallel or contrary), 4-16 notes/s."""
    rng = seg.rng
    rate = rng.uniform(4.0, 16.0)
    pcs = range(12) if rng.random() < 0.3 else seg.scale
    width = int(rng.integers(12, 49))
    lo = int(rng.integers(LOWEST_KEY, HIGHEST_KEY - width + 1))
    ladder = _keys(pcs, lo, lo + width)
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


def _arpeggios(seg: _Segment) -> None:
    """Alberti bass under a melody, or broken chords sweeping over 1-4 octaves."""
    rng = seg.rng
    if rng.random() < 0.5:
        rate = rng.uniform(4.0, 12.0)
        bass = rng.uniform(28, 55)
        t, i = seg.start_s, 0
        while t < seg.end_s:
            keys = _keys(seg.chord_at(t), bass, bass + 12)[:3]
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
        ladder = _keys(seg.chord_at(t), lo, lo + 12 * octaves)
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


def _dense(seg: _Segment) -> None:
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


def _repeated(seg: _Segment) -> None:
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
            keys = _keys(seg.chord_at(t), center - 8, center + 8) or [int(center)]
            base = int(rng.choice(keys))
            if style == "repeat":
                pitches = (
                    [base]
                    if rng.random() < 0.6
                    else sorted({base, _fold(base + 4), _fold(base + 7)})
                )
            elif style == "trill":
                pitches = [base, base + int(rng.choice([1, 2]))]
            else:
                pitches = [base, base + int(rng.choice([3, 4, 7, 12]))]
            if with_bass:
                root = _keys(seg.chord_at(t)[:1], center - 36, center - 24) or [LOWEST_KEY]
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


def _octaves(seg: _Segment) -> None:
    """A line in octaves (sometimes filled with the fifth) in either or both hands, 2-8 notes/s."""
    rng = seg.rng
    rate = rng.uniform(2.0, 8.0)
    hands = str(rng.choice(["right", "left", "both"]))
    low = rng.uniform(LOWEST_KEY, 60) if hands == "left" else rng.uniform(45, 84)
    ladder = _keys(seg.scale, low, low + 24)
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


def _melody(seg: _Segment) -> None:
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
        root = _keys(pcs[:1], bass, bass + 11)[0]
        if style == "sustained":
            chord = [root] + _keys(pcs, root + 12, root + 24)[:3]
            for pitch in chord:
                seg.add(
                    pitch,
                    start,
                    max(MIN_NOTE_S, span * min(seg.legato, 1.0)),
                    seg.velocity(start, offset=-15),
                )
        elif style == "broken":
            keys = _keys(pcs, root, root + 19)
            step = 1.0 / rng.uniform(2.0, 6.0)
            for i, t in enumerate(np.arange(start, end, step)):
                seg.add(keys[i % len(keys)], t, seg.duration(step), seg.velocity(t, offset=-15))
        elif style == "waltz":
            beat = span / 3
            seg.add(root, start, seg.duration(beat), seg.velocity(start, offset=-10))
            for k in (1, 2):
                for pitch in _keys(pcs, root + 12, root + 24)[:3]:
                    seg.add(
                        pitch, start + k * beat, seg.duration(beat), seg.velocity(start, offset=-18)
                    )
        else:
            seg.add(root, start, max(MIN_NOTE_S, span * 0.9), seg.velocity(start, offset=-10))
            seg.add(root - 12, start, max(MIN_NOTE_S, span * 0.9), seg.velocity(start, offset=-14))


def _melody_line(seg: _Segment, rate: float, top: float) -> None:
    """A stepwise melody below `top`, chord tones on long notes, a little louder than the rest."""
    rng = seg.rng
    ladder = _keys(seg.scale, top - 19, top)
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


def _clean_notes(notes, seconds: float) -> tuple[tuple[int, float, float, int], ...]:
    """Notes cut to `seconds`, one key never down twice, sorted by (start, pitch)."""
    by_pitch: dict[int, list[list]] = {}
    for pitch, start, end, velocity in sorted(notes, key=lambda n: (n[1], n[0])):
        start = round(start, TIME_DECIMALS)
        end = round(min(end, seconds), TIME_DECIMALS)
        if end - start < MIN_NOTE_S:
            continue
        kept = by_pitch.setdefault(pitch, [])
        if kept and start - kept[-1][1] < MIN_NOTE_S:
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
