"""The default corpus: music21 scores rendered with fluidsynth in MusicNet's layout.

One tiny corpus is rendered for the module (a few seconds); size plans are
checked without rendering. Needs fluidsynth and the Debian soundfonts.
"""

import csv
import os
import shutil

import music21
import numpy as np
import pytest
import soundfile as sf

from configs import common
from jaxnotes.data import audio as audio_lib
from jaxnotes.data import labels as labels_lib
from jaxnotes.data import musicnet
from jaxnotes.data.corpus import build as corpus
from jaxnotes.data.corpus import rendering, scores

SR = rendering.SAMPLE_RATE
MUSICNET_COLUMNS = (
    "id,composer,composition,movement,ensemble,source,transcriber,catalog_name,seconds"
)


def data_config(cache_dir, size="tiny", seed=0, exclude=()):
    config = common.data()
    config.cache_dir = str(cache_dir)
    config.corpus_size = size
    config.corpus_seed = seed
    config.exclude_works = tuple(exclude)
    return config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(cache_dir, root) of the tiny corpus at seed 0."""
    cache = tmp_path_factory.mktemp("cache")
    return cache, corpus.ensure_corpus(data_config(cache), progress=False)


def recordings(root):
    return [r for split in musicnet.SPLITS for r in musicnet.list_recordings(root, split)]


def metadata(root):
    with open(os.path.join(root, musicnet.METADATA_FILE), newline="") as f:
        return list(csv.DictReader(f))


def file_state(root):
    """Path -> (mtime_ns, bytes) of every file under root."""
    state = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                state[os.path.relpath(path, root)] = (os.stat(path).st_mtime_ns, f.read())
    return state


def test_layout_and_metadata(tiny):
    """MusicNet's folders, 44.1 kHz mono 16-bit wavs and metadata columns, ids past MusicNet's."""
    cache, root = tiny
    assert root.startswith(os.path.join(str(cache), "corpus", "v"))
    with open(os.path.join(root, musicnet.METADATA_FILE)) as f:
        assert f.readline().startswith(MUSICNET_COLUMNS + ",")
    rows = {row["id"]: row for row in metadata(root)}
    found = {r.name: r for r in recordings(root)}
    assert sorted(rows) == sorted(found)
    assert sum(row["split"] == "test" for row in rows.values()) == 1
    for name, recording in found.items():
        info = sf.info(recording.audio_path)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert int(name) >= corpus.FIRST_ID
        assert f"{rows[name]['split']}_data" in recording.audio_path
        assert int(rows[name]["seconds"]) == round(info.frames / SR)
    summary = corpus.read_summary(root)
    assert summary["pieces"] == {"train": 3, "test": 1} and summary["failed"] == []


def test_labels_read_back_inside_their_audio(tiny):
    """Every label CSV parses with labels.read_label_csv and every note lies inside its wav."""
    for recording in recordings(tiny[1]):
        notes = labels_lib.read_label_csv(recording.labels_path, SR)
        frames = sf.info(recording.audio_path).frames
        assert len(notes) > 10
        for n in notes:
            assert 0 <= n.start_s < n.end_s <= frames / SR
            assert n.program in scores.INSTRUMENT_NAMES and 21 <= n.pitch <= 108
            assert n.note_value and n.duration_beats > 0 and n.start_beat >= 0


def pitch_db(audio_S, pitch, start, stop):
    """Level (dB) of a pitch's fundamental in samples [start, stop), Hann-windowed."""
    segment = audio_S[max(start, 0) : stop]
    window = np.hanning(len(segment))
    phase = np.exp(-2j * np.pi * 440.0 * 2 ** ((pitch - 69) / 12) * np.arange(len(segment)) / SR)
    return 20 * np.log10(abs(np.sum(segment * window * phase)) / window.sum() + 1e-9)


def test_labelled_pitches_sound_while_labelled(tiny):
    """A labelled pitch is far louder during its notes than where it is not labelled."""
    rng = np.random.default_rng(0)
    for recording in recordings(tiny[1]):
        audio_S = audio_lib.load_audio(recording.audio_path)
        notes = recording.read_notes(SR)
        during, silent = [], []
        for n in notes:
            start, stop = round(n.start_s * SR), round(n.end_s * SR)
            during.append(pitch_db(audio_S, n.pitch, start, stop))
            other = int(rng.integers(0, len(audio_S) - (stop - start)))
            s, e = other / SR, (other + stop - start) / SR
            if not any(m.pitch == n.pitch and m.start_s < e and m.end_s > s for m in notes):
                silent.append(pitch_db(audio_S, n.pitch, other, other + stop - start))
        assert np.median(during) > np.median(silent) + 20, recording.name


