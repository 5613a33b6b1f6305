"""One piece of the default corpus: music21 score -> MIDI -> fluidsynth audio -> labels.

Owns turning a score into timed notes (instrument programs, tempo, note
values, ties), writing them as MIDI, rendering that through a General-MIDI
soundfont with fluidsynth, and reading the MIDI back as labels; also the
`Piece` record a plan hands it and the `CorpusError` both raise. Must not
import `corpus` (which plans and lays out the whole corpus and imports this
module), nor model, loop or metric code.

Labels come from the rendered MIDI itself (written, rendered, then read back
with pretty_midi), so onsets are exact up to the synth's attack. Beats are
quarter notes from the start of the score. Each written bar plays once:
repeats are not expanded, because expanding costs seconds per movement, fails
on a third of these scores and adds only audio already rendered.
"""

import dataclasses
import logging
import math
import os
import random
import re
import shutil
import subprocess
import time
import warnings

import numpy as np
import soundfile as sf

from jaxnotes.data import labels as labels_lib

SAMPLE_RATE = 44100
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")
SOUNDFONT_PACKAGES = {
    "FluidR3_GM.sf2": "fluid-soundfont-gm",
    "FluidR3Mono_GM.sf3": "fluidr3mono-gm-soundfont",
    "MuseScore_General.sf3": "musescore-general-soundfont",
    "TimGM6mb.sf2": "the pretty_midi pip package (it ships TimGM6mb.sf2)",
}
LEAD_S = 0.5  # silence before the first note, so a detector sees its onset
TAIL_S = 1.0  # kept after the last note-off: release and reverb
MIN_NOTE_S = 0.01  # shorter notes vanish in MIDI ticks, so they are never written

INSTRUMENT_NAMES = {1: "Piano", 7: "Harpsichord", 20: "Organ", 41: "Violin", 42: "Viola"}
INSTRUMENT_NAMES |= {43: "Cello", 44: "Contrabass", 61: "Horn", 69: "Oboe", 71: "Bassoon"}
INSTRUMENT_NAMES |= {72: "Clarinet", 74: "Flute"}
# Part names -> GM program (1-based). Cello and violone are tried before viola
# and violin, whose names they contain; voices (Soprano, Alto, Bass) name none.
NAMED_PROGRAMS = (
    (r"cell|\bvc\b", 43),
    (r"contrab|double bass|kontrab|violone", 44),
    (r"viola|bratsche", 42),
    (r"viol", 41),
    (r"flut|flaut|flöte", 74),
    (r"oboe|hautbois", 69),
    (r"clarinet|klarinette", 72),
    (r"bassoon|fagott", 71),
    (r"horn|corno", 61),
    (r"piano|klavier|pianoforte", 1),
    (r"harpsichord|cembalo|clavecin", 7),
    (r"organ|orgel", 20),
)
# Ensembles for parts that name no instrument (chorales), voices top to bottom:
# string quartet, trio and quintet, oboe quartet, wind quartet and quintet, keyboards.
ENSEMBLES = ((41, 41, 42, 43), (41, 42, 43), (41, 41, 42, 43, 44), (69, 41, 42, 43))
ENSEMBLES += ((74, 72, 61, 71), (74, 69, 72, 61, 71), (1,), (7,), (20,))
NOTE_VALUES = {"breve": "Breve", "whole": "Whole", "half": "Half", "quarter": "Quarter"}
NOTE_VALUES |= {"eighth": "Eighth", "16th": "Sixteenth", "32nd": "Thirty Second"}
NOTE_VALUES |= {"64th": "Sixty Fourth"}

log = logging.getLogger(__name__)


class CorpusError(RuntimeError):
    """The corpus cannot be built; the message says what to install or change."""


