"""Runs an ablation experiment: one `jaxnotes.main` run per point of its sweep.

    python -m experiments.run E001_positional_encoding [--root runs/experiments] [--dry-run]
    python -m experiments.run E001_positional_encoding --variant quick --actions train-val,test

Each experiment folder holds config.py with `get_config(arg)` (derived from a
file in configs/) and `sweep() -> list[dict[str, value]]` of dotted config
overrides. Every point gets the workdir `<root>/<experiment>/<k=v,...>`; after
the runs, a Markdown table of each point's test report (results.json) is
printed and written to `<root>/<experiment>/results.md`.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HEADLINE = ("frame/ap", "frame/f1", "note/f1", "note_offset/f1")  # keys of results.json "pooled"


def point_name(overrides: dict) -> str:
    return ",".join(f"{k.split('.')[-1]}={_flag_value(v)}" for k, v in overrides.items()) or "base"


def _flag_value(value) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
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


def results_table(runs: list[tuple[str, list[str]]]) -> str:
    rows = ["| point | " + " | ".join(HEADLINE) + " |", "|---" * (len(HEADLINE) + 1) + "|"]
    for workdir, _ in runs:
        path = os.path.join(workdir, "report", "results.json")
        if not os.path.exists(path):
            rows.append(
                f"| {os.path.basename(workdir)} | " + " | ".join("not run" for _ in HEADLINE) + " |"
            )
            continue
        with open(path) as f:
            pooled = json.load(f).get("pooled", {})
        cells = [
            f"{pooled[k]:.3f}" if isinstance(pooled.get(k), (int, float)) else "-" for k in HEADLINE
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
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(HERE, args.experiment, "config.py")):
        parser.error(f"no experiment {args.experiment!r} in {HERE}")
    runs = commands(args.experiment, os.path.abspath(args.root), args.variant, args.actions)
    for _, cmd in runs:
        print(" ".join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    table = results_table(runs)
    print(table)
    if not args.dry_run:
        with open(
            os.path.join(os.path.abspath(args.root), args.experiment, "results.md"), "w"
        ) as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
