"""Tests of generated piano textures (jaxnotes/data/corpus/textures.py and its segments)."""

import collections

import numpy as np
import pytest

from jaxnotes.data.corpus import texture_kinds, texture_segment, textures

SEEDS = range(30)
SECONDS = 20.0


@pytest.fixture(scope="module")
def drawn():
    return [textures.generate_texture(seed, SECONDS) for seed in SEEDS]


def _overlapping_same_pitch(notes):
    """(pitch, earlier, later) for every key struck again while still down."""
    by_pitch = collections.defaultdict(list)
    for pitch, start, end, _ in notes:
        by_pitch[pitch].append((start, end))
    return [
        (pitch, a, b)
        for pitch, spans in by_pitch.items()
        for a, b in zip(sorted(spans), sorted(spans)[1:], strict=False)
        if a[1] > b[0]
    ]


def _polyphony(notes, seconds, fps=100):
    """Number of notes down in each frame."""
    count_F = np.zeros(int(seconds * fps) + 1, dtype=int)
    for _, start, end, _ in notes:
        count_F[int(np.ceil(start * fps)) : int(np.ceil(end * fps))] += 1
    return count_F


def test_same_seed_same_texture_and_seeds_differ():
    a = textures.generate_texture(7, 10.0)
    assert a == textures.generate_texture(7, 10.0)
    assert a.notes != textures.generate_texture(8, 10.0).notes
    assert isinstance(a, textures.Texture) and a.kind


def test_notes_are_well_formed(drawn):
    for texture in drawn:
        notes = texture.notes
        assert len(notes) > 50
        for pitch, start, end, velocity in notes:
            assert isinstance(pitch, int) and isinstance(velocity, int)
            assert 21 <= pitch <= 108
            assert 1 <= velocity <= 127
            assert 0.0 <= start < end <= SECONDS
            assert end - start >= texture_segment.MIN_NOTE_S - 1e-9
        assert [n[1] for n in notes] == sorted(n[1] for n in notes)
        assert _overlapping_same_pitch(notes) == []


def test_overlap_check_catches_a_key_struck_twice():
    """The check used above does fail on a key struck while still down."""
    assert _overlapping_same_pitch([(60, 0.0, 1.0, 80), (60, 0.5, 1.5, 80)]) == [
        (60, (0.0, 1.0), (0.5, 1.5))
    ]
    assert _overlapping_same_pitch([(60, 0.0, 0.5, 80), (60, 0.5, 1.5, 80)]) == []


def test_pedal_intervals_are_well_formed(drawn):
    with_pedal = 0
    for texture in drawn:
        pedal = texture.pedal
        with_pedal += bool(pedal)
        for down, up in pedal:
            assert 0.0 <= down < up <= SECONDS
        for (_, up), (down, _) in zip(pedal, pedal[1:], strict=False):
            assert up < down
    assert with_pedal >= 20  # about half the segments are pedalled: most textures have some


def test_keys_range_and_register(drawn):
    count_K = np.zeros(128, dtype=int)
    for texture in drawn:
        for pitch, *_ in texture.notes:
            count_K[pitch] += 1
    assert np.count_nonzero(count_K[21:109]) >= 80
    share = count_K / count_K.sum()
    # More notes in the middle (C3..C6), but the bottom and top octaves are really played.
    assert share[48:85].sum() > 0.4
    assert share[21:33].sum() > 0.02 and share[97:109].sum() > 0.01


def test_density_tempo_and_dynamics_vary(drawn):
    max_polyphony = max(_polyphony(t.notes, SECONDS).max() for t in drawn)
    assert max_polyphony >= 6
    onset_rates = [
        np.histogram([n[1] for n in t.notes], bins=np.arange(0.0, SECONDS + 1.0))[0] for t in drawn
    ]
    assert max(r.max() for r in onset_rates) >= 16  # fast runs and dense passages
    velocities = [n[3] for t in drawn for n in t.notes]
    assert min(velocities) <= 30 and max(velocities) >= 115
    kinds = {kind for t in drawn for kind in t.kind.split("+")}
    assert kinds == set(texture_kinds.KINDS)


def test_short_texture_ends_in_time():
    texture = textures.generate_texture(3, 1.0)
    assert texture.notes and all(end <= 1.0 for _, _, end, _ in texture.notes)
    assert all(up <= 1.0 for _, up in texture.pedal)