def test_onsets_are_where_the_sound_starts(tiny):
    """A labelled pitch gets louder right at its onset, not 100 ms before or after."""
    window = int(0.06 * SR)

    def rising(shift_s):
        rises = []
        for recording in recordings(tiny[1]):
            audio_S = audio_lib.load_audio(recording.audio_path)
            notes = recording.read_notes(SR)
            for n in notes:
                onset = n.start_s + shift_s
                if any(m.pitch == n.pitch and onset - 0.12 < m.end_s <= onset for m in notes):
                    continue  # the same pitch just ended: no silence to rise from
                at = round(onset * SR)
                after = pitch_db(audio_S, n.pitch, at, at + window)
                rises.append(after > pitch_db(audio_S, n.pitch, at - window, at) + 6)
        return np.mean(rises)

    aligned = rising(0.0)
    assert aligned > 0.45
    assert rising(-0.1) < aligned / 3 and rising(0.1) < aligned / 3


def test_same_seed_same_corpus(tiny, tmp_path):
    """Rendering again with the same seed gives byte-identical labels and audio."""
    root = corpus.ensure_corpus(data_config(tmp_path), progress=False)
    for first, again in zip(recordings(tiny[1]), recordings(root), strict=True):
        for a, b in ((first.labels_path, again.labels_path), (first.audio_path, again.audio_path)):
            with open(a, "rb") as f, open(b, "rb") as g:
                assert f.read() == g.read(), b


def test_rerun_keeps_what_is_rendered(tiny, tmp_path):
    """A complete corpus is reused untouched; an interrupted one re-renders only what is missing."""
    cache, root = tiny
    before = file_state(root)
    assert corpus.ensure_corpus(data_config(cache), progress=False) == root
    assert file_state(root) == before
    # An interrupted build: no marker, no metadata, one piece missing.
    copy = os.path.join(tmp_path, "corpus", os.path.basename(root))
    shutil.copytree(root, copy)  # copy2 keeps mtimes
    victim = musicnet.list_recordings(copy, "train")[0]
    for path in (
        os.path.join(copy, corpus.COMPLETE_FILE),
        os.path.join(copy, musicnet.METADATA_FILE),
        os.path.join(copy, corpus.PIECES_DIR, f"{victim.name}.json"),
        os.path.join(copy, "midi", f"{victim.name}.mid"),
        victim.audio_path,
        victim.labels_path,
    ):
        os.remove(path)
    kept = file_state(copy)
    assert corpus.ensure_corpus(data_config(tmp_path), progress=False) == copy
    after = file_state(copy)
    assert [path for path, state in kept.items() if after[path] != state] == []
    for path in (victim.audio_path, victim.labels_path):
        relative = os.path.relpath(path, copy)
        assert after[relative][1] == before[relative][1]  # rendered again, identically


def test_unparsable_score_is_skipped_and_counted(tiny, tmp_path, monkeypatch, caplog):
    """A score music21 cannot parse is logged by name and counted, and the rest still builds."""
    copy = os.path.join(tmp_path, "corpus", os.path.basename(tiny[1]))
    shutil.copytree(tiny[1], copy)
    victim = musicnet.list_recordings(copy, "train")[-1]
    path = next(row["music21_path"] for row in metadata(copy) if row["id"] == victim.name)
    for name in (corpus.COMPLETE_FILE, f"{corpus.PIECES_DIR}/{victim.name}.json"):
        os.remove(os.path.join(copy, name))
    os.remove(victim.audio_path)
    parse = music21.corpus.parse

    def broken_parse(work, *args, **kwargs):
        if work == path:
            raise music21.exceptions21.Music21Exception("cannot parse")
        return parse(work, *args, **kwargs)

    monkeypatch.setattr(music21.corpus, "parse", broken_parse)
    corpus.ensure_corpus(data_config(tmp_path), progress=False)
    assert corpus.read_summary(copy)["failed"] == [path]
    assert victim.name not in {row["id"] for row in metadata(copy)}
    assert path in caplog.text


