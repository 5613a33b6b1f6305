"""Transcription speed and latency: offline real-time factor, streaming blocks, latency, memory.

  python benchmarks/transcribe_speed.py                  # everything (~10 min on 2 CPU cores)
  python benchmarks/transcribe_speed.py --only offline,blocks
  python benchmarks/transcribe_speed.py --only files --files ../shared/realdev/maps_enstdk_am/test_data/*.flac
  python benchmarks/transcribe_speed.py --only offline --transformer num_layers=6,embed_dim=256

Sections:
  offline  real-time factor (seconds of audio per second of compute) of the whole-file path
           for both models at their default size; weights are random (speed does not
           depend on them), CQT and model timed separately, compiles excluded.
  files    `jaxnotes-transcribe` on whole files (--files, or synthetic songs of 30-200 s), a
           fresh process per run: with an empty compile cache, then with it filled; the
           whole command's wall time (start-up, model loading, compiles) and the per-file
           times it prints (decoding, resampling, CQT, model, notes, MIDI and CSV).
  blocks   streaming: compute per block (resample + CQT + model + decoder) against the
           block's duration, for both default models.
  latency  trains narrow models with the default transformer's receptive field (4 layers,
           1 s attention, default CQT) and with lower-latency settings (LATENCY_SETTINGS) on
           synthetic tones and chords, then streams unseen synthetic audio at real time:
           delay from each detected note's true onset to its event, and each setting's
           note F1 (the accuracy cost of lower latency).
  hour     peak RSS of a 1-hour stream (generated on the fly, not paced) through the default
           transformer, in a fresh process, with RSS sampled along the way.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from jaxnotes.data import Meta, features  # noqa: E402
from jaxnotes.inference import decode, runner, streaming  # noqa: E402

SR = 22050


def default_model(name: str, **overrides):
    """(model, meta, cqt) of configs/<name>.py at full size, random weights, eval mode."""
    from flax import nnx

    from configs import cnn_mlp, transformer
    from jaxnotes import models

    config = {"transformer": transformer, "cnn_mlp": cnn_mlp}[name].get_config()
    config.model.update(overrides)
    cqt = features.CqtConfig.from_config(config.cqt)
    meta = Meta(cqt.n_bins, 88, 21, cqt.frames_per_second, bins_per_semitone=cqt.bins_per_semitone)
    model = models.from_config(config, meta, nnx.Rngs(0))
    model.eval()
    return model, meta, cqt


def synthetic_audio(seconds: float, seed: int = 0, sr: int = SR):
    """(audio_S, notes): tones and chords (3 partials) over MIDI 40..84, known onsets."""
    import musicnet_fixtures as fx

    notes = synthetic_notes(seconds, seed)
    return fx.render(notes, seconds, sr), notes


def synthetic_notes(seconds: float, seed: int):
    """1-3 simultaneous notes of 0.2-0.8 s at a time, rests of 0.05-0.4 s between."""
    import musicnet_fixtures as fx

    from jaxnotes.data import labels

    rng = np.random.default_rng(seed)
    notes, t = [], 0.3
    while t < seconds - 1.0:
        length = round(float(rng.uniform(0.2, 0.8)), 2)
        for pitch in rng.choice(np.arange(40, 85), size=int(rng.integers(1, 4)), replace=False):
            notes.append(labels.Note(round(t, 2), round(t + length, 2), int(pitch), fx.VIOLIN))
        t = round(t + length + float(rng.uniform(0.05, 0.4)), 2)
    return sorted(notes)


def offline(args):
    print("\n## Offline real-time factor (whole file; random weights; compiles excluded)")
    audio_S, _ = synthetic_audio(args.offline_s)
    variants = [("transformer", {}), ("cnn_mlp", {})]
    variants += [("transformer", _overrides(text)) for text in args.transformer]
    for name, overrides in variants:
        model, _, cqt = default_model(name, **overrides)
        past, future = runner.receptive_field(model)
        if overrides:
            label = ",".join(f"{k}={v}" for k, v in overrides.items())
            print(f"transformer with {label} ({_param_count(model):,} parameters):")
        for backend in args.cqt.split(","):
            # First calls: librosa's compiles numba, JAX's compiles this length's bucket.
            cqt_TxF = features.compute_cqt(audio_S, cqt, backend)
            begin = time.perf_counter()
            cqt_TxF = features.compute_cqt(audio_S, cqt, backend)
            cqt_s = time.perf_counter() - begin
            runner.predict_offline(model, cqt_TxF[: past + 512 + future + 1])  # compiles windows
            begin = time.perf_counter()
            runner.predict_offline(model, cqt_TxF)
            model_s = time.perf_counter() - begin
            total = args.offline_s / (cqt_s + model_s)
            print(
                f"{name:11s} {args.offline_s:.0f} s of audio: {backend:7s} CQT {cqt_s:.3f} s "
                f"({args.offline_s / cqt_s:.0f}x), model {model_s:.3f} s "
                f"({args.offline_s / model_s:.0f}x), together {total:.0f}x real time"
            )


def _overrides(text: str) -> dict:
    """'num_layers=6,embed_dim=256' -> {'num_layers': 6, 'embed_dim': 256}."""
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        for cast in (int, float, str):
            try:
                out[key.strip()] = cast(value)
                break
            except ValueError:
                continue
    return out


def _param_count(model) -> int:
    import jax
    from flax import nnx

    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def blocks(args):
    print("\n## Streaming: compute per block vs block duration (random weights)")
    audio_S, _ = synthetic_audio(args.blocks_s, seed=1)
    print("model        block    mean   p95    max   (ms; compute / block = share of real time)")
    for name in ("transformer", "cnn_mlp"):
        model, meta, cqt = default_model(name)
        for block_ms in (20, 50, 100, 200):
            block = int(SR * block_ms / 1000)
            stream = streaming.NoteStream(
                model, meta, cqt, decode.NoteDecoder.from_meta(meta), in_rate=SR
            )
            stream.warm_up()
            times = []
            for i in range(0, len(audio_S), block):
                begin = time.perf_counter()
                stream.push(audio_S[i : i + block])
                times.append(time.perf_counter() - begin)
            ms = 1000 * np.array(times[len(times) // 10 :])  # after the first windows
            print(
                f"{name:11s} {block_ms:4d} ms {ms.mean():6.1f} {np.percentile(ms, 95):6.1f} "
                f"{ms.max():6.1f}   {ms.mean() / block_ms:5.0%}"
            )


# Config changes of each latency setting (see docs/LATENCY.md).
LATENCY_SETTINGS = {
    "default": {},
    "lookahead": {"model.attention_lookahead_s": 0.05},
    "low_latency": {"model.attention_lookahead_s": 0.05, "cqt.filter_scale": 0.25},
}


def train_latency_models(folder: str, steps: int):
    """Trains the default-receptive-field and low-latency narrow models; returns workdirs."""
    import musicnet_fixtures as fx

    from jaxnotes.data import records
    from jaxnotes.train import loop

    root = os.path.join(folder, "musicnet")
    names = [str(3000 + i) for i in range(6)]
    for i, name in enumerate(names):
        fx.write_recording(root, "train", name, synthetic_notes(30.0, 100 + i), 30.0, sr=SR)
    fx.write_metadata(root, {n: {"composer": "Synth", "ensemble": "Violin"} for n in names})
    workdirs = {}
    for label, changes in LATENCY_SETTINGS.items():
        from configs import transformer

        config = transformer.get_config()
        config.data.musicnet_dir, config.data.cache_dir = root, os.path.join(folder, "cache")
        config.data.validation_fraction, config.data.batch_size = 0.0, 16
        config.max_steps, config.num_epochs, config.checkpoint_every_steps = steps, 1000, 10**6
        config.optim.lr, config.optim.warmup_steps = 3e-3, 20
        # The default receptive field (4 layers x 1 s window), 20x narrower so it trains fast.
        config.model.update(embed_dim=32, num_heads=2, head_dim=16, mlp_dim=64, c=2, dropout=0.0)
        for key, value in changes.items():
            section, field = key.split(".")
            config[section][field] = value
        workdirs[label] = os.path.join(folder, label)
        begin = time.perf_counter()
        records.ensure_dataset(config, ("train",))
        loop.train_and_evaluate(config, workdirs[label], validate=False)
        print(f"trained {label} ({steps} steps) in {time.perf_counter() - begin:.0f} s")
    return workdirs


def note_f1(model, meta, cqt, seeds, onset_threshold):
    from jaxnotes.evaluate import note_metrics

    total = note_metrics.NoteCounts()
    for seed in seeds:
        audio_S, notes = synthetic_audio(20.0, seed=seed)
        frame_TxP, onset_TxP = runner.predict_offline(model, features.compute_cqt(audio_S, cqt))
        est = decode.frames_to_notes(frame_TxP, onset_TxP, meta, onset_threshold=onset_threshold)
        ref_intervals, ref_pitches = decode.notes_to_arrays(notes)
        total += note_metrics.note_counts(ref_intervals, ref_pitches, *decode.notes_to_arrays(est))
    return total.as_dict()["note/f1"]


def paced_latency(model, meta, cqt, onset_threshold, block_ms: float, seconds: float):
    """Streams unseen audio at real time; delays (s) from true onsets to their 'on' events."""
    audio_S, notes = synthetic_audio(seconds, seed=7)
    decoder = decode.NoteDecoder.from_meta(meta, onset_threshold=onset_threshold)
    stream = streaming.NoteStream(model, meta, cqt, decoder, in_rate=SR)
    stream.warm_up()
    block, emitted = int(SR * block_ms / 1000), []
    start = time.perf_counter()
    for i in range(0, len(audio_S), block):
        # The block is available once its last sample has sounded.
        time.sleep(max(0.0, start + min(i + block, len(audio_S)) / SR - time.perf_counter()))
        new = stream.push(audio_S[i : i + block])
        emitted += [(e, time.perf_counter() - start) for e in new]
    delays = []
    for note in notes:
        hits = [
            wall - note.start_s
            for e, wall in emitted
            if e.kind == "on" and e.pitch == note.pitch and abs(e.time_s - note.start_s) < 0.05
        ]
        if hits:
            delays.append(min(hits))
    return np.array(delays), len(notes), stream.latency_budget()


def latency(args):
    print("\n## End-to-end latency at real time, and the accuracy cost of lower latency")
    from jaxnotes.evaluate import scoring
    from jaxnotes.train import checkpoint

    with tempfile.TemporaryDirectory() as folder:
        workdirs = train_latency_models(folder, args.train_steps)
        for label, workdir in workdirs.items():
            model, meta, config, _ = checkpoint.load_model(workdir)
            cqt = features.CqtConfig.from_config(config.cqt)
            # Onset threshold tuned on a validation piece, as the test action does.
            f1s = {t: note_f1(model, meta, cqt, [50], t) for t in scoring.ONSET_THRESHOLD_GRID}
            threshold = max(f1s, key=f1s.get)
            f1 = note_f1(model, meta, cqt, [51, 52, 53], threshold)
            delays, num_notes, budget = paced_latency(
                model, meta, cqt, threshold, args.block_ms, args.latency_s
            )
            parts = ", ".join(f"{k} {v:.3f}" for k, v in budget.items())
            print(
                f"{label:11s} note F1 {f1:.3f} (onset threshold {threshold}); latency over "
                f"{len(delays)}/{num_notes} notes: median {np.median(delays):.3f} s, "
                f"max {delays.max():.3f} s; budget: {parts}, block {args.block_ms / 1000:.3f}"
            )


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def hour(args):
    if not args.in_child:  # a fresh process: the peak must not include other sections
        print("\n## Peak memory of a 1-hour stream (default transformer, not paced)", flush=True)
        argv = [sys.executable, __file__, "--only", "hour", "--in-child"]
        subprocess.run(argv + ["--hour-s", str(args.hour_s)], check=True)
        return
    model, meta, cqt = default_model("transformer")
    stream = streaming.NoteStream(
        model, meta, cqt, decode.NoteDecoder.from_meta(meta), in_rate=44100, step_frames=64
    )
    stream.warm_up()
    rng, block = np.random.default_rng(0), 44100  # 1 s blocks at 44.1 kHz
    t_S = np.arange(block) / 44100
    samples, begin, marks = [], time.perf_counter(), {}
    print(f"RSS after warm-up: {rss_mb():.0f} MB", flush=True)
    for second in range(int(args.hour_s)):
        f0 = 440.0 * 2 ** ((int(rng.integers(40, 85)) - 69) / 12)
        audio_S = 0.2 * np.sin(2 * np.pi * f0 * t_S) + 0.01 * rng.standard_normal(block)
        stream.push(audio_S.astype(np.float32))
        if (second + 1) % 600 == 0:
            marks[(second + 1) // 60] = rss_mb()
            samples.append((stream.features.buffer_samples(), stream.transcriber.buffer_frames()))
    stream.flush()
    took = time.perf_counter() - begin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trace = ", ".join(f"{m} min {mb:.0f} MB" for m, mb in marks.items())
    print(
        f"{args.hour_s / 60:.0f} min streamed in {took:.0f} s ({args.hour_s / took:.0f}x real time)"
    )
    print(f"RSS along the stream: {trace}; peak RSS {peak:.0f} MB")
    print(f"buffers (CQT samples, model frames) at each mark: {samples}")


def files(args):
    """`jaxnotes-transcribe` on whole files, as a user runs it, with a fresh compile cache
    (first run) and with it filled (second run), for each CQT backend."""
    print("\n## jaxnotes-transcribe end to end (the shipped model; a fresh process per run)")
    with tempfile.TemporaryDirectory() as folder:
        songs = args.files
        if not songs:  # synthetic songs of 30-200 s: the CQT's larger buffers, and chunks
            import soundfile as sf

            songs = []
            for i, seconds in enumerate((30, 50, 80, 110, 150, 200)):
                songs.append(os.path.join(folder, f"song{i}.wav"))
                sf.write(songs[-1], synthetic_audio(seconds, seed=20 + i)[0], SR)
        for backend in args.cqt.split(","):
            env = dict(os.environ, JAXNOTES_COMPILE_CACHE=os.path.join(folder, f"xla-{backend}"))
            for run in ("fresh cache", "filled cache"):
                out = os.path.join(folder, f"out-{backend}")
                argv = ["jaxnotes-transcribe", *songs, "-o", out + os.sep, "--cqt", backend]
                begin = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - begin
                if done.returncode:
                    sys.exit(f"{' '.join(argv)} failed:\n{done.stderr}")
                audio_s, file_s = _file_seconds(done.stderr)
                print(
                    f"{backend:7s} {run:12s} {len(songs)} files, {audio_s:.0f} s of audio: "
                    f"command {wall:.1f} s ({audio_s / wall:.0f}x real time), its per-file "
                    f"times {file_s:.1f} s ({audio_s / file_s:.0f}x)"
                )


def _file_seconds(stderr: str) -> tuple[float, float]:
    """(audio seconds, transcription seconds) summed over jaxnotes-transcribe's file lines."""
    import re

    found = re.findall(r"notes in ([0-9.]+) s of audio \(([0-9.]+) s,", stderr)
    return sum(float(a) for a, _ in found), sum(float(t) for _, t in found)


SECTIONS = {
    "offline": offline,
    "files": files,
    "blocks": blocks,
    "latency": latency,
    "hour": hour,
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--offline-s", type=float, default=120.0)
    p.add_argument("--cqt", default="librosa,jax", help="offline, files: CQT backends to time")
    p.add_argument(
        "--files", nargs="*", default=[], help="files: audio to transcribe (default: synthetic)"
    )
    p.add_argument(
        "--transformer",
        action="append",
        default=[],
        metavar="FIELD=VALUE,...",
        help="offline: also time the transformer with these config.model overrides "
        "(e.g. num_layers=6,embed_dim=256,mlp_dim=1024; repeatable)",
    )
    p.add_argument("--blocks-s", type=float, default=20.0)
    p.add_argument("--latency-s", type=float, default=30.0)
    p.add_argument("--block-ms", type=float, default=50.0, help="block size of the latency run")
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--hour-s", type=float, default=3600.0)
    p.add_argument("--in-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import jax

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU cores")
    for name in args.only.split(","):
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