@dataclasses.dataclass(frozen=True)
class Piece:
    """One recording to render, with every random choice already drawn from the seed.

    `corpus.plan_corpus` draws these; `build_piece` renders one.
    """

    piece_id: int
    path: str  # music21 corpus path, e.g. 'bach/bwv66.6.mxl'
    work: str  # movements of one work share this, e.g. 'mozart/k80' or 'bach/bwv248'
    composer: str
    split: str
    soundfont: str
    ensemble: int  # index into ENSEMBLES, used for parts that name no instrument
    tempo_scale: float
    velocity_scale: float
    legato: float  # sounding fraction of each notated duration
    gain_db: float  # peak level of the rendered audio
    max_seconds: float | None
    renderer: str = "fluidsynth"  # 'fluidsynth' (the soundfont) | 'piano' (the sampled piano)
    texture_seed: int | None = None  # a generated piano texture (textures.py), not a score
    acoustics_seed: int | None = None  # room, microphone and noise (acoustics.py); None: dry


def find_fluidsynth() -> str:
    """Path of the fluidsynth executable, or a CorpusError saying how to install it."""
    path = shutil.which("fluidsynth")
    if path is None:
        raise CorpusError(
            "fluidsynth is not installed, and the default corpus is rendered with it: "
            "install it with `sudo apt-get install fluidsynth` (Debian/Ubuntu), or point "
            "config.data.musicnet_dir to MusicNet"
        )
    return path


def find_soundfont(name: str) -> str:
    """Path of a soundfont by file name, or a CorpusError naming the package to install."""
    import pretty_midi

    for folder in (*SOUNDFONT_DIRS, os.path.dirname(pretty_midi.__file__)):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    package = SOUNDFONT_PACKAGES.get(name, "a package that provides it")
    how = package if "pip" in package else f"`sudo apt-get install {package}`"
    raise CorpusError(f"soundfont {name} not found in {', '.join(SOUNDFONT_DIRS)}: install {how}")


def build_piece(piece: Piece, root: str, fluidsynth: str, soundfont: str, piano=None) -> dict:
    """Parses, renders and labels one piece; returns its metadata row (or why it failed).

    `piano` is a `piano.PianoSampler`, needed by pieces with `renderer='piano'`. Writes,
    under the corpus `root`, `midi/<id>.mid`, `<split>_data/<id>.wav` and `<split>_labels/<id>.csv`.
    """
    started, started_cpu = time.perf_counter(), _cpu_s()
    pedal = ()
    try:
        if piece.texture_seed is not None:
            from jaxnotes.data import textures

            texture = textures.generate_texture(piece.texture_seed, piece.max_seconds or 60.0)
            programs, qpm, pedal = [1], 120.0, [(a + LEAD_S, b + LEAD_S) for a, b in texture.pedal]
            events = _texture_events(texture)
        else:
            programs, qpm, events = _score_events(piece)
        if not events:
            raise ValueError("no pitched notes")
    except Exception as e:  # music21 raises many types for scores it cannot read
        log.warning("skipping %s: %s: %s", piece.path, type(e).__name__, e)
        return {"music21_path": piece.path, "failed": f"{type(e).__name__}: {e}"}
    name = str(piece.piece_id)
    midi_path = os.path.join(root, "midi", f"{name}.mid")
    _write_midi(events, midi_path)
    notes = _read_back(midi_path, events)
    if piece.renderer == "piano":  # from the notes read back: audio and labels agree exactly
        audio_S = piano.render([(n.pitch, n.start_s, n.end_s, n.velocity) for n in notes], pedal)
    else:
        audio_S = _render(fluidsynth, soundfont, midi_path, piece)
    num_samples = int(round((max(n.end_s for n in notes) + TAIL_S) * SAMPLE_RATE))
    audio_S = np.pad(audio_S[:num_samples], (0, max(0, num_samples - len(audio_S))))
    peak = float(np.abs(audio_S).max())
    if not peak > 0:
        raise CorpusError(f"{piece.path}: {piece.renderer} rendered silence with {soundfont}")
    audio_S *= 10 ** (piece.gain_db / 20) / peak  # loudness varies by piece, never clips
    if piece.acoustics_seed is not None:  # sets its own level (acoustics.py)
        from jaxnotes.data import acoustics

        room = acoustics.draw_acoustics(piece.acoustics_seed)
        audio_S = acoustics.apply_acoustics(audio_S, SAMPLE_RATE, room)
    split = piece.split
    labels_lib.write_label_csv(
        os.path.join(root, f"{split}_labels", f"{name}.csv"), notes, SAMPLE_RATE
    )
    wav_path = os.path.join(root, f"{split}_data", f"{name}.wav")
    sf.write(f"{wav_path}.tmp{os.getpid()}", audio_S, SAMPLE_RATE, "PCM_16", format="WAV")
    os.replace(f"{wav_path}.tmp{os.getpid()}", wav_path)
    catalog, composition, movement = _names(piece)
    if piece.texture_seed is not None:
        catalog, composition, movement = f"TEXTURE_{piece.texture_seed}", "Piano texture", ""
    how = "the Salamander Grand Piano V3 samples" if piece.renderer == "piano" else None
    how = how or f"fluidsynth and {piece.soundfont}"
    room = ", room and microphone simulated" if piece.acoustics_seed is not None else ""
    return {
        "id": piece.piece_id,
        "composer": piece.composer.title(),
        "composition": composition,
        "movement": movement,
        "ensemble": _ensemble_name(programs),
        "source": f"rendered by jaxnotes with {how}{room}",
        "transcriber": "generated" if piece.texture_seed is not None else "music21 corpus",
        "catalog_name": catalog,
        "seconds": int(round(len(audio_S) / SAMPLE_RATE)),  # MusicNet's are whole seconds
        "split": split,
        "work": piece.work,
        "music21_path": piece.path,
        "soundfont": piece.soundfont,
        "qpm": round(qpm, 2),
        "duration_s": len(audio_S) / SAMPLE_RATE,
        "render_s": time.perf_counter() - started,
        "render_cpu_s": _cpu_s() - started_cpu,
    }


