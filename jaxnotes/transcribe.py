"""`jaxnotes-transcribe`: songs or live audio -> notes (MIDI, CSV, piano roll), offline or live.

  jaxnotes-transcribe song.mp3 -o song.mid       # the pretrained model shipped with jaxnotes
  jaxnotes-transcribe song.mp3 --workdir runs/main/transformer -o song.mid
  jaxnotes-transcribe a.wav b.flac --workdir runs/x -o out_dir/        # one MIDI per song
  jaxnotes-transcribe song.wav --workdir runs/x --stream               # paced at real time
  arecord -f S16_LE -r 44100 -c 2 | jaxnotes-transcribe - --stdin-rate 44100 \\
      --stdin-channels 2 --workdir runs/x --stream -o live.mid
  jaxnotes-transcribe --input-device default --workdir runs/x --stream  # needs jaxnotes[live]

Owns the command line, reading sources block by block (file, stdin PCM, sound card), pacing,
printing events and writing outputs. The signal processing lives in `streaming`; notes come
from `decode`, files from `midi`. Every user error is one line on stderr and exit status 1
(2 for bad usage); `--debug` shows tracebacks.
"""

import argparse
import collections
import os
import sys
import time

import numpy as np
import pretty_midi

from jaxnotes import decode, evaluate, inference, midi, streaming
from jaxnotes.data import audio, features

