"""Frame (and onset) probabilities -> notes, incrementally.

Owns the one note decoder used offline (evaluation, transcription of a file) and live
(streaming): `frames_to_notes` is one `NoteDecoder.push` of every frame plus `flush`, so
both paths give the same notes by construction. Must not import model, loop or dataset
code (the `Note` record is the data contract's).

Legend: T frames, P pitches (outputs), N notes.

Rules, per pitch, frame by frame (a frame is "active" when `frame_prob >= frame_threshold`,
"held" when `frame_prob >= sustain_threshold`, which is at most the frame threshold and by
default equal to it, and an onset is "up" when `onset_prob >= onset_threshold`):

- A note starts at a frame where the onset goes up (rising edge) when the model has an
  onset output; otherwise at the first active frame of a run. An up onset also counts as
  active (the onset head implies the note sounds), as in Onsets and Frames.
- With onsets, a new rising edge while a note sounds re-triggers: the sounding note ends at
  that frame (or at its gap, see below) and a new one starts there.
- A sounding note goes on while its frames are held (hysteresis: a note's tail may fall
  below the threshold that starts one). It ends at the first frame of its gap that is not
  held: it covers frames [start, end), the labels' convention, so `start_s = start / fps`
  and `end_s = end / fps`. A gap shorter than `gap_join_s` (in seconds,
  `g / fps < gap_join_s`) is joined: the note goes on.
- A finished note shorter than `min_note_s` (`(end - start) / fps < min_note_s`) is dropped.

Decoding delay (streaming): an 'on' event is known only once its note has lasted
`min_note_s`, an 'off' only once its gap has reached `gap_join_s`. So that events come out
in time order across calls, `push` holds every event back until no later decision can
precede it: an event at time t is released at most about `min_note_s + gap_join_s` of
audio after t (`NoteDecoder.max_delay_frames` frames). `flush` releases the rest.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jaxnotes.data.labels import Note

# Pitch classes (`only_note_names`) are written in octave 4 (C4 = 60): audible in MIDI and
# valid for mir_eval, while pitch-class metrics fold `pitch % 12` anyway.
PITCH_CLASS_BASE = 60
_OFF, _ON = 0, 1  # at one frame an 'off' sorts before an 'on' (a re-triggered pitch)
# The shortest note of a model whose thresholds.json has none (tuned before it was tuned).
DEFAULT_MIN_NOTE_S = 0.05


@dataclasses.dataclass(frozen=True)
class NoteEvent:
    """A note switching on or off; `time_s` is the musical time, not the emission time."""

    kind: str  # 'on' | 'off'
    time_s: float
    pitch: int
    velocity: int


def output_pitches(meta) -> np.ndarray:
    """MIDI pitch of each model output (`Meta`-like: n_pitches, min_pitch, only_note_names).

    Pitch classes map to `PITCH_CLASS_BASE + pc`; MIDI outputs to `min_pitch + index`.
    """
    index_P = np.arange(meta.n_pitches)
    if meta.only_note_names:
        return PITCH_CLASS_BASE + index_P
    return meta.min_pitch + index_P


def _frames_at_least(seconds: float, fps: float) -> int:
    """Smallest frame count n with n / fps >= seconds (tolerant to float rounding)."""
    return max(0, math.ceil(seconds * fps - 1e-9))


class NoteDecoder:
    """Incremental decoder: `push` blocks of frames, get time-ordered note events.

    Args:
      frames_per_second: frame rate of the probabilities.
      pitches: MIDI pitch of each of the P outputs (see `output_pitches`).
      frame_threshold: a frame is active when its probability is >= this.
      sustain_threshold: a sounding note goes on while its frame probability is >= this
        (<= frame_threshold; None: frame_threshold, no hysteresis).
      onset_threshold: an onset is up when its probability is >= this (used only when onset
        probabilities are pushed).
      min_note_s: notes shorter than this are dropped (delays 'on' events by up to this).
      gap_join_s: gaps shorter than this inside a note are joined (delays 'off' events).
      velocity: MIDI velocity given to every note (the models do not predict loudness).
    """

    def __init__(
        self,
        frames_per_second: float,
        pitches: Sequence[int],
        *,
        frame_threshold: float = 0.5,
        onset_threshold: float = 0.5,
        min_note_s: float = 0.05,
        gap_join_s: float = 0.03,
        velocity: int = 80,
        sustain_threshold: float | None = None,
    ):
        if sustain_threshold is None:
            sustain_threshold = frame_threshold
        for name, value in (
            ("frame_threshold", frame_threshold),
            ("onset_threshold", onset_threshold),
            ("sustain_threshold", sustain_threshold),
        ):
            if value is None or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")
        if sustain_threshold > frame_threshold:
            raise ValueError(
                f"sustain_threshold {sustain_threshold} must be <= frame_threshold "
                f"{frame_threshold}: it lets a sounding note go on, never starts one"
            )
        if min_note_s < 0 or gap_join_s < 0:
            raise ValueError(
                f"min_note_s and gap_join_s must be >= 0; got {min_note_s}, {gap_join_s}"
            )
        if not 1 <= velocity <= 127:
            raise ValueError(f"velocity must be a MIDI velocity in 1..127; got {velocity}")
        self.frames_per_second = float(frames_per_second)
        self.pitches_P = np.asarray(pitches, dtype=np.int64)
        self.frame_threshold = float(frame_threshold)
        self.onset_threshold = float(onset_threshold)
        self.sustain_threshold = float(sustain_threshold)
        self.velocity = int(velocity)
        self.min_frames = max(1, _frames_at_least(min_note_s, self.frames_per_second))
        # Longest gap (in frames) still joined: g / fps < gap_join_s.
        self.max_gap_frames = max(0, _frames_at_least(gap_join_s, self.frames_per_second) - 1)
        num_pitches = len(self.pitches_P)
        self._frames_done = 0
        self._has_onsets: bool | None = None
        self._start_P = np.full(num_pitches, -1, np.int64)  # -1: no note open
        self._gap_P = np.full(num_pitches, -1, np.int64)  # first frame of the gap, or -1
        self._confirmed_P = np.zeros(num_pitches, bool)  # its 'on' event has been made
        self._onset_up_P = np.zeros(num_pitches, bool)  # onset up at the last frame
        self._pending: list[tuple[int, int, int]] = []  # (frame, _OFF/_ON, output index)

    @classmethod
    def from_meta(cls, meta, **kwargs) -> "NoteDecoder":
        """A decoder for a model's outputs (`Meta`-like)."""
        return cls(meta.frames_per_second, output_pitches(meta), **kwargs)

    @property
    def max_delay_frames(self) -> int:
        """Upper bound on how many frames an event is held back after its frame arrives."""
        return self.min_frames + self.max_gap_frames

    def push(
        self, frame_probs_TxP: np.ndarray, onset_probs_TxP: np.ndarray | None = None
    ) -> list[NoteEvent]:
        """Decodes the next T frames; returns the events now final, in time order."""
        frame_probs_TxP = np.asarray(frame_probs_TxP)
        if frame_probs_TxP.ndim != 2 or frame_probs_TxP.shape[1] != len(self.pitches_P):
            num_pitches = len(self.pitches_P)
            shape = frame_probs_TxP.shape
            raise ValueError(f"frame probabilities must be T x {num_pitches}; got {shape}")
        has_onsets = onset_probs_TxP is not None
        if self._has_onsets is None:
            self._has_onsets = has_onsets
        elif self._has_onsets != has_onsets:
            raise ValueError("push onset probabilities on every call or on none")
        active_TxP = frame_probs_TxP >= self.frame_threshold
        held_TxP = frame_probs_TxP >= self.sustain_threshold
        if has_onsets:
            onset_probs_TxP = np.asarray(onset_probs_TxP)
            if onset_probs_TxP.shape != frame_probs_TxP.shape:
                raise ValueError(
                    f"onset shape {onset_probs_TxP.shape} != frame shape {frame_probs_TxP.shape}"
                )
            up_TxP = onset_probs_TxP >= self.onset_threshold
            previous_TxP = np.concatenate([self._onset_up_P[None], up_TxP])[:-1]
            edge_TxP = up_TxP & ~previous_TxP
            active_TxP = active_TxP | up_TxP
            held_TxP = held_TxP | up_TxP
            if len(up_TxP):
                self._onset_up_P = up_TxP[-1].copy()
        else:
            edge_TxP = np.zeros_like(active_TxP)
        num_frames = len(active_TxP)
        # Only pitches that sound now or hold an open note can change state.
        busy_P = active_TxP.any(axis=0) | (self._start_P >= 0)
        for index in np.flatnonzero(busy_P) if num_frames else ():
            self._decode_pitch(index, active_TxP[:, index], held_TxP[:, index], edge_TxP[:, index])
        self._frames_done += num_frames
        return self._release(self._horizon())

    def flush(self) -> list[NoteEvent]:
        """Ends every sounding note at the last frame pushed; returns the remaining events."""
        for index in np.flatnonzero(self._start_P >= 0):
            gap = self._gap_P[index]
            self._finish(index, gap if gap >= 0 else self._frames_done)
        return self._release(None)

    def _decode_pitch(
        self, index: int, active_T: np.ndarray, held_T: np.ndarray, edge_T: np.ndarray
    ) -> None:
        """Runs one pitch's state machine over the block, one constant run at a time.

        Within a run [a, b) activity and holding are constant and no onset rises after `a`,
        so the state can only change at its first frame, or once at a frame count that `b`
        bounds.
        """
        offset = self._frames_done
        cuts = np.flatnonzero(np.diff(active_T) | np.diff(held_T)) + 1
        cuts = np.union1d(np.union1d(cuts, np.flatnonzero(edge_T)), [0])
        ends = np.append(cuts[1:], len(active_T))
        for a, b in zip(cuts, ends, strict=True):
            a, b = int(a) + offset, int(b) + offset
            start, active = self._start_P[index], bool(active_T[a - offset])
            held = bool(held_T[a - offset])
            if edge_T[a - offset]:
                if start >= 0:  # re-trigger: the sounding note ends where this one starts
                    gap = self._gap_P[index]
                    self._finish(index, gap if gap >= 0 else a)
                self._open(index, a)
            elif start < 0:
                if active and not self._has_onsets:
                    self._open(index, a)
                else:
                    continue  # silence, or frames without an onset: no note
            elif not held:
                if self._gap_P[index] < 0:
                    self._gap_P[index] = a
                if b - self._gap_P[index] > self.max_gap_frames:
                    self._finish(index, int(self._gap_P[index]))
                continue
            self._gap_P[index] = -1  # sounding (a short gap, if any, is joined)
            start = int(self._start_P[index])
            if not self._confirmed_P[index] and b - start >= self.min_frames:
                self._confirmed_P[index] = True
                self._pending.append((start, _ON, index))

    def _open(self, index: int, frame: int) -> None:
        self._start_P[index], self._gap_P[index] = frame, -1
        self._confirmed_P[index] = False

    def _finish(self, index: int, end: int) -> None:
        start = int(self._start_P[index])
        if end - start >= self.min_frames:
            if not self._confirmed_P[index]:
                self._pending.append((start, _ON, index))
            self._pending.append((end, _OFF, index))
        self._start_P[index], self._gap_P[index] = -1, -1
        self._confirmed_P[index] = False

    def _horizon(self) -> int:
        """First frame at which a future event could still appear."""
        horizon = self._frames_done
        open_P = self._start_P >= 0
        unconfirmed_P = open_P & ~self._confirmed_P
        if unconfirmed_P.any():
            horizon = min(horizon, int(self._start_P[unconfirmed_P].min()))
        in_gap_P = open_P & (self._gap_P >= 0)
        if in_gap_P.any():
            horizon = min(horizon, int(self._gap_P[in_gap_P].min()))
        return horizon

    def _release(self, horizon: int | None) -> list[NoteEvent]:
        """Events before `horizon` (all when None), sorted by time, 'off' first, pitch."""
        if horizon is None:
            ready, self._pending = self._pending, []
        else:
            ready = [e for e in self._pending if e[0] < horizon]
            self._pending = [e for e in self._pending if e[0] >= horizon]
        ready.sort(key=lambda e: (e[0], e[1], int(self.pitches_P[e[2]])))
        return [
            NoteEvent(
                kind="on" if kind == _ON else "off",
                time_s=frame / self.frames_per_second,
                pitch=int(self.pitches_P[index]),
                velocity=self.velocity,
            )
            for frame, kind, index in ready
        ]