def _score_events(piece: Piece) -> tuple[list[int], float, list["_Event"]]:
    """(programs, qpm, events) of a music21 score; the sampled piano plays every part."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # music21 warns freely about odd notation
        from music21 import corpus

        score = corpus.parse(piece.path)
        if not hasattr(score, "parts") or not score.parts:
            raise ValueError(f"a {type(score).__name__}, not a score with parts")
        programs = _part_programs(score, piece.ensemble)
        if piece.renderer == "piano":
            programs = [1] * len(programs)
        qpm = _base_qpm(score, piece.composer) * piece.tempo_scale
        return programs, qpm, _events(score, programs, qpm, piece)


def _texture_events(texture) -> list["_Event"]:
    """A generated texture's notes as events of one piano track (beats at 120 qpm)."""
    events = []
    for pitch, start_s, end_s, velocity in texture.notes:
        start, end = LEAD_S + start_s, LEAD_S + end_s
        events.append(
            _Event("piano", 1, pitch, start, end, velocity, 2 * start, 2 * (end - start), "Unknown")
        )
    return events


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (fluidsynth)."""
    # On a shared machine CPU time measures the rendering cost better than wall time.
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _named_program(part) -> int | None:
    """GM program a part's name (or its instrument's) gives, if it names one we know."""
    instrument = part.getInstrument(returnDefault=False)
    # The part name first: some exports call every part 'Piano' in the instrument.
    for text in (part.partName, instrument.instrumentName if instrument else None):
        for pattern, program in NAMED_PROGRAMS:
            if text and re.search(pattern, text.lower()):
                return program
    return None


def _part_programs(score, ensemble: int) -> list[int]:
    """One GM program per part: named instruments, else the piece's ensemble top-down."""
    programs = [_named_program(part) for part in score.parts]
    free = [k for k, p in enumerate(programs) if p is None]
    voices = ENSEMBLES[ensemble]
    for j, k in enumerate(free):  # spread the parts over the voices, keeping top and bottom
        programs[k] = voices[round(j * (len(voices) - 1) / max(len(free) - 1, 1))]
    return programs


def _ensemble_name(programs: list[int]) -> str:
    """A MusicNet-style ensemble name ('String Quartet', 'Accompanied Violin')."""
    distinct = sorted(set(programs), key=programs.index)
    names = [INSTRUMENT_NAMES.get(p, f"Program {p}") for p in distinct]
    count = {2: "Duo", 3: "Trio", 4: "Quartet", 5: "Quintet", 6: "Sextet"}.get(
        len(programs), "Ensemble"
    )
    if len(distinct) == 1:
        return f"Solo {names[0]}"
    if set(distinct) <= {41, 42, 43, 44}:
        return f"String {count}"
    if set(distinct) <= {61, 69, 71, 72, 74}:
        return f"Wind {count}"
    if len(distinct) == 2 and 1 in distinct:
        return f"Accompanied {names[1 - distinct.index(1)]}"
    return f"{'-'.join(names)} {count}"


