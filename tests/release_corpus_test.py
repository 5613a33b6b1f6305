"""The release corpus: its plan, and pieces rendered by the sampled piano with acoustics.

Also its performed twin ('release_performed', experiment E010): the same plan with the
sampled piano's scores given a performance (performance.py).

The plan is checked without rendering; two short pieces (a generated texture and a chorale
on the sampled piano, both in a simulated room) are rendered through `rendering.build_piece`
with a fake sample folder (every key and layer, short synthetic tones: no download).
"""

import collections
import dataclasses
import math
import os

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from configs import release
from jaxnotes.data import labels as labels_lib
from jaxnotes.data.corpus import acoustics, performance, piano, rendering, scores, textures
from jaxnotes.data.corpus import build as corpus
from jaxnotes.data.corpus import voicing as voicing_lib


@pytest.fixture(scope="module")
def plan():
    return corpus.plan_corpus("release", 0, release.RESERVED_WORKS)


def test_release_plan_mixes_sources_and_keeps_the_default_test_split(plan):
    train = [p for p in plan if p.split == "train"]
    kinds = collections.Counter(
        "texture" if p.texture_seed is not None else p.renderer for p in train
    )
    assert kinds["texture"] == corpus.SIZES["release"].textures == 60
    scores = kinds["piano"] + kinds["fluidsynth"]
    assert 0.25 < kinds["piano"] / scores < 0.45  # piano_fraction 0.35 of the scores
    with_room = sum(p.acoustics_seed is not None for p in train) / len(train)
    assert 0.75 < with_room < 0.95  # acoustics_fraction 0.85
    assert all(p.soundfont == corpus.PIANO_NAME for p in train if p.renderer == "piano")
    # Test: the default size's pieces, rendered the same way (dry, held-out soundfont).
    test = [p for p in plan if p.split == "test"]
    assert test == [p for p in corpus.plan_corpus("default", 0) if p.split == "test"]
    # The reserved works never reach training; the plan is a function of its arguments.
    reserved = {w.split(".")[0] for w in release.RESERVED_WORKS}
    assert not {p.work for p in train} & reserved
    assert corpus.plan_corpus("release", 0, release.RESERVED_WORKS) == plan
    assert len({p.piece_id for p in plan}) == len(plan)


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    """A PianoSampler over a fake folder: every sample a 0.6 s decaying tone at its pitch."""
    folder = tmp_path_factory.mktemp("piano") / piano.SAMPLE_DIR_NAME
    folder.mkdir()
    rate = 16000
    t_S = np.arange(int(0.6 * rate)) / rate
    for pitch in piano.SAMPLE_PITCHES:
        f0 = 440.0 * 2 ** ((min(pitch, 96) - 69) / 12)  # keep the fake's partial below Nyquist
        tone_S = (np.sin(2 * np.pi * f0 * t_S) * np.exp(-t_S / 0.3)).astype(np.float32)
        for layer in range(1, 17):
            level = 10 ** (piano.LAYER_DB[layer - 1] / 20) / 0.6
            sf.write(str(folder / piano.sample_file(pitch, layer)), level * tone_S, rate)
    (folder / ".complete").write_text("fake\n")
    return piano.PianoSampler(str(folder), sr=rendering.SAMPLE_RATE)


