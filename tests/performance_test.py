"""Tests of a score's performance on the piano (jaxnotes/data/corpus/performance.py).

The events are a four-part, chorale-like score written here (a chord a beat at 90 qpm for
40 s, repeated notes in every part), so no music21 parsing is needed; rendering a performed
score from music21 through the sampled piano is in release_corpus_test.
"""

import collections
import dataclasses

import numpy as np
import pytest

from jaxnotes.data.corpus import performance, scores

BEAT_S = 60.0 / 90.0
SEED = 11


def _score(beats: int = 60) -> list[scores.Event]:
    rng = np.random.default_rng(0)
    events = []
    for track, centre in (("part0", 72), ("part1", 65), ("part2", 58), ("part3", 46)):
        for b in range(beats):
            pitch = centre + int(rng.integers(-3, 4)) if b % 3 else centre  # repeats every 3 beats
            start = scores.LEAD_S + b * BEAT_S
            events.append(
                scores.Event(track, 1, pitch, start, start + 0.95 * BEAT_S, 80, b, 1.0, "Quarter")
            )
    return sorted(events, key=lambda e: (e.track, e.pitch, e.start_s))


@pytest.fixture(scope="module")
def played():
    return performance.perform(_score(), SEED)


def test_same_seed_same_performance_and_seeds_differ(played):
    assert performance.perform(_score(), SEED) == played
    other = performance.perform(_score(), SEED + 1)
    assert [e.velocity for e in other.events] != [e.velocity for e in played.events]
    assert performance.perform([], SEED) == performance.Performance([], ())


def test_only_times_and_loudness_change(played):
    written = _score()
    assert len(played.events) == len(written)
    for w, p in zip(written, played.events, strict=True):
        assert (p.track, p.pitch, p.program, p.start_q, p.duration_q, p.value) == (
            w.track,
            w.pitch,
            w.program,
            w.start_q,
            w.duration_q,
            w.value,
        )
        assert isinstance(p.velocity, int) and 1 <= p.velocity <= 127
        assert p.start_s >= scores.LEAD_S
        assert p.end_s - p.start_s >= scores.MIN_NOTE_S - 1e-9


def test_a_key_is_never_held_twice_in_one_part(played):
    by_key = collections.defaultdict(list)
    for e in played.events:
        by_key[(e.track, e.pitch)].append((e.start_s, e.end_s))
    for spans in by_key.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start


def test_untangle_separates_notes_the_spread_would_overlap():
    events = [
        scores.Event("p", 1, 60, 1.0, 1.2, 80, 0, 1, "Quarter"),
        scores.Event("p", 1, 60, 1.2, 1.4, 80, 1, 1, "Quarter"),
    ]
    start_N, end_N = np.array([1.0, 0.99]), np.array([1.2, 1.4])  # the second pulled early
    performance._untangle(events, start_N, end_N)
    assert start_N[1] - start_N[0] >= 2 * scores.MIN_NOTE_S - 1e-12  # written order kept
    assert end_N[0] <= start_N[1]
    assert (end_N - start_N >= scores.MIN_NOTE_S - 1e-12).all()


def test_dynamics_swell_and_the_melody_sings(played):
    velocity_N = np.array([e.velocity for e in played.events])
    assert velocity_N.max() - velocity_N.min() >= 25  # the written score is flat (80)
    # Loudness changes slowly: over 5 s windows the mean moves, within a chord it is close.
    start_N = np.array([e.start_s for e in played.events])
    windows = [velocity_N[(start_N >= t) & (start_N < t + 5)].mean() for t in range(1, 36, 5)]
    assert max(windows) - min(windows) >= 8
    by_track = {
        t: np.mean([e.velocity for e in played.events if e.track == t])
        for t in ("part0", "part1", "part2")
    }
    assert by_track["part0"] > max(by_track["part1"], by_track["part2"])


def test_timing_bends_but_keeps_the_music_in_order(played):
    written = _score()
    by_beat = collections.defaultdict(list)
    for w, p in zip(written, played.events, strict=True):
        by_beat[w.start_q].append(p.start_s)
    beats = sorted(by_beat)
    centre_B = np.array([np.median(by_beat[b]) for b in beats])
    assert (np.diff(centre_B) > 0).all()  # chords keep their order
    ioi_B = np.diff(centre_B)
    assert ioi_B.std() > 0.002 and abs(ioi_B.mean() - BEAT_S) < 0.15 * BEAT_S  # rubato, same tempo
    spread = max(np.ptp(v) for v in by_beat.values())
    assert 0 < spread < 0.15  # chords spread by milliseconds, not beats


