"""One segment of a generated piano texture as it is drawn, and the keyboard it is drawn on.

Owns `Segment`: the state of a few seconds of texture while its notes are drawn (key and
harmony at a random harmonic rhythm, dynamics and accents, articulation, human timing,
sustain pedal caught at the chord changes), and the keyboard helpers every segment kind
uses (`fold`, `keys_in`). What notes a segment plays is `texture_kinds`'s business, and
putting segments together into a `Texture` is `textures`'s. Must not import either of them
(both import this module), nor model, loop or metric code.
"""

import numpy as np

LOWEST_KEY = 21  # A0
HIGHEST_KEY = 108  # C8
MIN_NOTE_S = 0.03
PEDAL_PROBABILITY = 0.5  # segments that use the sustain pedal, changed with the harmony
VELOCITY_RANGE = (15, 125)  # pp..ff before accents (which may reach 127)

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
# Degree weights of diatonic harmony: I ii iii IV V vi vii.
DEGREE_WEIGHTS = np.array([3.0, 1.5, 1.0, 2.0, 3.0, 2.0, 0.7])
CHROMATIC_CHORDS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 6, 9), (0, 4, 8))
CHROMATIC_CHORD_PROBABILITY = 0.1


def fold(pitch: int) -> int:
    """The pitch moved by octaves into the keyboard."""
    while pitch < LOWEST_KEY:
        pitch += 12
    while pitch > HIGHEST_KEY:
        pitch -= 12
    return pitch


def keys_in(pitch_classes, lo: int, hi: int) -> list[int]:
    """Keys within lo..hi (and the keyboard) whose pitch class is in `pitch_classes`."""
    pcs = {pc % 12 for pc in pitch_classes}
    lo, hi = max(int(lo), LOWEST_KEY), min(int(hi), HIGHEST_KEY)
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


class Segment:
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
        self.notes.append((fold(int(pitch)), start_s, start_s + duration_s, velocity))

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
