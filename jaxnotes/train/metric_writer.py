"""Training metrics on disk: TensorBoard events and metrics.jsonl in the workdir.

Only process 0 writes. On resume, lines logged after the restored step are dropped, so
the files hold exactly one line per logged step of the run that reached the end.
Must not import model, data or loop code.
"""

import json
import os
from collections.abc import Mapping

import jax

from jaxnotes import files


def _logged_step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class MetricWriter:
    """Scalars to TensorBoard event files and to metrics.jsonl in the workdir (process 0)."""

    def __init__(self, workdir: str, *, resume_step: int):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        import tensorboardX  # imported late: only process 0 writes

        path = os.path.join(workdir, files.METRICS_FILE)
        if os.path.exists(path):
            # Steps after the restored checkpoint are recomputed: drop their old lines, and
            # a line cut short by a kill.
            with open(path) as f:
                lines = [ln for ln in f if _logged_step(ln) <= resume_step]
            files.write_text(path, "".join(lines))
        self._jsonl = open(path, "a")  # noqa: SIM115 (closed in close())
        self._tb = tensorboardX.SummaryWriter(logdir=workdir, purge_step=resume_step + 1)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in scalars.items():
            self._tb.add_scalar(name, value, step)
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()