def test_pedal_changes_with_the_bass(played):
    seeds_with_pedal = [s for s in range(20) if performance.perform(_score(), s).pedal]
    assert 0 < len(seeds_with_pedal) < 20  # most pieces pedal, some do not
    with_pedal = performance.perform(_score(), seeds_with_pedal[0])
    onset_N = np.array([e.start_s for e in with_pedal.events])
    last_end = max(e.end_s for e in with_pedal.events)
    previous_up = 0.0
    for down, up in with_pedal.pedal:
        assert previous_up <= down < up <= last_end
        assert up - down <= performance.MAX_PEDAL_S
        # Caught 30-120 ms after a note (rounded to 10 ms where the changes are found).
        assert ((down - onset_N >= 0.03 - 0.006) & (down - onset_N <= 0.12 + 0.006)).any()
        previous_up = up
    # The bass moves on most of the 60 beats (40 s): the pedal changes with it.
    assert len(with_pedal.pedal) >= 30


def test_octave_doublings_add_to_the_same_performance():
    written = _score()
    plain = [performance.perform(written, s) for s in range(12)]
    doubled = [performance.perform(written, s, octaves=True) for s in range(12)]
    kinds = collections.Counter()
    for a, b in zip(plain, doubled, strict=True):
        assert b.events[: len(a.events)] == a.events and b.pedal == a.pedal
        extra = b.events[len(a.events) :]
        sources = {(e.track, e.pitch, e.start_s): e for e in a.events}
        for e in extra:
            track, suffix = e.track.rsplit("-", 1)
            interval = {"8vb": -12, "8va": 12}[suffix]
            source = sources[(track, e.pitch - interval, e.start_s)]  # sounds with its note
            assert e.end_s == source.end_s and e.velocity <= source.velocity
            assert performance.LOWEST_KEY <= e.pitch <= performance.HIGHEST_KEY
            kinds[suffix] += 1
        # No key is struck by a doubling while another part holds it.
        for e in extra:
            others = [o for o in b.events if o is not e and o.pitch == e.pitch]
            assert not any(o.start_s < e.end_s and e.start_s < o.end_s for o in others)
        bass_doubled = any(e.track == "part3-8vb" for e in extra)
        assert all(e.track in ("part3-8vb", "part0-8va") for e in extra)
        if bass_doubled:  # the bass (centred on MIDI 46) reaches below C2 (36)
            assert min(e.pitch for e in extra) < 36
    assert kinds["8vb"] > kinds["8va"] > 0  # the bass more often than the melody


def test_a_doubling_off_the_keyboard_is_left_out():
    events = [
        scores.Event("low", 1, 25, 1.0, 2.0, 80, 0, 1, "Whole"),  # 13 would be below A0
        scores.Event("high", 1, 100, 1.0, 2.0, 80, 0, 1, "Whole"),  # 112 above C8
    ]
    for seed in range(20):
        played = performance.perform(events, seed, octaves=True).events
        assert [e.pitch for e in played] == [25, 100]


def test_keys_let_go_early_only_where_the_pedal_holds_them():
    seed = next(s for s in range(20) if performance.perform(_score(), s).pedal)
    played = performance.perform(_score(), seed)
    down_P = np.array([a for a, _ in played.pedal])
    up_P = np.array([b for _, b in played.pedal])
    lifted = performance.lift_under_pedal(played.events, played.pedal, 5)
    assert lifted == performance.lift_under_pedal(played.events, played.pedal, 5)
    assert lifted != performance.lift_under_pedal(played.events, played.pedal, 6)
    assert len(lifted) == len(played.events)
    held = moved = 0
    for before, after in zip(played.events, lifted, strict=True):
        assert dataclasses.replace(after, end_s=before.end_s) == before  # only the release
        k = np.searchsorted(down_P, before.end_s, side="right") - 1
        under_pedal = k >= 0 and before.end_s < up_P[k]
        held += under_pedal
        if after.end_s == before.end_s:
            continue
        moved += 1
        assert under_pedal and after.end_s < before.end_s
        # Still down for the shortest hold, and until the pedal caught the sound: released
        # inside the same pedal interval, so the damper still falls at its up.
        assert after.end_s >= before.start_s + performance.LIFT_HOLD_S - 1e-9
        assert down_P[k] + performance.LIFT_CATCH_S - 1e-9 <= after.end_s < up_P[k]
    assert held > 40  # legato pedalling holds most of the 240 keys' releases
    lo, hi = performance.LIFT_SHARE
    assert lo * 0.5 * held < moved < hi * held
    # No pedal, nothing to let go.
    assert performance.lift_under_pedal(played.events, (), 5) == played.events
