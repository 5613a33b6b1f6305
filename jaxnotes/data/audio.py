"""Reading audio files into mono float32 samples at a chosen rate.

Owns: decoding (wav, flac, ogg through libsndfile; mp3 and others through
audioread), down-mixing and resampling. Every failure is an `AudioError` that
names the file. Must not import model, loop or metric code.
"""

import os
import struct
import warnings

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """An audio file that cannot be used, with the file named in the message."""


def audio_info(path: str) -> tuple[int, int]:
    """Returns (sample_rate, num_samples) of a file without decoding it all."""
    _check_exists(path)
    check_wav_complete(path)
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError):
        # Formats libsndfile cannot parse (mp3 on old builds, m4a): decode fully.
        samples_S, sr = _decode(path)
        return sr, len(samples_S)
    return int(info.samplerate), int(info.frames)


def check_wav_complete(path: str) -> None:
    """Raises `AudioError` when a WAV file is shorter than its header says.

    libsndfile reads a cut-off WAV without complaint (it just returns fewer
    samples), so an interrupted copy would otherwise pass as a short recording. One
    policy for every reader (the dataset builder, transcription, the API): a truncated
    WAV is an error naming the file and how much is missing.
    """
    if not path.lower().endswith(".wav") or not os.path.exists(path):
        return
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return  # not a plain RIFF/WAVE file: leave the verdict to the decoder
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mean "unknown length" (streamed or RF64 files).
                available = size - f.tell()
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise AudioError(
                        f"{path}: truncated WAV file: the header declares {chunk_size} bytes"
                        f" of audio but only {available} are present"
                    )
                return
            f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)


def load_audio(path: str, sr: int | None = None) -> np.ndarray:
    """Decodes `path` to mono float32, resampled to `sr` (None keeps the file's rate).

    Raises:
        AudioError: the file is missing, empty, not audio, or holds non-finite samples.
    """
    samples_S, file_sr = _decode(path)
    return resample(samples_S, file_sr, file_sr if sr is None else sr)


def resample(samples_S: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Mono samples at rate `sr` -> float32 at `target_sr` (soxr, as every loader here).

    What `librosa.resample(res_type='soxr_hq')` returns, bit for bit (soxr's HQ filter, then
    ceil(S * target_sr / sr) samples), without importing librosa (2-3 s on this CPU).
    """
    if sr != target_sr:
        import soxr

        samples_S = np.asarray(samples_S)
        size = int(np.ceil(len(samples_S) * float(target_sr) / sr))
        out_S = soxr.resample(samples_S, sr, target_sr, quality="soxr_hq")
        samples_S = np.pad(out_S[:size], (0, max(0, size - len(out_S))))
    return np.ascontiguousarray(samples_S, dtype=np.float32)


def load_audio_with_rate(path: str) -> tuple[np.ndarray, int]:
    """Decodes `path` to mono float32 at its own sample rate."""
    return _decode(path)


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")


def _decode(path: str) -> tuple[np.ndarray, int]:
    _check_exists(path)
    check_wav_complete(path)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as sf_error:
        data, sr = _decode_with_audioread(path, sf_error)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    samples_S = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(samples_S)):
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    return samples_S.astype(np.float32), int(sr)


def _decode_with_audioread(path: str, sf_error: Exception) -> tuple[np.ndarray, int]:
    try:
        import audioread

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with audioread.audio_open(path) as f:
                sr, channels = f.samplerate, f.channels
                pcm = b"".join(f)
    except Exception as e:  # audioread raises many unrelated types for bad input
        why = str(e) or "no audioread backend (ffmpeg, GStreamer) recognised the format"
        raise AudioError(
            f"{path}: not a readable audio file (libsndfile: {_first_line(sf_error)}; "
            f"audioread: {why})"
        ) from e
    data = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels)
    else:
        data = data[:, None]
    return data, int(sr)


def _first_line(error: Exception) -> str:
    """libsndfile's message without the file name it repeats."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