def events_to_notes(events: Sequence[NoteEvent], *, program: int = 1) -> list[Note]:
    """Pairs 'on'/'off' events per pitch into notes, sorted by (start, pitch)."""
    open_notes: dict[int, NoteEvent] = {}
    notes = []
    for event in events:
        if event.kind == "on":
            if event.pitch in open_notes:
                raise ValueError(f"pitch {event.pitch} switched on twice at {event.time_s} s")
            open_notes[event.pitch] = event
        else:
            on = open_notes.pop(event.pitch, None)
            if on is None:
                raise ValueError(f"pitch {event.pitch} switched off at {event.time_s} s unopened")
            notes.append(Note(on.time_s, event.time_s, on.pitch, program, on.velocity))
    if open_notes:
        raise ValueError(f"pitches {sorted(open_notes)} never switched off (call flush)")
    return sorted(notes, key=lambda n: (n.start_s, n.pitch, n.end_s))


def frames_to_notes(
    frame_probs_TxP: np.ndarray,
    onset_probs_TxP: np.ndarray | None,
    meta,
    *,
    frame_threshold: float = 0.5,
    onset_threshold: float = 0.5,
    min_note_s: float = 0.05,
    gap_join_s: float = 0.03,
    velocity: int = 80,
    program: int = 1,
    sustain_threshold: float | None = None,
) -> list[Note]:
    """Decodes a whole piece: one `NoteDecoder.push` of every frame, then `flush`.

    Args:
      frame_probs_TxP: frame probabilities of the piece.
      onset_probs_TxP: onset probabilities, or None to start notes from frames alone.
      meta: `Meta`-like (frames_per_second, n_pitches, min_pitch, only_note_names).
      program: GM program (1-based) written into every note.
      Other arguments: as `NoteDecoder`.

    Returns:
      Notes sorted by (start_s, pitch).
    """
    decoder = NoteDecoder.from_meta(
        meta,
        frame_threshold=frame_threshold,
        onset_threshold=onset_threshold,
        min_note_s=min_note_s,
        gap_join_s=gap_join_s,
        velocity=velocity,
        sustain_threshold=sustain_threshold,
    )
    events = decoder.push(frame_probs_TxP, onset_probs_TxP) + decoder.flush()
    return events_to_notes(events, program=program)