def _base_qpm(score, composer: str) -> float:
    """Quarter notes per minute before the piece's random scale.

    music21's scores carry placeholder marks (120 nearly everywhere), so the
    tempo comes from the metre instead; chorales are sung slowly.
    """
    if composer == "bach":
        return 84.0
    signature = score.recurse().getElementsByClass("TimeSignature").first()
    return {2: 144.0, 8: 96.0}.get(signature.denominator if signature else 4, 104.0)


def _note_value(duration) -> str:
    """MusicNet's word for a notated duration: 'Quarter', 'Dotted Eighth', 'Triplet Sixteenth'."""
    word = NOTE_VALUES.get(duration.type)
    if word is None:  # 'complex' (a tie across values), 'zero', 'inexpressible'
        return "Unknown"
    if duration.dots:
        word = ("Dotted " if duration.dots == 1 else "Double Dotted ") + word
    if duration.tuplets:
        word = ("Triplet " if duration.tuplets[0].numberNotesActual == 3 else "Tuplet ") + word
    return word


@dataclasses.dataclass(frozen=True)
class _Event:
    """A note as written to MIDI, with the score facts its label keeps."""

    track: str
    program: int
    pitch: int
    start_s: float
    end_s: float
    velocity: int
    start_q: float
    duration_q: float
    value: str


def _part_notes(part, stop_q: float) -> list[tuple[int, float, float, str]]:
    """(pitch, start_q, duration_q, note_value) of a part's notes before `stop_q`.

    A tied note sounds once, so it is one label: ties are merged here because
    music21's `stripTies` takes ~10 s on a quartet movement.
    """
    from music21 import duration

    notes, open_ties = [], {}
    for element in part.flatten().notes:
        # Grace notes have no duration to render; unpitched notes no pitch.
        if element.duration.isGrace or element.quarterLength <= 0 or element.offset >= stop_q:
            continue
        value = _note_value(element.duration)
        for member in element.notes if element.isChord else (element,):
            if not hasattr(member, "pitch"):
                continue
            tie = member.tie or element.tie
            held = open_ties.pop(member.pitch.midi, None)
            if (
                tie
                and tie.type in ("stop", "continue")
                and held
                and held[1] + held[2] == element.offset
            ):
                held[2] += element.quarterLength
                held[3] = _note_value(duration.Duration(held[2]))
            else:
                held = [member.pitch.midi, element.offset, element.quarterLength, value]
                notes.append(held)
            if tie and tie.type in ("start", "continue"):
                open_ties[member.pitch.midi] = held
    return [(pitch, float(start), float(length), word) for pitch, start, length, word in notes]


def _events(score, programs: list[int], qpm: float, piece: Piece) -> list[_Event]:
    """Timed MIDI notes of a score, cut at `piece.max_seconds`."""
    rng = random.Random(f"jaxnotes-velocity:{piece.piece_id}")
    # MIDI has 15 melodic channels: beyond that, parts that share a program share one.
    many = len(programs) > 15
    seconds_per_q = 60.0 / qpm
    cut = LEAD_S + (piece.max_seconds or math.inf)
    raw = []
    for k, part in enumerate(score.parts):
        track = f"program{programs[k]}" if many else f"part{k}"
        for pitch, start_q, duration_q, value in _part_notes(part, (cut - LEAD_S) / seconds_per_q):
            start = LEAD_S + start_q * seconds_per_q
            end = min(start + duration_q * seconds_per_q * piece.legato, cut)
            if 0 <= pitch <= 127:
                raw.append((track, pitch, start, end, programs[k], start_q, duration_q, value))
    events = []
    raw.sort()
    for i, (track, pitch, start, end, program, *score_facts) in enumerate(raw):
        later = raw[i + 1] if i + 1 < len(raw) else None
        if later and later[:2] == (track, pitch):
            # One channel cannot hold a pitch twice: the earlier note stops where the next starts.
            end = min(end, later[2])
        if end - start >= MIN_NOTE_S:
            velocity = round(90 * piece.velocity_scale + rng.uniform(-8, 8))
            events.append(
                _Event(track, program, pitch, start, end, min(max(velocity, 1), 127), *score_facts)
            )
    return events


