"""One piece of the default corpus: score or texture -> MIDI -> audio -> acoustics -> labels.

Owns driving one piece's render: its timed notes (from a music21 score through `scores`, or
a generated texture), writing them as MIDI, rendering that through a General-MIDI soundfont
with fluidsynth or through the sampled piano, the simulated room, and reading the MIDI back
as labels; also the `Piece` record a plan hands it and the `CorpusError` both raise. Must
not import `build` (which plans and lays out the whole corpus and imports this module), nor
model, loop or metric code.

Labels come from the rendered MIDI itself (written, rendered, then read back
with pretty_midi), so onsets are exact up to the synth's attack.
"""

import dataclasses
import logging
import os
import shutil
import subprocess
import time

import numpy as np
import soundfile as sf

from jaxnotes import files
from jaxnotes.data import labels as labels_lib
from jaxnotes.data import midi
from jaxnotes.data.corpus import performance, scores

SAMPLE_RATE = 44100
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")
SOUNDFONT_PACKAGES = {
    "FluidR3_GM.sf2": "fluid-soundfont-gm",
    "FluidR3Mono_GM.sf3": "fluidr3mono-gm-soundfont",
    "MuseScore_General.sf3": "musescore-general-soundfont",
    "TimGM6mb.sf2": "the pretty_midi pip package (it ships TimGM6mb.sf2)",
}
TAIL_S = 1.0  # kept after the last note-off: release and reverb

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
    ensemble: int  # index into scores.ENSEMBLES, used for parts that name no instrument
    tempo_scale: float
    velocity_scale: float
    legato: float  # sounding fraction of each notated duration
    gain_db: float  # peak level of the rendered audio
    max_seconds: float | None
    renderer: str = "fluidsynth"  # 'fluidsynth' (the soundfont) | 'piano' (the sampled piano)
    texture_seed: int | None = None  # a generated piano texture (textures.py), not a score
    acoustics_seed: int | None = None  # room, microphone and noise (acoustics.py); None: dry
    performance_seed: int | None = None  # a score performed (performance.py); None: as written
    octaves: bool = False  # the performance doubles bass and melody in octaves (performance.py)
    voicing_seed: int | None = None  # another piano made of the samples (voicing.py)
    voicing_kind: str = "narrow"  # how it is drawn (voicing.draw_voicing)
    lift_seed: int | None = None  # keys let go early under the pedal (performance.py)
    distant: bool = False  # its room's microphone hears the direct sound late (acoustics.py)


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
            from jaxnotes.data.corpus import textures

            texture = textures.generate_texture(piece.texture_seed, piece.max_seconds or 60.0)
            programs, qpm = [1], 120.0
            pedal = [(a + scores.LEAD_S, b + scores.LEAD_S) for a, b in texture.pedal]
            events = _texture_events(texture)
        else:
            programs, qpm, events = scores.score_events(piece)
        if not events:
            raise ValueError("no pitched notes")
    except Exception as e:  # music21 raises many types for scores it cannot read
        log.warning("skipping %s: %s: %s", piece.path, type(e).__name__, e)
        return {"music21_path": piece.path, "failed": f"{type(e).__name__}: {e}"}
    if piece.performance_seed is not None:  # plan_corpus gives textures none
        played = performance.perform(events, piece.performance_seed, piece.octaves)
        events, pedal = played.events, played.pedal
    lifted = piece.lift_seed is not None and bool(pedal)
    last_s = 0.0  # the audio lasts at least this long: keys let go early still sound on
    if lifted:
        last_s = max(e.end_s for e in events)
        events = performance.lift_under_pedal(events, pedal, piece.lift_seed)
    name = str(piece.piece_id)
    midi_path = os.path.join(root, "midi", f"{name}.mid")
    _write_midi(events, midi_path)
    notes = _read_back(midi_path, events)
    if piece.renderer == "piano":  # from the notes read back: audio and labels agree exactly
        from jaxnotes.data.corpus import voicing as voicing_lib

        voicing, jitter_seed = voicing_lib.RECORDED, 0
        if piece.voicing_seed is not None:
            voicing = voicing_lib.draw_voicing(piece.voicing_seed, piece.voicing_kind)
            # Wide (and timbre) pianos also draw each note's gain and detune jitter from the
            # piece; narrow ones keep seed 0 (one sequence by note index), as their corpus was.
            jitter_seed = piece.voicing_seed if piece.voicing_kind != "narrow" else 0
        notes_N4 = [(n.pitch, n.start_s, n.end_s, n.velocity) for n in notes]
        audio_S = piano.render(notes_N4, pedal, seed=jitter_seed, voicing=voicing)
    else:
        audio_S = _render(fluidsynth, soundfont, midi_path, piece)
    last_s = max(last_s, *(n.end_s for n in notes))
    num_samples = int(round((last_s + TAIL_S) * SAMPLE_RATE))
    audio_S = np.pad(audio_S[:num_samples], (0, max(0, num_samples - len(audio_S))))
    peak = float(np.abs(audio_S).max())
    if not peak > 0:
        raise CorpusError(f"{piece.path}: {piece.renderer} rendered silence with {soundfont}")
    audio_S *= 10 ** (piece.gain_db / 20) / peak  # loudness varies by piece, never clips
    if piece.acoustics_seed is not None:  # sets its own level (acoustics.py)
        from jaxnotes.data.corpus import acoustics

        room = acoustics.draw_acoustics(piece.acoustics_seed, distant=piece.distant)
        audio_S = acoustics.apply_acoustics(audio_S, SAMPLE_RATE, room)
    split = piece.split
    labels_lib.write_label_csv(
        os.path.join(root, f"{split}_labels", f"{name}.csv"), notes, SAMPLE_RATE
    )
    wav_path = os.path.join(root, f"{split}_data", f"{name}.wav")
    with files.atomic_path(wav_path) as tmp:
        sf.write(tmp, audio_S, SAMPLE_RATE, "PCM_16", format="WAV")
    catalog, composition, movement = scores.names(piece)
    if piece.texture_seed is not None:
        catalog, composition, movement = f"TEXTURE_{piece.texture_seed}", "Piano texture", ""
    how = "the Salamander Grand Piano V3 samples" if piece.renderer == "piano" else None
    if how and piece.voicing_seed is not None:
        how += " voiced as another piano"
    how = how or f"fluidsynth and {piece.soundfont}"
    if piece.performance_seed is not None:
        how += ", performed (dynamics, voicing, rubato, sustain pedal"
        how += ", octave doublings)" if piece.octaves else ")"
    if lifted:
        how += ", keys let go early under the pedal"
    room = ", room and microphone simulated" if piece.acoustics_seed is not None else ""
    return {
        "id": piece.piece_id,
        "composer": piece.composer.title(),
        "composition": composition,
        "movement": movement,
        "ensemble": scores.ensemble_name(programs),
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


def _texture_events(texture) -> list[scores.Event]:
    """A generated texture's notes as events of one piano track (beats at 120 qpm)."""
    events = []
    for pitch, start_s, end_s, velocity in texture.notes:
        start, end = scores.LEAD_S + start_s, scores.LEAD_S + end_s
        events.append(
            scores.Event(
                "piano", 1, pitch, start, end, velocity, 2 * start, 2 * (end - start), "Unknown"
            )
        )
    return events


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (fluidsynth)."""
    # On a shared machine CPU time measures the rendering cost better than wall time.
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _write_midi(events: list[scores.Event], path: str) -> None:
    notes = [labels_lib.Note(e.start_s, e.end_s, e.pitch, e.program, e.velocity) for e in events]
    midi.write_midi(path, notes, tracks=[e.track for e in events])


def _dies_with_parent(command: list[str]) -> list[str]:
    """`command` run so that the kernel kills it when this process dies (util-linux's
    setpriv, Linux), so a render killed with -9 leaves no fluidsynth writing into the corpus.
    Done by exec, not `preexec_fn`: Python code between fork and exec can deadlock when
    other threads (JAX's) hold locks."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command


def _render(fluidsynth: str, soundfont: str, midi_path: str, piece: Piece) -> np.ndarray:
    """Mono float32 audio of a MIDI file at SAMPLE_RATE."""
    folder, name = os.path.split(midi_path)
    wav = os.path.join(folder, f".{name}.tmp{os.getpid()}.wav")  # files.remove_leftovers cleans it
    command = [fluidsynth, "-ni", "-q", "-F", wav, "-r", str(SAMPLE_RATE), "-O", "float"]
    # Dynamic sample loading decodes only the presets used: loading all of
    # MuseScore_General.sf3 takes ~17 s, its few presets ~2 s (same output).
    command += ["-T", "wav", "-o", "synth.dynamic-sample-loading=1", soundfont, midi_path]
    try:
        result = subprocess.run(_dies_with_parent(command), capture_output=True, text=True)
    except BaseException:
        if os.path.exists(wav):
            os.remove(wav)
        raise
    if result.returncode != 0 or not os.path.exists(wav):
        raise CorpusError(
            f"{piece.path}: fluidsynth failed ({result.returncode}): {result.stderr[-500:]}"
        )
    audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    os.remove(wav)
    return audio.mean(axis=1)


def _read_back(midi_path: str, events: list[scores.Event]) -> list[labels_lib.Note]:
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
