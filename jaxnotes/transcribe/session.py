"""One song through the model: a streaming session, or a whole file offline.

Owns `transcribe_stream` (a (rate, blocks) source from `sources` pushed block by block
through `streaming.NoteStream`: pacing at real time, printing events with their delay,
sending them to an open MIDI port, Ctrl-C ending a live stream) and `transcribe_file`
(offline; files longer than MAX_WHOLE_FILE_S go through the same stream, unpaced, chunk by
chunk). Functions take explicit parameters, never the command line's namespace. Must not
import training code, or cli/outputs. Legend: S samples, T frames, F CQT bins, P pitches.
"""

import collections
import sys
import time

import pretty_midi

from jaxnotes.data import audio, features
from jaxnotes.inference import decode, runner, streaming
from jaxnotes.transcribe import sources
from jaxnotes.transcribe.sources import PROG

# Longer recordings are read and transcribed chunk by chunk (bounded memory) instead of
# decoded whole; both give the same notes (tests), whole files are just faster.
MAX_WHOLE_FILE_S = 600.0
CHUNK_S = 30.0


def transcribe_stream(
    song: str,
    source,
    model,
    meta,
    cqt,
    settings: dict,
    *,
    paced: bool,
    echo: bool = True,
    port=None,
    program: int = 1,
    step_frames: int = 16,
):
    """Streams one source block by block; prints events; returns (notes, seconds of audio).

    `source` is (rate, iterator of mono float32 blocks), see `sources`; `song` names it in
    messages. `paced` waits until each block has "played" (files at real time); `echo` prints
    every event on stdout; `port` is an open MIDI output port (mido) that gets every event,
    or None. `program` is the notes' GM program. `step_frames` is the most outputs per model
    call: small for live input (cheap calls as frames trickle in), large for long files
    (fewer calls).
    """
    rate, blocks = source
    decoder = decode.NoteDecoder.from_meta(meta, **settings)
    stream = streaming.NoteStream(model, meta, cqt, decoder, in_rate=rate, step_frames=step_frames)
    stream.warm_up()  # compile before the clock starts, not on the first note
    if port is not None:
        import mido
    arrivals = collections.deque()  # (song time at a block's end, wall time it arrived)
    events, received, start = [], 0, time.perf_counter()
    horizon = sum(stream.latency_budget().values()) + 10.0

    def emit(new_events):
        now = time.perf_counter()
        for event in new_events:
            while len(arrivals) > 1 and arrivals[0][0] < event.time_s:
                arrivals.popleft()
            delay = now - arrivals[0][1] if arrivals else 0.0
            if echo:
                name = pretty_midi.note_number_to_name(event.pitch)
                print(
                    f"{event.time_s:9.3f} s  {event.kind:3s}  {name:4s} {event.pitch:3d}  "
                    f"(delay {delay:5.2f} s)",
                    flush=True,
                )
            if port is not None:
                kind = "note_on" if event.kind == "on" else "note_off"
                port.send(mido.Message(kind, note=event.pitch, velocity=event.velocity))
        events.extend(new_events)

    try:
        for block_S in blocks:
            received += len(block_S)
            if paced:  # a block is available once its last sample has "played"
                time.sleep(max(0.0, start + received / rate - time.perf_counter()))
            arrivals.append((received / rate, time.perf_counter()))
            while len(arrivals) > 2 and arrivals[0][0] < received / rate - horizon:
                arrivals.popleft()
            emit(stream.push(block_S))
    except KeyboardInterrupt:  # Ctrl-C ends a live stream: the notes so far are written
        print(f"{PROG}: stopped; finishing the notes heard so far", file=sys.stderr)
        blocks.close()
    if received == 0:
        raise audio.AudioError(f"{song}: no audio samples arrived")
    emit(stream.flush())
    return decode.events_to_notes(events, program=program), received / rate


def transcribe_file(
    song: str, model, meta, cqt, settings: dict, segments=None, cqt_backend: str = "auto"
):
    """Offline: (notes, seconds, probs or None); long files go chunk by chunk (models with a
    bounded context; others run on `segments` of the whole file). `cqt_backend`: see
    `features.compute_cqt` (the chunked path uses the streaming CQT)."""
    rate, num_samples = audio.audio_info(song)
    sources.check_rate(song, rate, cqt)
    seconds = num_samples / rate
    if seconds > MAX_WHOLE_FILE_S and segments is None:
        source = sources.file_blocks(song, CHUNK_S)
        notes, seconds = transcribe_stream(
            song, source, model, meta, cqt, settings, paced=False, echo=False, step_frames=256
        )
        return notes, seconds, None
    samples_S = audio.load_audio(song, cqt.sr)
    cqt_TxF = features.compute_cqt(samples_S, cqt, cqt_backend)
    frame_TxP, onset_TxP = runner.predict_offline(model, cqt_TxF, segments=segments)
    notes = decode.frames_to_notes(frame_TxP, onset_TxP, meta, **settings)
    return notes, len(samples_S) / cqt.sr, (frame_TxP, onset_TxP)
