"""`jaxnotes-transcribe`: songs or live audio -> notes (MIDI, CSV, piano roll), offline or live.

  jaxnotes-transcribe song.mp3 -o song.mid       # the pretrained model shipped with jaxnotes
  jaxnotes-transcribe song.mp3 --workdir runs/main/transformer -o song.mid
  jaxnotes-transcribe a.wav b.flac --workdir runs/x -o out_dir/        # one MIDI per song
  jaxnotes-transcribe song.wav --workdir runs/x --stream               # paced at real time
  arecord -f S16_LE -r 44100 -c 2 | jaxnotes-transcribe - --stdin-rate 44100 \\
      --stdin-channels 2 --workdir runs/x --stream -o live.mid
  jaxnotes-transcribe --input-device default --workdir runs/x --stream  # needs jaxnotes[live]

Owns the command line: parsing and checking arguments, loading the model and its thresholds,
picking each song's source and outputs, and reporting. Audio sources (file, stdin PCM, sound
card) live in `sources`, one song through the model (streamed or offline) in `session`,
output files and the MIDI port in `outputs`; the signal processing in `streaming`, notes in
`decode`. Every user error is one line on stderr and exit status 1 (2 for bad usage);
`--debug` shows tracebacks. Must not import training code at import time (checkpoints are
loaded inside `load`).
"""

import argparse
import os
import sys
import time

from jaxnotes import files
from jaxnotes.data import audio, features
from jaxnotes.inference import compile_cache, decode, runner
from jaxnotes.transcribe import outputs, session, sources
from jaxnotes.transcribe.sources import PROG, STDIN_FORMATS, UserError


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
    p.add_argument(
        "--fallback",
        action="store_true",
        help="if the checkpoint is damaged, use the newest intact older one",
    )
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
    p.add_argument(
        "--cqt",
        choices=features.CQT_BACKENDS,
        default="auto",
        help="offline CQT: 'jax' (jit-compiled, within 0.4 dB of librosa's, 2x faster on a "
        f"CPU; compiled code is kept in ${compile_cache.ENV}, default "
        "~/.cache/jaxnotes/xla, 'off' for none), 'librosa' (the one the training records "
        "used), or 'auto' (the default: jax)",
    )
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
    from jaxnotes import pretrained
    from jaxnotes.train import checkpoint

    workdir, dev, step = args.workdir, args.dev, None
    if args.checkpoint:
        workdir, dev, step = _checkpoint_location(args.checkpoint)
    if workdir is None:  # the model shipped in the package
        model, meta, config, tuned = pretrained.load()
        origin, tuned_source = "the shipped pretrained model", "the shipped thresholds.json"
    else:
        if not os.path.isdir(workdir):
            raise UserError(f"--workdir {workdir}: no such folder (a training run's workdir)")
        model, meta, config, step = checkpoint.load_model(
            workdir, dev=dev, step=step, fallback=args.fallback
        )
        origin = f"step {step}{' (dev)' if dev else ''} from {workdir}"
        tuned, tuned_source = files.read_thresholds(workdir), files.thresholds_path(workdir)
    cqt = features.CqtConfig.from_config(config.cqt)
    if cqt.n_bins != meta.n_bins:
        raise UserError(f"{origin}: config.cqt gives {cqt.n_bins} bins, meta.json {meta.n_bins}")
    settings = decode.decoder_settings(config.eval, tuned, tuned_source, tuned_first=True)
    source = settings.pop("source")
    for key in ("frame_threshold", "onset_threshold"):
        if getattr(args, key) is not None:
            settings[key], source = getattr(args, key), "command line"
    # The same rule again with the command line's frame threshold, which caps it.
    settings["sustain_threshold"] = decode.sustain_threshold(config.eval, tuned, settings, True)
    what = (
        f"{config.model_name} {origin}; thresholds frame {settings['frame_threshold']:.2f}, "
        f"onset {settings['onset_threshold']:.2f}, shortest note {settings['min_note_s']:.2f} s"
        f"{decode.sustain_text(settings['sustain_threshold'])} ({source})"
    )
    segments, how = runner.run_mode(model, config, config.eval)
    if segments is not None:
        what += (
            f"; offline on {how['segment_s']} s segments ({how['overlap_frames']} frames overlap)"
        )
    return model, meta, cqt, settings, what, segments


def _checkpoint_location(path):
    """(workdir, dev, step) of WORKDIR/checkpoints[_dev][/STEP]; step None means the latest."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise UserError(f"--checkpoint {path}: no such folder")
    step = int(os.path.basename(path)) if os.path.basename(path).isdigit() else None
    kind_dir = os.path.dirname(path) if step is not None else path
    kind = os.path.basename(kind_dir)
    if kind not in (files.CHECKPOINTS, files.DEV_CHECKPOINTS):
        raise UserError(
            f"--checkpoint {path}: expected WORKDIR/checkpoints[_dev][/STEP]; use --workdir for "
            "a whole run"
        )
    return os.path.dirname(kind_dir), kind == files.DEV_CHECKPOINTS, step


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
    from jaxnotes.train import checkpoint

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
    several = len(songs) > 1
    paths = [
        outputs.outputs_for(song, args.output, args.csv, args.piano_roll, several) for song in songs
    ]
    for path in (p for out in paths for p in out.values() if p):
        files.check_writable(path)  # an unwritable -o fails now, not after the transcription
    sources.check_live_extras(args.input_device is not None, bool(args.midi_out))
    cache_dir = compile_cache.enable()  # before anything compiles
    model, meta, cqt, settings, what, segments = load(args)
    if cache_dir:
        what += f"; compiled code cached in {cache_dir}"
    print(f"{PROG}: {what}", file=sys.stderr)
    for song, out in zip(songs, paths, strict=True):
        begin = time.perf_counter()
        probs = None
        if args.stream:
            notes, seconds = _stream(args, song, model, meta, cqt, settings)
        else:
            notes, seconds, probs = session.transcribe_file(
                song, model, meta, cqt, settings, segments, args.cqt
            )
        outputs.write_outputs(out, notes, meta, program=args.program, tempo=args.tempo, probs=probs)
        took = time.perf_counter() - begin
        written = ", ".join(p for p in (out["midi"], out["csv"], out["png"]) if p)
        speed = "streamed" if args.stream else f"{seconds / max(took, 1e-9):.0f}x real time"
        print(
            f"{PROG}: {song}: {len(notes)} notes in {seconds:.1f} s of audio ({took:.1f} s, "
            f"{speed}) -> {written}",
            file=sys.stderr,
        )
    return 0


def _stream(args, song, model, meta, cqt, settings):
    """--stream: one song ('-' stdin, '<input device>' or a file) -> (notes, seconds of audio),
    events printed (and sent to --midi-out) as they are decided."""
    block_s = args.block_ms / 1000.0
    live = song == "-" or song.startswith("<")
    if song == "-":
        source = sources.stdin_blocks(
            block_s, args.stdin_rate, args.stdin_channels, args.stdin_format
        )
    elif song.startswith("<"):
        source = sources.device_blocks(args.input_device, block_s)
    else:
        source = sources.file_blocks(song, block_s)
    sources.check_rate(song, source[0], cqt)
    port = outputs.midi_port(args.midi_out) if args.midi_out else None
    try:
        return session.transcribe_stream(
            song, source, model, meta, cqt, settings,
            paced=not (args.no_pace or live), port=port, program=args.program,
        )  # fmt: skip
    finally:
        if port is not None:
            port.close()


def run():
    """Console-script entry point."""
    sys.exit(main())
