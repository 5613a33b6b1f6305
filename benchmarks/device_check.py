"""One check of jaxnotes on a lent accelerator, printing one table (docs: scripts/device_check.sh).

    python benchmarks/device_check.py --out DIR [--budget-s 450]

Runs, each in its own process with a time limit, and records every output in
DIR/device_check.log:
  1. offline transcription of 120 s: librosa CQT, JAX CQT, the model, together;
  2. the tiny end-to-end job (`process-train,process-test,train-val,test`) on a synthetic
     MusicNet-layout folder (no fluidsynth needed);
  3. train-step throughput on random batches: both models, batch sizes 16 to 1024, float32 and
     bfloat16, with XLA's FLOPs and the model FLOP utilisation where the chip's peak is known;
  4. the same step fed by the real grain pipeline (8 workers) at batch 256, bfloat16;
  5. the numeric tests on the accelerator (equivalence, resume, bf16, JAX CQT).
Then prints a Markdown table of the headline figures (also DIR/device_check.md). A step
that fails or runs out of time is reported as such and the others still run.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def _synthetic_folder(root: str, pieces: int, seconds: float) -> str:
    """A MusicNet-layout folder of synthetic tones (tests/musicnet_fixtures), no renderer."""
    code = (
        "import sys; sys.path[:0] = [{root!r}, {tests!r}]\n"
        "import musicnet_fixtures as fx\n"
        "fx.make_musicnet({out!r}, train_names=[str(3000 + i) for i in range({n})],"
        " test_names=('3900',), seconds={s}, notes_per_piece=int({s} * 3))\n"
    ).format(root=ROOT, tests=os.path.join(ROOT, "tests"), out=root, n=pieces, s=seconds)
    subprocess.run([PY, "-c", code], check=True, cwd=ROOT)
    return root


def _steps(scratch: str) -> list[tuple[str, list[str], float]]:
    """(name, argv, time limit in s) of each step."""
    tiny = _synthetic_folder(os.path.join(scratch, "tiny"), pieces=4, seconds=4.0)
    big = _synthetic_folder(os.path.join(scratch, "big"), pieces=12, seconds=30.0)
    main = [PY, "-m", "jaxnotes.main"]
    bench = os.path.join(ROOT, "benchmarks")
    return [
        (
            "offline transcription",
            [PY, f"{bench}/transcribe_speed.py", "--only=offline", "--cqt=librosa,jax"],
            90,
        ),
        (
            "tiny end to end",
            [
                *main,
                "--config=configs/transformer.py:tiny",
                f"--workdir={scratch}/run",
                f"--config.data.musicnet_dir={tiny}",
                f"--config.data.cache_dir={scratch}/cache",
                "--action=process-train,process-test,train-val,test",
            ],
            150,
        ),
        (
            "train step, random batches",
            [
                PY,
                f"{bench}/train_throughput.py",
                "--batch_sizes=16,256,1024",
                "--compare_dtypes",
                "--steps=20",
                "--nopipeline",
            ],
            150,
        ),
        (
            "train step, real pipeline",
            [
                PY,
                f"{bench}/train_throughput.py",
                "--models=transformer",
                "--batch_sizes=256",
                "--compute_dtype=bfloat16",
                "--steps=20",
                f"--musicnet_dir={big}",
                f"--cache_dir={scratch}/cache",
                "--num_workers=8",
            ],
            120,
        ),
        (
            "numeric tests on the device",
            [
                PY,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/models_test.py",
                "tests/streaming_test.py",
                "tests/segments_test.py",
                "tests/precision_test.py",
                "tests/jax_cqt_test.py",
                "tests/train_test.py",
            ],
            180,
        ),
    ]


# Lines of each step's output shown in the table (the rest is in the log).
HEADLINES = {
    "tiny end to end": [r"^\s+(frame/ap|note/f1)\s+[\d.]+"],
    "train step, random batches": [r"ms/step", r"bfloat16 / float32"],
    "train step, real pipeline": [r"real pipeline.*frames/s"],
    "offline transcription": [r"x real time"],
    "numeric tests on the device": [r"\d+ (passed|failed)"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for device_check.log and .md")
    parser.add_argument("--budget-s", type=float, default=450.0, help="stop starting steps after")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    begin = time.monotonic()
    rows, log = [], open(os.path.join(args.out, "device_check.log"), "w")  # noqa: SIM115
    with tempfile.TemporaryDirectory() as scratch:
        import jax

        device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}"
        rows.append(("device", device, ""))
        print(f"| {' | '.join(rows[-1])} |", flush=True)
        for name, command, limit in _steps(scratch):
            left = args.budget_s - (time.monotonic() - begin)
            if left < 20:
                rows.append((name, "skipped: out of time", ""))
                continue
            start = time.monotonic()
            try:
                done = subprocess.run(
                    command, cwd=ROOT, capture_output=True, text=True, timeout=min(limit, left)
                )
                output, status = done.stdout + done.stderr, f"exit {done.returncode}"
            except subprocess.TimeoutExpired as e:
                output = (e.stdout or b"").decode() + (e.stderr or b"").decode()
                status = f"timed out after {min(limit, left):.0f} s"
            took = time.monotonic() - start
            log.write(f"\n===== {name} ({status}, {took:.0f} s)\n$ {' '.join(command)}\n{output}")
            log.flush()
            shown = [
                line.strip()
                for line in output.splitlines()
                if any(re.search(p, line) for p in HEADLINES[name])
            ]
            rows.append((name, f"{status}, {took:.0f} s", "<br>".join(shown[-12:])))
            print(f"| {' | '.join(rows[-1])} |", flush=True)  # a cut-off run still shows it
    table = ["| step | status | figures |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(table)
    print(text)
    with open(os.path.join(args.out, "device_check.md"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