PROG = "jaxnotes-transcribe"
# Longer recordings are read and transcribed chunk by chunk (bounded memory) instead of
# decoded whole; both give the same notes (tests), whole files are just faster.
MAX_WHOLE_FILE_S = 600.0
CHUNK_S = 30.0
STDIN_FORMATS = {"s16le": ("<i2", 1.0 / 32768.0), "f32le": ("<f4", 1.0)}


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def parse_args(argv):
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(
        prog=PROG,
        description=doc[0].strip("`").replace("`: ", ": ", 1),
        epilog="examples:\n" + doc[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("songs", nargs="*", metavar="SONG", help="audio files; '-' reads raw PCM")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--workdir",
        help="training workdir (config.json, meta.json, checkpoints); default: the pretrained "
        "model shipped with jaxnotes",
    )
    src.add_argument("--checkpoint", help="a checkpoint folder inside a workdir")
    p.add_argument("--dev", action="store_true", help="use the best validation (dev) model")
    p.add_argument("-o", "--output", help="MIDI file (one song) or folder (default: ./SONG.mid)")
    p.add_argument("--csv", help="notes CSV (default: beside the MIDI file)")
    p.add_argument("--piano-roll", nargs="?", const="", help="also write a PNG piano roll")
    p.add_argument("--program", type=int, default=1, help="GM program 1..128 (default piano)")
    p.add_argument("--tempo", type=float, default=120.0, help="tempo written in the MIDI file")
    p.add_argument("--frame-threshold", type=float, help="default: workdir/thresholds.json")
    p.add_argument("--onset-threshold", type=float, help="default: workdir/thresholds.json")
    live = p.add_argument_group("streaming")
    live.add_argument("--stream", action="store_true", help="block by block; print events")
    live.add_argument("--block-ms", type=float, default=50.0, help="block duration (ms)")
    live.add_argument("--no-pace", action="store_true", help="files: do not wait real time")
    live.add_argument("--stdin-rate", type=int, help="sample rate of raw PCM on stdin")
    live.add_argument("--stdin-format", choices=sorted(STDIN_FORMATS), default="s16le")
    live.add_argument("--stdin-channels", type=int, default=1)
    live.add_argument("--input-device", help="sound card input (name or index; sounddevice)")
    live.add_argument("--midi-out", help="send events to this MIDI output port (mido+rtmidi)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    if args.input_device is not None:
        if args.songs:
            p.error("--input-device takes no SONG")
        args.stream, args.songs = True, ["<input device>"]
    if not args.songs:
        p.error("give at least one SONG (or '-' for stdin, or --input-device)")
    if "-" in args.songs:
        args.stream = True
        if args.stdin_rate is None or args.stdin_rate <= 0:
            p.error("'-' (stdin) needs --stdin-rate, the PCM sample rate in Hz")
        if args.stdin_channels < 1:
            p.error("--stdin-channels must be >= 1")
    if len(args.songs) > 1 and (args.csv or args.piano_roll):
        p.error("with several songs, --csv/--piano-roll PATH cannot name one file")
    if not 1 <= args.program <= 128:
        p.error("--program is a General MIDI program, 1..128")
    if args.block_ms <= 0 or args.tempo <= 0:
        p.error("--block-ms and --tempo must be positive")
    for name in ("frame_threshold", "onset_threshold"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1]")
    return args


def load(args):
    """(model, meta, cqt config, decoder settings, description, offline segments or None)
    from --workdir/--checkpoint, or the shipped model."""
    from jaxnotes import checkpoint, pretrained

    workdir, dev, step = args.workdir, args.dev, None
    if args.checkpoint:
        workdir, dev, step = _checkpoint_location(args.checkpoint)
    chosen, source = {}, "config.eval"
    if workdir is None:  # the model shipped in the package
        model, meta, config, chosen = pretrained.load()
        origin, source = "the shipped pretrained model", "shipped thresholds.json"
    else:
        if not os.path.isdir(workdir):
            raise UserError(f"--workdir {workdir}: no such folder (a training run's workdir)")
        model, meta, config, step = checkpoint.load_model(workdir, dev=dev, step=step)
        origin = f"step {step}{' (dev)' if dev else ''} from {workdir}"
        chosen = checkpoint.read_thresholds(workdir)  # written by the test action
        if chosen:
            source = os.path.join(workdir, checkpoint.THRESHOLDS_FILE)
    cqt = features.CqtConfig.from_config(config.cqt)
    if cqt.n_bins != meta.n_bins:
        raise UserError(f"{origin}: config.cqt gives {cqt.n_bins} bins, meta.json {meta.n_bins}")
    settings = decoder_settings(config, chosen)
    for key in ("frame_threshold", "onset_threshold"):
        if getattr(args, key) is not None:
            settings[key], source = getattr(args, key), "command line"
    what = (
        f"{config.model_name} {origin}; thresholds frame {settings['frame_threshold']:.2f}, "
        f"onset {settings['onset_threshold']:.2f} ({source})"
    )
    segments, how = evaluate.run_mode(model, config, config.eval)
    if segments is not None:
        what += (
            f"; offline on {how['segment_s']} s segments ({how['overlap_frames']} frames overlap)"
        )
    return model, meta, cqt, settings, what, segments


def decoder_settings(config, tuned: dict) -> dict:
    """Note-decoder settings: config.eval's, thresholds from `tuned` (thresholds.json) if set."""
    settings = dict(min_note_s=config.eval.min_note_s, gap_join_s=config.eval.gap_join_s)
    for key in ("frame_threshold", "onset_threshold"):
        value = tuned.get(key) if tuned.get(key) is not None else config.eval.get(key)
        settings[key] = 0.5 if value is None else float(value)
    return settings


def _checkpoint_location(path):
    """(workdir, dev, step) of WORKDIR/checkpoints[_dev][/STEP]; step None means the latest."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise UserError(f"--checkpoint {path}: no such folder")
    step = int(os.path.basename(path)) if os.path.basename(path).isdigit() else None
    kind_dir = os.path.dirname(path) if step is not None else path
    kind = os.path.basename(kind_dir)
    if kind not in ("checkpoints", "checkpoints_dev"):
        raise UserError(
            f"--checkpoint {path}: expected WORKDIR/checkpoints[_dev][/STEP]; use --workdir for "
            "a whole run"
        )
    return os.path.dirname(kind_dir), kind == "checkpoints_dev", step


def outputs_for(args, song: str) -> dict:
    """Output paths of one song: midi, csv and (optionally) png."""
    stem = "stdin" if song == "-" else "live" if song.startswith("<") else None
    stem = stem or os.path.splitext(os.path.basename(song))[0]
    out = args.output
    if out is None:
        mid = f"{stem}.mid"
    elif len(args.songs) > 1 or out.endswith(os.sep) or os.path.isdir(out):
        if out.lower().endswith((".mid", ".midi")):
            raise UserError(f"-o {out}: with several songs, -o names a folder")
        mid = os.path.join(out, f"{stem}.mid")
    else:
        mid = out
    base = os.path.splitext(mid)[0]
    png = None if args.piano_roll is None else args.piano_roll or f"{base}.png"
    return {"midi": mid, "csv": args.csv or f"{base}.csv", "png": png}


def write_outputs(args, paths, notes, meta, probs=None) -> None:
    """MIDI, CSV and (optionally) a piano roll: probabilities, decoded notes outlined."""
    notes = [n.__class__(n.start_s, n.end_s, n.pitch, args.program, n.velocity) for n in notes]
    midi.write_midi(paths["midi"], notes, program=args.program, tempo_bpm=args.tempo)
    midi.write_notes_csv(paths["csv"], notes)
    if paths["png"]:
        from jaxnotes import report
        from jaxnotes.data import labels

        end_s = max([n.end_s for n in notes] + [1.0])
        num_frames = probs[0].shape[0] if probs else int(end_s * meta.frames_per_second) + 1
        frames_Tx128, _ = labels.notes_to_rolls(notes, num_frames, meta.frames_per_second)
        pitches = decode.output_pitches(meta)
        roll_TxP = frames_Tx128[:, pitches].astype(np.float32)
        shown_TxP = probs[0] if probs else roll_TxP  # long files: the notes alone
        png = report.piano_roll_png(
            shown_TxP,
            roll_TxP,
            pitches,
            meta.frames_per_second,
            title=os.path.basename(paths["midi"]),
            outlined="decoded notes",
        )
        midi.atomic_write_bytes(paths["png"], png)


def check_rate(song: str, rate: int, cqt) -> None:
    if rate / 2 < cqt.fmax_hz:
        empty = int(
            np.sum(cqt.fmin_hz * 2.0 ** (np.arange(cqt.n_bins) / cqt.bins_per_octave) > rate / 2)
        )
        print(
            f"{PROG}: note: {song} is sampled at {rate} Hz, so nothing above {rate / 2:.0f} Hz: "
            f"the top {empty} of {cqt.n_bins} CQT bins are empty (high notes may be missed)",
            file=sys.stderr,
        )


def file_blocks(path: str, block_s: float):
    """(rate, iterator of mono float32 blocks) of a file, decoded block by block."""
    import soundfile as sf

    rate, _ = audio.audio_info(path)  # AudioError for missing, empty or non-audio files
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError):
        samples_S, rate = audio.load_audio_with_rate(path)  # formats libsndfile lacks
        n = max(1, int(block_s * rate))
        return rate, (samples_S[i : i + n] for i in range(0, len(samples_S), n))

    def blocks():
        with handle:
            n = max(1, int(block_s * handle.samplerate))
            for data in handle.blocks(blocksize=n, dtype="float32", always_2d=True):
                block_S = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
                if not np.all(np.isfinite(block_S)):
                    raise audio.AudioError(f"{path}: the audio holds NaN or infinite samples")
                yield block_S.astype(np.float32)

    return handle.samplerate, blocks()


def stdin_blocks(args, block_s: float):
    dtype, scale = STDIN_FORMATS[args.stdin_format]
    channels, stdin = args.stdin_channels, sys.stdin.buffer
    frame_bytes = np.dtype(dtype).itemsize * channels
    want, rest = max(1, int(block_s * args.stdin_rate)) * frame_bytes, b""
    while True:
        chunk = stdin.read(want - len(rest)) if want > len(rest) else b""
        data = rest + chunk
        usable = len(data) // frame_bytes * frame_bytes
        data, rest = data[:usable], data[usable:]
        if data:
            pcm = np.frombuffer(data, dtype).astype(np.float32).reshape(-1, channels) * scale
            yield pcm.mean(axis=1)
        if not chunk:
            return


def device_blocks(args, block_s: float):
    """(rate, iterator of mono blocks) from a sound card, until Ctrl-C."""
    import queue

    import sounddevice  # checked by _check_live_extras

    device = int(args.input_device) if args.input_device.isdigit() else args.input_device
    if device == "default":
        device = None
    rate = int(sounddevice.query_devices(device, "input")["default_samplerate"])
    blocks = queue.Queue()

    def callback(data, frames, time_info, status):
        blocks.put(data.mean(axis=1).astype(np.float32))

    def gen():
        with sounddevice.InputStream(
            device=device, channels=1, samplerate=rate, blocksize=int(block_s * rate),
            callback=callback,
        ):  # fmt: skip
            print(f"{PROG}: listening at {rate} Hz; Ctrl-C to stop", file=sys.stderr)
            while True:
                try:  # a timeout, so that Ctrl-C is seen while no audio comes
                    yield blocks.get(timeout=0.1)
                except queue.Empty:
                    continue

    return rate, gen()


def _check_live_extras(args) -> None:
    """Fails before loading the model when an optional live package is missing."""
    needed = []
    if args.input_device is not None:
        needed.append(("sounddevice", "--input-device needs the sounddevice package"))
    if args.midi_out:
        needed.append(("mido", "--midi-out needs mido with python-rtmidi"))
    for module, why in needed:
        try:
            __import__(module)
            if module == "mido":
                import mido

                mido.backend.module  # noqa: B018 - loads the rtmidi backend, or raises
        except ImportError as e:
            raise UserError(f"{why}: pip install 'jaxnotes[live]' ({e})") from e


def midi_port(name):
    import mido  # checked by _check_live_extras

    try:
        return mido.open_output(name)
    except (OSError, ValueError) as e:
        raise UserError(f"--midi-out {name!r}: cannot open the MIDI port ({e})") from e


def transcribe_stream(
    args, song, model, meta, cqt, settings, *, paced: bool, echo=True, step_frames=16
):
    """Streams one source block by block; prints events; returns (notes, seconds of audio).

    `step_frames` is the most outputs per model call: small for live input (cheap calls as
    frames trickle in), large for long files (fewer calls).
    """
    block_s = args.block_ms / 1000.0
    if song == "-":
        rate, blocks = args.stdin_rate, stdin_blocks(args, block_s)
    elif song.startswith("<"):
        rate, blocks = device_blocks(args, block_s)
    else:
        rate, blocks = file_blocks(song, block_s)
    check_rate(song, rate, cqt)
    decoder = decode.NoteDecoder.from_meta(meta, **settings)
    stream = streaming.NoteStream(model, meta, cqt, decoder, in_rate=rate, step_frames=step_frames)
    stream.warm_up()  # compile before the clock starts, not on the first note
    port = midi_port(args.midi_out) if echo and args.midi_out else None
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
    if port is not None:
        port.close()
    return decode.events_to_notes(events, program=args.program), received / rate


def transcribe_file(song, model, meta, cqt, settings, segments=None):
    """Offline: (notes, seconds, probs or None); long files go chunk by chunk (models with a
    bounded context; others run on `segments` of the whole file)."""
    rate, num_samples = audio.audio_info(song)
    check_rate(song, rate, cqt)
    seconds = num_samples / rate
    if seconds > MAX_WHOLE_FILE_S and segments is None:
        args = argparse.Namespace(block_ms=CHUNK_S * 1000, program=1, midi_out=None)
        notes, seconds = transcribe_stream(
            args, song, model, meta, cqt, settings, paced=False, echo=False, step_frames=256
        )
        return notes, seconds, None
    samples_S = audio.load_audio(song, cqt.sr)
    cqt_TxF = features.compute_cqt(samples_S, cqt)
    frame_TxP, onset_TxP = inference.predict_offline(model, cqt_TxF, segments=segments)
    notes = decode.frames_to_notes(frame_TxP, onset_TxP, meta, **settings)
    return notes, len(samples_S) / cqt.sr, (frame_TxP, onset_TxP)


def main(argv=None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # every failure becomes one line unless --debug
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: Exception) -> str:
    from jaxnotes import checkpoint

    text = " ".join(str(e).split())
    known = (UserError, audio.AudioError, checkpoint.CheckpointNotFoundError, OSError)
    if isinstance(e, known + (checkpoint.CheckpointMismatchError, ValueError)):
        return text
    return f"{type(e).__name__}: {text} (run with --debug for the traceback)"


def _main(args) -> int:
    songs = args.songs
    for song in songs:  # fail before loading the model
        if song != "-" and not song.startswith("<"):
            audio.audio_info(song)
    paths = [outputs_for(args, song) for song in songs]
    _check_live_extras(args)
    model, meta, cqt, settings, what, segments = load(args)
    print(f"{PROG}: {what}", file=sys.stderr)
    for song, out in zip(songs, paths, strict=True):
        begin = time.perf_counter()
        probs = None
        if args.stream:
            live = song == "-" or song.startswith("<")
            paced = not (args.no_pace or live)
            notes, seconds = transcribe_stream(args, song, model, meta, cqt, settings, paced=paced)
        else:
            notes, seconds, probs = transcribe_file(song, model, meta, cqt, settings, segments)
        write_outputs(args, out, notes, meta, probs)
        took = time.perf_counter() - begin
        written = ", ".join(p for p in (out["midi"], out["csv"], out["png"]) if p)
        speed = "streamed" if args.stream else f"{seconds / max(took, 1e-9):.0f}x real time"
        print(
            f"{PROG}: {song}: {len(notes)} notes in {seconds:.1f} s of audio ({took:.1f} s, "
            f"{speed}) -> {written}",
            file=sys.stderr,
        )
    return 0


def run():
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