def _write_midi(events: list[_Event], path: str) -> None:
    import pretty_midi

    # 480 ticks per quarter at 120 qpm: ~1 ms ticks, and an hour is 3.5 M ticks,
    # far below pretty_midi's MAX_TICK (1e7) that music21's 10080-tick exports exceed.
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    tracks = {}
    for event in events:
        if event.track not in tracks:
            tracks[event.track] = pretty_midi.Instrument(event.program - 1, name=event.track)
            midi.instruments.append(tracks[event.track])
        tracks[event.track].notes.append(
            pretty_midi.Note(event.velocity, event.pitch, event.start_s, event.end_s)
        )
    midi.write(f"{path}.tmp{os.getpid()}")
    os.replace(f"{path}.tmp{os.getpid()}", path)


def _render(fluidsynth: str, soundfont: str, midi_path: str, piece: Piece) -> np.ndarray:
    """Mono float32 audio of a MIDI file at SAMPLE_RATE."""
    wav = f"{midi_path}.{os.getpid()}.wav"
    command = [fluidsynth, "-ni", "-q", "-F", wav, "-r", str(SAMPLE_RATE), "-O", "float"]
    # Dynamic sample loading decodes only the presets used: loading all of
    # MuseScore_General.sf3 takes ~17 s, its few presets ~2 s (same output).
    command += ["-T", "wav", "-o", "synth.dynamic-sample-loading=1", soundfont, midi_path]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists(wav):
        raise CorpusError(
            f"{piece.path}: fluidsynth failed ({result.returncode}): {result.stderr[-500:]}"
        )
    audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    os.remove(wav)
    return audio.mean(axis=1)


def _read_back(midi_path: str, events: list[_Event]) -> list[labels_lib.Note]:
    """Label notes from the rendered MIDI file, joined with the score's beats and values."""
    import pretty_midi

    written = {}
    for event in events:
        written.setdefault((event.track, event.pitch), []).append(event)
    read = {}
    for instrument in pretty_midi.PrettyMIDI(midi_path).instruments:
        for note in instrument.notes:
            read.setdefault((instrument.name, note.pitch), []).append((note, instrument.program))
    notes = []
    for key, sent in written.items():
        got = sorted(read.pop(key, []), key=lambda item: item[0].start)
        if len(got) != len(sent):
            raise CorpusError(f"{midi_path}: {key} wrote {len(sent)} notes, read {len(got)}")
        for event, (note, program) in zip(sorted(sent, key=lambda e: e.start_s), got, strict=True):
            notes.append(
                labels_lib.Note(
                    start_s=note.start,
                    end_s=note.end,
                    pitch=note.pitch,
                    program=program + 1,  # pretty_midi programs are 0-based, MusicNet's 1-based
                    velocity=note.velocity,
                    start_beat=event.start_q,
                    duration_beats=event.duration_q,
                    note_value=event.value,
                )
            )
    if read:
        raise CorpusError(f"{midi_path}: read back notes never written: {sorted(read)[:3]}")
    return notes


def _names(piece: Piece) -> tuple[str, str, str]:
    """(catalog_name, composition, movement) from the music21 path, in MusicNet's style."""
    stem = os.path.splitext(piece.path.rsplit("/", 1)[-1])[0]
    work = piece.work.rsplit("/", 1)[-1]
    catalog = (stem if piece.composer == "bach" else work).upper().replace("OPUS", "OP")
    composition = re.sub(r"^(bwv|k|opus)(\d+)(no)?(\d+)?", _humanise, work)
    match = re.match(r"movement(\d+)_?(.*)", stem)
    if match:
        movement = f"Movement {match[1]}" + (f" ({match[2]})" if match[2] else "")
    else:
        movement = f"Chorale {stem[3:]}" if piece.composer == "bach" else ""
    return catalog, composition, movement


def _humanise(match) -> str:
    kind = {"bwv": "BWV", "k": "K.", "opus": "Op."}[match[1]]
    return f"{kind} {match[2]}" + (f" No. {match[4]}" if match[4] else "")
