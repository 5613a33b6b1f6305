"""Weight averages of models that share a start (model soups, WiSE-FT), as an .npz to adopt.

E018's later stages fine-tune one GPU run on takes it never heard; averaging the parameters
of such branches (Wortsman et al. 2022, "Model soups"), or of a branch and its start
("WiSE-FT"), often helps on data unlike the training data at no cost in speed. Tried
2026-11-27 (experiments/README.md, E018): it did not help here.

    python -m experiments.E018_gpu_takes.average --out soup.npz \\
        runs/experiments/E018_gpu_takes/takes3_pianos3 runs/experiments/E018_gpu_takes/takes3_pianos4
    python -m jaxnotes.train.adopt --weights soup.npz --workdir runs/experiments/E018_gpu_takes/soup \\
        --config=experiments/E018_gpu_takes/config.py:pianos3 --step 3608

Each source is a workdir (its dev model when it has one, as `config.init_from` reads it) or
'pretrained'; `--weights` gives their shares (default: equal). Sources must hold the same
parameters, of the same shapes.
"""

import argparse
import sys

import numpy as np

from jaxnotes import files, pretrained
from jaxnotes.train import warm_start


def average(sources: list[str], shares: list[float] | None = None) -> dict[str, np.ndarray]:
    """{parameter name: the shares-weighted mean over `sources`} (float32; shares sum to 1).

    Raises:
      ValueError: no source, shares not positive or not one per source, or sources whose
        parameters differ in names or shapes (named).
    """
    shares = [1.0] * len(sources) if shares is None else list(shares)
    if not sources or len(shares) != len(sources) or min(shares) <= 0:
        raise ValueError(f"{len(sources)} sources with shares {shares}: one positive each")
    fractions = [share / sum(shares) for share in shares]
    total, first = None, None
    for source, fraction in zip(sources, fractions, strict=True):
        model, _, what = warm_start.source_model(source)
        arrays = pretrained.param_arrays(model)
        if total is None:
            total, first = {k: np.zeros(v.shape, np.float64) for k, v in arrays.items()}, what
        shapes = {k: v.shape for k, v in arrays.items()}
        if shapes != {k: v.shape for k, v in total.items()}:
            raise ValueError(f"{what} has other parameters or shapes than {first}")
        for name, value in arrays.items():
            total[name] += fraction * value
    return {name: value.astype(np.float32) for name, value in total.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", help="workdirs (or 'pretrained') to average")
    p.add_argument("--weights", help="comma-separated shares, one per source (default equal)")
    p.add_argument("--out", required=True, help="the .npz to write (for train.adopt)")
    args = p.parse_args(argv)
    if not args.out.endswith(".npz"):
        p.error(f"--out {args.out}: name an .npz file")
    try:
        shares = [float(x) for x in args.weights.split(",")] if args.weights else None
        arrays = average(args.sources, shares)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    with files.atomic_path(args.out) as tmp:
        np.savez(tmp, **arrays)
    print(f"{args.out}: {len(arrays)} parameters averaged over {len(args.sources)} models")


if __name__ == "__main__":
    main()