def _render(piece, root, sampler) -> tuple[dict, np.ndarray, list[labels_lib.Note]]:
    for folder in ("train_data", "train_labels", "midi"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    row = rendering.build_piece(piece, str(root), "fluidsynth-unused", None, piano=sampler)
    assert "failed" not in row, row
    name = str(piece.piece_id)
    audio_S, rate = sf.read(os.path.join(root, "train_data", f"{name}.wav"), dtype="float32")
    assert rate == rendering.SAMPLE_RATE
    notes = labels_lib.read_label_csv(os.path.join(root, "train_labels", f"{name}.csv"), rate)
    return row, audio_S, notes


def test_a_texture_renders_on_the_piano_in_a_room(plan, sampler, tmp_path):
    piece = next(p for p in plan if p.texture_seed is not None and p.acoustics_seed is not None)
    piece = dataclasses.replace(piece, max_seconds=4.0)
    row, audio_S, notes = _render(piece, tmp_path, sampler)
    texture = textures.generate_texture(piece.texture_seed, 4.0)
    assert len(notes) == len(texture.notes)
    first = min(n.start_s for n in notes)
    assert first == pytest.approx(scores.LEAD_S + texture.notes[0][1], abs=2e-3)
    # The acoustic chain sets the level: the drawn peak, within 16-bit rounding.
    room = acoustics.draw_acoustics(piece.acoustics_seed)
    assert 20 * math.log10(np.abs(audio_S).max()) == pytest.approx(room.peak_dbfs, abs=0.1)
    assert "Salamander" in row["source"] and "room" in row["source"]
    assert row["composer"] == "Generated" and row["transcriber"] == "generated"


def test_a_score_renders_on_the_piano(plan, sampler, tmp_path):
    piece = next(p for p in plan if p.renderer == "piano" and p.texture_seed is None)
    piece = dataclasses.replace(piece, max_seconds=4.0, acoustics_seed=None)
    row, audio_S, notes = _render(piece, tmp_path, sampler)
    assert notes and all(n.program == 1 for n in notes)  # every part on the piano
    assert row["ensemble"] == "Solo Piano"
    # Sound starts where the first note does (dry: no room to smear it).
    lead = int(scores.LEAD_S * rendering.SAMPLE_RATE)
    assert np.abs(audio_S[: lead - 100]).max() == 0.0
    assert np.abs(audio_S[lead : lead + 2000]).max() > 0.01


@pytest.fixture(scope="module")
def performed_plan():
    return corpus.plan_corpus("release_performed", 0, release.RESERVED_WORKS)


def test_release_performed_plan_is_the_release_plan_with_performances(plan, performed_plan):
    assert [dataclasses.replace(p, performance_seed=None) for p in performed_plan] == plan
    performed = {p.piece_id for p in performed_plan if p.performance_seed is not None}
    scores_on_piano = {p.piece_id for p in plan if p.renderer == "piano" and p.texture_seed is None}
    assert performed == scores_on_piano and performed
    assert not any(p.octaves for p in performed_plan)
    # 'release_octaves' is the same again, its performances with octave doublings.
    octaves = corpus.plan_corpus("release_octaves", 0, release.RESERVED_WORKS)
    assert [dataclasses.replace(p, octaves=False) for p in octaves] == performed_plan
    assert {p.piece_id for p in octaves if p.octaves} == performed


def test_a_performed_score_renders_its_performance(performed_plan, sampler, tmp_path):
    piece = next(p for p in performed_plan if p.performance_seed is not None)
    piece = dataclasses.replace(piece, max_seconds=4.0, acoustics_seed=None)
    row, audio_S, notes = _render(piece, tmp_path, sampler)
    _, _, events = scores.score_events(piece)
    played = performance.perform(events, piece.performance_seed).events
    assert len(notes) == len(played)
    # The labels are the keys as performed (MIDI ticks round times by under a millisecond).
    for note, event in zip(
        sorted(notes, key=lambda n: (n.pitch, n.start_s)),
        sorted(played, key=lambda e: (e.pitch, e.start_s)),
        strict=True,
    ):
        assert note.pitch == event.pitch
        assert note.start_s == pytest.approx(event.start_s, abs=2e-3)
        assert note.end_s == pytest.approx(event.end_s, abs=2e-3)
    # The MIDI the piano played holds the performed loudness (label CSVs keep no velocity).
    midi_file = pretty_midi.PrettyMIDI(str(tmp_path / "midi" / f"{piece.piece_id}.mid"))
    velocities = sorted(n.velocity for i in midi_file.instruments for n in i.notes)
    assert velocities == sorted(e.velocity for e in played)
    assert len(set(velocities)) > len({e.velocity for e in events})
    assert "performed" in row["source"] and "Salamander" in row["source"]


def test_release_variants_plan_voices_every_sampled_piano_piece(plan):
    variants = corpus.plan_corpus("release_variants", 0, release.RESERVED_WORKS)
    assert [dataclasses.replace(p, voicing_seed=None) for p in variants] == plan
    on_piano = [p for p in variants if p.renderer == "piano"]
    assert on_piano and all(p.voicing_seed is not None for p in on_piano)
    assert len({p.voicing_seed for p in on_piano}) == len(on_piano)
    assert all(p.voicing_seed is None for p in variants if p.split == "test")


def test_a_voiced_piece_renders_through_its_voicing(sampler, tmp_path):
    variants = corpus.plan_corpus("release_variants", 0, release.RESERVED_WORKS)
    piece = next(p for p in variants if p.texture_seed is not None)
    piece = dataclasses.replace(piece, max_seconds=3.0, acoustics_seed=None, gain_db=-6.0)
    row, audio_S, _ = _render(piece, tmp_path / "voiced", sampler)
    plain = dataclasses.replace(piece, voicing_seed=None)
    _, plain_S, _ = _render(plain, tmp_path / "plain", sampler)
    assert "voiced as another piano" in row["source"]
    assert audio_S.shape == plain_S.shape and not np.array_equal(audio_S, plain_S)


def test_release_pianos_plan_performs_more_scores_on_wide_pianos(plan):
    pianos = corpus.plan_corpus("release_pianos", 0, release.RESERVED_WORKS)
    assert [(p.piece_id, p.path, p.split, p.acoustics_seed) for p in pianos] == [
        (p.piece_id, p.path, p.split, p.acoustics_seed) for p in plan
    ]
    before = {p.piece_id: p for p in plan}
    train_scores = [p for p in pianos if p.split == "train" and p.texture_seed is None]
    on_piano = [p for p in train_scores if p.renderer == "piano"]
    assert 0.5 < len(on_piano) / len(train_scores) < 0.7  # piano_fraction 0.6
    # Every score the release corpus plays on the piano is still on it.
    assert all(p.renderer == "piano" for p in pianos if before[p.piece_id].renderer == "piano")
    voiced = [p for p in pianos if p.renderer == "piano"]
    assert all(p.voicing_seed is not None and p.voicing_kind == "wide" for p in voiced)
    # The scores on it are performed (textures have their own dynamics and pedal).
    assert all((p.performance_seed is not None) == (p in on_piano) for p in pianos)
    assert not any(p.octaves for p in pianos)
    assert all(p.voicing_seed is None for p in pianos if p.split == "test")
    assert [p for p in pianos if p.split == "test"] == [p for p in plan if p.split == "test"]


class _SeedRecorder:
    """Wraps a sampler and keeps the seed and voicing each render was asked for."""

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, []

    def render(self, notes, pedal=(), seed=0, voicing=voicing_lib.RECORDED):
        self.calls.append((seed, voicing))
        return self.sampler.render(notes, pedal, seed=seed, voicing=voicing)


def test_a_wide_piano_draws_its_voicing_and_note_jitter_from_the_piece(sampler, tmp_path):
    pianos = corpus.plan_corpus("release_pianos", 0, release.RESERVED_WORKS)
    piece = next(p for p in pianos if p.texture_seed is not None)
    piece = dataclasses.replace(piece, max_seconds=3.0, acoustics_seed=None, gain_db=-6.0)
    recorder = _SeedRecorder(sampler)
    row, wide_S, _ = _render(piece, tmp_path / "wide", recorder)
    narrow = dataclasses.replace(piece, voicing_kind="narrow")
    _, narrow_S, _ = _render(narrow, tmp_path / "narrow", recorder)
    timbre = dataclasses.replace(piece, voicing_kind="timbre")
    _, timbre_S, _ = _render(timbre, tmp_path / "timbre", recorder)
    assert recorder.calls == [
        (piece.voicing_seed, voicing_lib.draw_voicing(piece.voicing_seed, "wide")),
        (0, voicing_lib.draw_voicing(piece.voicing_seed)),  # narrow corpora render as they were
        (piece.voicing_seed, voicing_lib.draw_voicing(piece.voicing_seed, "timbre")),
    ]
    assert "voiced as another piano" in row["source"]
    assert wide_S.shape == narrow_S.shape and not np.array_equal(wide_S, narrow_S)
    assert wide_S.shape == timbre_S.shape and not np.array_equal(wide_S, timbre_S)


def test_release_timbres_is_release_pianos_on_rebalanced_pianos():
    pianos = corpus.plan_corpus("release_pianos", 0, release.RESERVED_WORKS)
    timbres = corpus.plan_corpus("release_timbres", 0, release.RESERVED_WORKS)
    assert len(timbres) == len(pianos)
    for a, b in zip(pianos, timbres, strict=True):
        if a.voicing_seed is None:
            assert a == b
        else:  # the same piece, room, performance and wide piano, its partials rebalanced
            assert (a.voicing_kind, b.voicing_kind) == ("wide", "timbre")
            assert dataclasses.replace(a, voicing_kind="timbre") == b


@pytest.mark.parametrize(
    "take",
    ["release_pianos2", "release_pianos3", "release_pianos4", "release_pianos5", "release_pianos6"],
)
def test_another_take_redraws_rooms_performances_and_pianos(take):
    first = corpus.plan_corpus("release_pianos", 0, release.RESERVED_WORKS)
    second = corpus.plan_corpus(take, 0, release.RESERVED_WORKS)
    redrawn = ("acoustics_seed", "performance_seed", "voicing_seed")
    earlier_takes = ("release_pianos2", "release_pianos3", "release_pianos4", "release_pianos5")
    for earlier in earlier_takes[: int(take[-1]) - 2]:
        other = corpus.plan_corpus(earlier, 0, release.RESERVED_WORKS)  # nor an earlier take's
        for a, b in zip(other, second, strict=True):
            for name in redrawn:
                assert getattr(a, name) is None or getattr(a, name) != getattr(b, name)
    for a, b in zip(first, second, strict=True):
        # The same pieces, soundfonts, tempi and renderers; a seed where the first has one.
        assert dataclasses.replace(a, **dict.fromkeys(redrawn)) == dataclasses.replace(
            b, **dict.fromkeys(redrawn)
        )
        for name in redrawn:
            assert (getattr(a, name) is None) == (getattr(b, name) is None)
            if getattr(a, name) is not None:
                assert getattr(a, name) != getattr(b, name)
    assert [p for p in second if p.split == "test"] == [p for p in first if p.split == "test"]
    assert corpus.plan_corpus(take, 0, release.RESERVED_WORKS) == second


def test_release_pianos4_lifted_is_its_take_with_keys_let_go_under_the_pedal(sampler, tmp_path):
    take = corpus.plan_corpus("release_pianos4", 0, release.RESERVED_WORKS)
    lifted = corpus.plan_corpus("release_pianos4_lifted", 0, release.RESERVED_WORKS)
    assert [dataclasses.replace(p, lift_seed=None) for p in lifted] == take
    assert all((p.lift_seed is None) == (p.split != "train") for p in lifted)
    assert len({p.lift_seed for p in lifted if p.lift_seed is not None}) > 200
    # A performed score renders the same audio; some of its keys are released earlier.
    pair = next(
        (a, b)
        for a, b in zip(take, lifted, strict=True)
        if a.performance_seed is not None
        and performance.perform(scores.score_events(a)[2], a.performance_seed).pedal
    )
    (plain_row, plain_S, plain), (row, audio_S, notes) = (
        _render(dataclasses.replace(p, max_seconds=6.0), tmp_path / name, sampler)
        for p, name in zip(pair, ("plain", "lifted"), strict=True)
    )
    # The same samples; the length (the last release + a tail) within MIDI's tick rounding.
    assert abs(len(audio_S) - len(plain_S)) <= 0.001 * rendering.SAMPLE_RATE
    common = min(len(audio_S), len(plain_S))
    np.testing.assert_array_equal(audio_S[:common], plain_S[:common])
    assert len(notes) == len(plain)
    ends = [(n.end_s, p.end_s) for n, p in zip(notes, plain, strict=True)]
    assert all(n <= p + 1e-9 for n, p in ends) and any(n < p - 0.05 for n, p in ends)
    assert "let go early under the pedal" in row["source"]
    assert "let go" not in plain_row["source"]


def test_release_pianos4_far_is_its_take_with_distant_microphones(sampler, tmp_path):
    take = corpus.plan_corpus("release_pianos4", 0, release.RESERVED_WORKS)
    far = corpus.plan_corpus("release_pianos4_far", 0, release.RESERVED_WORKS)
    assert [dataclasses.replace(p, distant=False) for p in far] == take
    assert all(p.distant == (p.acoustics_seed is not None) for p in far)
    assert sum(p.distant for p in far) > 150
    # A piece in a room (without noise, which is added where it is) renders its take's
    # audio later by the microphone's travel.
    a, b = next(
        (a, b)
        for a, b in zip(take, far, strict=True)
        if b.distant
        and a.texture_seed is not None
        and acoustics.draw_acoustics(b.acoustics_seed, distant=True).delay_ms > 3
        and acoustics.draw_acoustics(b.acoustics_seed).noise == "none"
    )
    delay_ms = acoustics.draw_acoustics(b.acoustics_seed, distant=True).delay_ms
    (_, near_S, near), (_, far_S, notes) = (
        _render(dataclasses.replace(p, max_seconds=3.0), tmp_path / name, sampler)
        for p, name in ((a, "near"), (b, "far"))
    )
    assert notes == near  # the same labels: the keys
    lag = int(round(delay_ms / 1000 * rendering.SAMPLE_RATE))
    assert len(far_S) == len(near_S) and np.abs(far_S[:lag]).max() < 1e-4
    # The same recording, later, to a few steps of 16 bits (FFT reverb's round-off).
    np.testing.assert_allclose(far_S[lag:], near_S[:-lag], atol=1e-4)
    # ... and not the same unshifted: the test sees the lag.
    assert np.abs(far_S - near_S).max() > 100 * np.abs(far_S[lag:] - near_S[:-lag]).max()
