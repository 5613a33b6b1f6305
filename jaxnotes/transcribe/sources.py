"""Audio sources of jaxnotes-transcribe: a file, raw PCM on stdin, or a sound card.

Owns reading audio block by block: each source is (rate, iterator of mono float32 blocks),
whatever the file's format, the PCM's sample format or the number of channels. Also owns
`UserError` (a problem the user can fix, printed as one line by cli), the note printed when
a rate leaves CQT bins empty, and the check for the optional live packages (sounddevice,
mido with python-rtmidi). Functions take explicit parameters, never the command line's
namespace. Must not import training code, or cli/session/outputs. Legend: S samples.
"""

import sys

import numpy as np

from jaxnotes.data import audio

PROG = "jaxnotes-transcribe"
# Raw PCM on stdin: numpy dtype and the scale to [-1, 1].
STDIN_FORMATS = {"s16le": ("<i2", 1.0 / 32768.0), "f32le": ("<f4", 1.0)}


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def check_rate(song: str, rate: int, cqt) -> None:
    """Prints a note when `rate` is too low for the top CQT bins (they stay empty)."""
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


def stdin_blocks(block_s: float, rate: int, channels: int, fmt: str):
    """(rate, iterator of mono float32 blocks) of raw interleaved PCM on stdin, until EOF.

    `fmt` is a key of STDIN_FORMATS; a partial frame at a read's end waits for the next read.
    """
    dtype, scale = STDIN_FORMATS[fmt]
    frame_bytes = np.dtype(dtype).itemsize * channels
    want = max(1, int(block_s * rate)) * frame_bytes

    def blocks():
        stdin, rest = sys.stdin.buffer, b""
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

    return rate, blocks()


def device_blocks(device: str, block_s: float):
    """(rate, iterator of mono float32 blocks) from a sound card, until Ctrl-C.

    `device` is a sounddevice name or index ("default": the system's default input).
    """
    import queue

    import sounddevice  # checked by check_live_extras

    device = int(device) if device.isdigit() else device
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


def check_live_extras(input_device: bool, midi_out: bool) -> None:
    """Fails (UserError) before the model loads when an optional live package is missing:
    sounddevice for a sound card input, mido with python-rtmidi for a MIDI output port."""
    needed = []
    if input_device:
        needed.append(("sounddevice", "--input-device needs the sounddevice package"))
    if midi_out:
        needed.append(("mido", "--midi-out needs mido with python-rtmidi"))
    for module, why in needed:
        try:
            __import__(module)
            if module == "mido":
                import mido

                mido.backend.module  # noqa: B018 - loads the rtmidi backend, or raises
        except ImportError as e:
            raise UserError(f"{why}: pip install 'jaxnotes[live]' ({e})") from e
