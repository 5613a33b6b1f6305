"""Runs an ablation experiment: one `jaxnotes.main` run per point of its sweep.

    python -m experiments.run E001_positional_encoding [--root runs/experiments] [--dry-run]
    python -m experiments.run E001_positional_encoding --variant quick --actions train-val,test
    python -m experiments.run E006_real_recordings --score /data/my_recordings

Each experiment folder holds config.py with `get_config(arg)` (derived from a
file in configs/) and `sweep() -> list[dict[str, value]]` of dotted config
overrides. Every point gets the workdir `<root>/<experiment>/<k=v,...>`; after
the runs, a Markdown table of each point's test report (results.json) is
printed and written to `<root>/<experiment>/results.md`. `--score DIR` (repeatable) also
scores every point on a folder of test recordings alone (`process-test,test` with the
folder as `config.data.musicnet_dir`; thresholds stay the model's own) and adds its note
and frame F1 to the table.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys

from jaxnotes import files
from jaxnotes.evaluate import metrics

HERE = os.path.dirname(os.path.abspath(__file__))
HEADLINE = metrics.SUMMARY  # keys of results.json "pooled"


def point_name(overrides: dict) -> str:
    return (
        ",".join(f"{k.split('.')[-1]}={_tuple_text(v, str)}" for k, v in overrides.items())
        or "base"
    )


def _flag_value(value) -> str:
    """The value as absl parses it back: strings inside tuples quoted."""
    return _tuple_text(value, lambda v: repr(v) if isinstance(v, str) else str(v))


def _tuple_text(value, element) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(element(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def commands(experiment: str, root: str, variant: str, actions: str) -> list[tuple[str, list[str]]]:
    """(workdir, argv) of every point of the experiment's sweep."""
    module = importlib.import_module(f"experiments.{experiment}.config")
    config_path = os.path.join(HERE, experiment, "config.py")
    runs = []
    for overrides in module.sweep():
        workdir = os.path.join(root, experiment, point_name(overrides))
        argv = [
            sys.executable,
            "-m",
            "jaxnotes.main",
            f"--config={config_path}" + (f":{variant}" if variant else ""),
            f"--workdir={workdir}",
            f"--action={actions}",
        ] + [f"--config.{k}={_flag_value(v)}" for k, v in overrides.items()]
        runs.append((workdir, argv))
    return runs


SCORED = ("note/f1", "frame/f1")  # columns of each --score folder


def score_commands(runs, folder: str) -> list[tuple[str, list[str]]]:
    """(workdir, argv) scoring every point's model on a test-only folder."""
    out = []
    for workdir, argv in runs:
        argv = [a for a in argv if not a.startswith("--action=")]
        argv += ["--action=process-test,test", f"--config.data.musicnet_dir={folder}"]
        out.append((workdir, argv))
    return out


def results_table(runs: list[tuple[str, list[str]]], score_dirs=()) -> str:
    # (column prefix, test-only folder or None for the run's own test split, keys)
    reports = [("", None, HEADLINE)]
    reports += [(f"{os.path.basename(d.rstrip(os.sep))} ", d, SCORED) for d in score_dirs]
    header = [f"{prefix}{k}" for prefix, _, keys in reports for k in keys]
    rows = ["| point | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for workdir, _ in runs:
        cells = []
        for _, source, keys in reports:
            path = os.path.join(files.report_dir(workdir, source), files.RESULTS_JSON)
            if not os.path.exists(path):
                cells += ["not run" for _ in keys]
                continue
            with open(path) as f:
                pooled = json.load(f).get("pooled", {})
            cells += [
                f"{pooled[k]:.3f}" if isinstance(pooled.get(k), (int, float)) else "-" for k in keys
            ]
        rows.append(f"| {os.path.basename(workdir)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiment", help="folder name under experiments/, e.g. E001_positional_encoding"
    )
    parser.add_argument("--root", default="runs/experiments")
    parser.add_argument("--variant", default="quick", help="config variant ('' for full size)")
    parser.add_argument("--actions", default="process-train,process-test,train-val,test")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument(
        "--score", action="append", default=[], help="also score each point on this test folder"
    )
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(HERE, args.experiment, "config.py")):
        parser.error(f"no experiment {args.experiment!r} in {HERE}")
    runs = commands(args.experiment, os.path.abspath(args.root), args.variant, args.actions)
    scoring = [c for folder in args.score for c in score_commands(runs, os.path.abspath(folder))]
    for _, cmd in runs + scoring:
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    table = results_table(runs, [os.path.abspath(d) for d in args.score])
    print(table)
    if not args.dry_run:
        with open(
            os.path.join(os.path.abspath(args.root), args.experiment, "results.md"), "w"
        ) as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