def test_splits_hold_different_works_and_soundfonts(tiny):
    """Test works never appear in train, and the test soundfont never renders train audio."""
    rows = metadata(tiny[1])
    plans = {size: corpus.plan_corpus(size, 0) for size in corpus.SIZES}
    for pieces in [rows, *plans.values()]:
        get = (lambda p, k: p[k]) if pieces is rows else getattr
        train = [p for p in pieces if get(p, "split") == "train"]
        test = [p for p in pieces if get(p, "split") == "test"]
        assert train and test
        assert not {get(p, "work") for p in train} & {get(p, "work") for p in test}
        assert {get(p, "soundfont") for p in test} == {corpus.TEST_SOUNDFONT}
        assert corpus.TEST_SOUNDFONT not in {get(p, "soundfont") for p in train}
    default = plans["default"]
    assert len({p.piece_id for p in default}) == len(default)
    assert {p.composer for p in default} == set(corpus.COMPOSERS)
    assert corpus.plan_corpus("default", 0) == default  # the plan depends only on its arguments
    assert corpus.plan_corpus("default", 1) != default


def test_exclude_works_stay_out_of_train():
    """exclude_works (paths or prefixes) remove whole works from train and get their own folder."""
    default = corpus.plan_corpus("default", 0)
    mozart = next(p for p in default if p.split == "train" and p.composer == "mozart")
    for exclude in ([mozart.path], [mozart.work], ["bach/"]):
        plan = corpus.plan_corpus("default", 0, exclude)
        train = [p for p in plan if p.split == "train"]
        assert len(train) == len([p for p in default if p.split == "train"]) - (
            40 if exclude == ["bach/"] else 0
        )
        assert not any(p.path.startswith(exclude[0]) for p in train)
        assert mozart.work not in {p.work for p in train} or exclude == ["bach/"]
        assert corpus.corpus_name("default", 0, exclude) != corpus.corpus_name("default", 0)
    tiny = corpus.plan_corpus("tiny", 0)
    excluded = tiny[0].path if tiny[0].split == "train" else tiny[1].path
    assert excluded not in {p.path for p in corpus.plan_corpus("tiny", 0, [excluded])}


def test_missing_fluidsynth_says_what_to_install(monkeypatch, tmp_path):
    """Without fluidsynth the error names the Debian package instead of a bare FileNotFound."""
    monkeypatch.setattr(rendering.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(corpus.CorpusError, match="apt-get install fluidsynth"):
        corpus.ensure_corpus(data_config(tmp_path), progress=False)
    monkeypatch.setattr(rendering, "SOUNDFONT_DIRS", (str(tmp_path),))
    with pytest.raises(corpus.CorpusError, match="apt-get install musescore-general-soundfont"):
        rendering.find_soundfont(corpus.TEST_SOUNDFONT)


def test_score_pitfalls_become_clean_events():
    """Ties sound once, grace notes and unison overlaps never reach MIDI, chords split by pitch."""
    part = music21.stream.Part()
    tied = [music21.note.Note("C4", quarterLength=1), music21.note.Note("C4", quarterLength=1)]
    tied[0].tie, tied[1].tie = music21.tie.Tie("start"), music21.tie.Tie("stop")
    grace = music21.note.Note("D4").getGrace()
    part.append([*tied, grace, music21.chord.Chord(["E4", "G4"], quarterLength=0.5)])
    part.insert(2.0, music21.note.Note("E4", quarterLength=0.25))  # unison with the chord
    score = music21.stream.Score([part])
    piece = corpus.plan_corpus("tiny", 0)[0]
    events = scores._events(score, [41], 60.0, piece)
    # The two E4s start together on one channel: only one can sound, and be labelled.
    assert [(e.pitch, e.start_q, e.duration_q, e.value) for e in events] == [
        (60, 0.0, 2.0, "Half"),
        (64, 2.0, 0.5, "Eighth"),
        (67, 2.0, 0.5, "Eighth"),
    ]
    assert events[0].start_s == scores.LEAD_S and events[1].start_s == scores.LEAD_S + 2.0
    assert scores._note_value(music21.duration.Duration(0.75)) == "Dotted Eighth"
    assert scores._note_value(music21.duration.Duration(1 / 3)) == "Triplet Eighth"


def test_cli_prints_where_and_what(tiny, capsys):
    """The command line prints the corpus folder and its summary."""
    corpus.main(["--size=tiny", f"--out={tiny[0]}"])
    out = capsys.readouterr().out
    assert tiny[1] in out and "3 train, 1 test" in out and "real time" in out