def notes_to_arrays(notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray]:
    """Notes as mir_eval-style arrays: (intervals_Nx2 in seconds, pitches_N MIDI)."""
    intervals_Nx2 = np.array([(n.start_s, n.end_s) for n in notes], np.float64).reshape(-1, 2)
    pitches_N = np.array([n.pitch for n in notes], np.int64)
    return intervals_Nx2, pitches_N


def decoder_settings(
    eval_config,
    tuned: dict,
    tuned_source: str,
    default: float | None = 0.5,
    *,
    tuned_first: bool = False,
) -> dict:
    """NoteDecoder keyword arguments, and where the thresholds came from ('source').

    For each of the frame threshold, the onset threshold and the shortest note: a value set
    in `config.eval` wins; otherwise the tuned one (`tuned`: the model's thresholds.json,
    from the test action on its validation split); otherwise `default` for a threshold and
    `DEFAULT_MIN_NOTE_S` for the shortest note (the fixed value of models tuned before it
    was tuned). That is the test action's rule, whose `config.eval` is the command line's.
    `tuned_first` (transcription and the API, whose `config.eval` is the one the model was
    trained with) takes a tuned value before the config's: thresholds.json holds what the
    model's test action decoded with, whether it was tuned or set in that config.

    Raises:
        ValueError: a threshold has neither a setting nor a tuned value, and no default.
    """
    settings = {"gap_join_s": eval_config.gap_join_s}
    sources = set()
    for key in ("frame_threshold", "onset_threshold", "min_note_s"):
        fallback = DEFAULT_MIN_NOTE_S if key == "min_note_s" else default
        configured, learnt = getattr(eval_config, key), tuned.get(key)
        if learnt is not None and (tuned_first or configured is None):
            settings[key] = float(learnt)
            sources.add(tuned_source)
        elif configured is not None:
            settings[key] = float(configured)
            sources.add("config.eval")
        elif fallback is not None:
            settings[key] = float(fallback)
            if key != "min_note_s":
                sources.add(f"the default {fallback}")
        else:
            raise ValueError(
                f"{tuned_source} gives no {key} and config.eval.{key} is not set: run the test "
                f"action on the model's own data first (it tunes it), or set --config.eval.{key}"
            )
    settings["sustain_threshold"] = sustain_threshold(eval_config, tuned, settings, tuned_first)
    settings["source"] = " and ".join(sorted(sources))
    return settings


def sustain_threshold(eval_config, tuned: dict, settings: dict, tuned_first: bool = False):
    """The sustain threshold by `decoder_settings`' rule (None, no hysteresis, where neither
    config.eval nor `tuned` has one; models tuned before it was tuned have none), at most
    `settings['frame_threshold']`: a frame threshold set by hand caps it."""
    configured = getattr(eval_config, "sustain_threshold", None)
    learnt = tuned.get("sustain_threshold")
    value = learnt if learnt is not None and (tuned_first or configured is None) else configured
    return None if value is None else min(float(value), settings["frame_threshold"])


def sustain_text(sustain_threshold: float | None) -> str:
    """', sustain X' for a report's or a log's thresholds line; '' without hysteresis."""
    return "" if sustain_threshold is None else f", sustain {sustain_threshold:.2f}"
