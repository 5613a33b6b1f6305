"""Reading a music21 score as timed notes: parts -> instrument programs, tempo, note events.

Owns turning a score of the default corpus into the `Event`s a piece's MIDI is written
from (instrument programs by part name or ensemble, a tempo from the metre, notated note
values, ties merged, unison overlaps cut), and the MusicNet-style names of a piece and its
ensemble. Writing, rendering and labelling the events is `rendering`'s business. Must not
import `rendering` at run time (it imports this module; its `Piece` is named here for type
checking only), nor `build`, nor model, loop or metric code.

Event times are seconds from the start of the recording, which leads with `LEAD_S` of
silence. Beats are quarter notes from the start of the score. Each written bar plays once:
repeats are not expanded, because expanding costs seconds per movement, fails on a third
of these scores and adds only audio already rendered.
"""

import dataclasses
import math
import os
import random
import re
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxnotes.data.corpus.rendering import Piece

LEAD_S = 0.5  # silence before the first note, so a detector sees its onset
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


@dataclasses.dataclass(frozen=True)
class Event:
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


def score_events(piece: "Piece") -> tuple[list[int], float, list[Event]]:
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


def ensemble_name(programs: list[int]) -> str:
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


def _events(score, programs: list[int], qpm: float, piece: "Piece") -> list[Event]:
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
                Event(track, program, pitch, start, end, min(max(velocity, 1), 127), *score_facts)
            )
    return events


def names(piece: "Piece") -> tuple[str, str, str]:
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
