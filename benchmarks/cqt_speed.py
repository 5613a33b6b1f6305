"""CQT speed and agreement: librosa (features.cqt_magnitude) against JAX (data.jax_cqt).

  python benchmarks/cqt_speed.py                       # 120 s of audio, 3 timed repeats
  python benchmarks/cqt_speed.py --seconds 600 --repeats 5 --wav some.wav

Both run in this process on the same audio: recordings of the rendered corpus under
~/.cache/jaxnotes/corpus (joined and resampled to the CQT rate), or --wav, or, with neither,
synthetic harmonic tones (tests/musicnet_fixtures.py). Warm-up (librosa's numba compiles,
the JAX bucket's XLA compile) is timed and reported apart; the timed repeats alternate the
two so a busy machine slows both alike. Prints x real time (seconds of audio per second of
compute; median of the repeats, best in brackets), the JAX/librosa time ratio, and the
agreement of the two (jax_cqt.agreement) on this audio and on synthetic signals: sines at
and between bin centres over the whole range, a chirp, clicks and white noise.
"""

import argparse
import glob
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from jaxnotes.data import audio, features, jax_cqt  # noqa: E402

CORPUS = os.path.expanduser("~/.cache/jaxnotes/corpus")


def load(args, sr: int) -> tuple[np.ndarray, str]:
    """(audio_S, description) of --seconds of audio at `sr`."""
    need = int(args.seconds * sr)
    paths = [args.wav] if args.wav else sorted(glob.glob(f"{CORPUS}/*/*_data/*.wav"))
    if paths:
        parts, have = [], 0
        for path in paths:
            parts.append(audio.load_audio(path, sr=sr))
            have += len(parts[-1])
            if have >= need:
                break
        joined_S = np.concatenate(parts)
        if len(joined_S) < need:  # a short --wav: loop it
            joined_S = np.tile(joined_S, -(-need // len(joined_S)))
        return joined_S[:need], f"{len(parts)} recording(s) from {os.path.dirname(paths[0])}"
    import musicnet_fixtures as fx

    notes = fx.random_notes(0, args.seconds, count=int(args.seconds * 3))
    return fx.render(notes, args.seconds, sr), "synthetic harmonic tones"


def synthetic_signals(cqt: features.CqtConfig, seconds: float = 4.0) -> dict:
    t_S = np.arange(int(seconds * cqt.sr)) / cqt.sr
    signals = {}
    for b in (0, 47.5, 100, 200.5, 300, 383):  # at and between bin centres, all octaves
        hz = cqt.fmin_hz * 2 ** (b / cqt.bins_per_octave)
        signals[f"sine bin {b:g}"] = 0.5 * np.sin(2 * np.pi * hz * t_S)
    top = cqt.fmax_hz / cqt.fmin_hz  # exponential chirp over the whole range
    phase_S = 2 * np.pi * cqt.fmin_hz * seconds / np.log(top) * (top ** (t_S / seconds) - 1)
    signals["chirp"] = 0.3 * np.sin(phase_S)
    signals["clicks"] = (np.arange(len(t_S)) % 5000 == 0).astype(float)
    signals["white noise"] = 0.1 * np.random.default_rng(0).standard_normal(len(t_S))
    return {name: x.astype(np.float32) for name, x in signals.items()}


def report_agreement(name: str, reference_TxF, mag_TxF) -> None:
    errors = {
        n: jax_cqt.agreement(reference_TxF, mag_TxF, features.CqtConfig(normalisation=n))
        for n in features.NORMALISATIONS
    }
    print(
        f"  {name:16s} {errors['db']['peak']:9.1e}  "
        + "  ".join(f"{e['feature']:10.1e} {e['feature_p999']:8.1e}" for e in errors.values())
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="audio length timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each")
    parser.add_argument("--wav", default="", help="audio file to time (default: the corpus)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", "n_fft=.* is too large")  # librosa, on short clips
    import jax

    cqt = features.CqtConfig()
    audio_S, source = load(args, cqt.sr)
    print(
        f"{args.seconds:g} s at {cqt.sr} Hz ({source}); jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind}"
    )

    begin = time.perf_counter()
    features.cqt_magnitude(audio_S[: cqt.sr], cqt)
    librosa_warm = time.perf_counter() - begin
    begin = time.perf_counter()
    transform = jax_cqt.JaxCqt(cqt)
    kernels_s = time.perf_counter() - begin
    begin = time.perf_counter()
    transform.magnitude(audio_S)
    compile_s = time.perf_counter() - begin
    print(
        f"warm-up: librosa {librosa_warm:.2f} s (1 s of audio); JAX kernels {kernels_s:.2f} s,"
        f" first call (compile + run, bucket {transform.bucket_samples(len(audio_S))} "
        f"samples) {compile_s:.2f} s"
    )

    times = {"librosa": [], "jax": []}
    for _ in range(args.repeats):
        for name, fn in (
            ("librosa", lambda: features.cqt_magnitude(audio_S, cqt)),
            ("jax", lambda: transform.magnitude(audio_S)),
        ):
            begin = time.perf_counter()
            result_TxF = fn()
            times[name].append(time.perf_counter() - begin)
            if name == "librosa":
                reference_TxF = result_TxF
    for name, seconds in times.items():
        print(
            f"{name:8s} {np.median(seconds):.3f} s ({args.seconds / np.median(seconds):.0f}x "
            f"real time; best {min(seconds):.3f} s, {args.seconds / min(seconds):.0f}x)"
        )
    print(
        f"JAX / librosa time: {np.median(times['jax']) / np.median(times['librosa']):.2f} "
        f"(best {min(times['jax']) / min(times['librosa']):.2f})"
    )

    print(
        "\nagreement (jax_cqt.agreement): peak = max |JAX - librosa| / librosa at spectral"
        " peaks;\nfeature = |difference| of normalised features (20 dB a unit), max and 99.9th"
        " percentile,\nover bins within 60 dB of their frame's peak and 120 dB of the audio's"
    )
    print(
        f"  {'signal':16s} {'peak':>9s}  {'db max':>10s} {'p99.9':>8s}  "
        f"{'db_rel max':>10s} {'p99.9':>8s}"
    )
    report_agreement("timed audio", reference_TxF, result_TxF)
    for name, signal_S in synthetic_signals(cqt).items():
        report_agreement(name, features.cqt_magnitude(signal_S, cqt), transform.magnitude(signal_S))


if __name__ == "__main__":
    main()
