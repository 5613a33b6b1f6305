"""Stopping cleanly on SIGTERM/SIGINT: save at the next step boundary, then exit.

Must not import model, data or loop code.
"""

import signal
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


class PreemptionGuard:
    """Turns SIGTERM/SIGINT into a flag the loop reads at the next step boundary.

    A second SIGINT interrupts at once (KeyboardInterrupt), for a user who won't wait.
    Multi-process runs install no handlers: a signal seen by one process alone would make
    it save (a collective operation) without the others. They rely on JAX's preemption
    sync point instead (see `reached`), which needs `jax.distributed` initialised.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        signums = (signal.SIGINT, signal.SIGTERM) if jax.process_count() == 1 else ()
        for signum in signums:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: no handlers, no graceful stop
                break
        return self

    def _handle(self, signum, frame):
        if self.signal_name and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        logging.warning("%s received: saving at the next step boundary", self.signal_name)

    def reached(self, mngr: ocp.CheckpointManager, step: int) -> bool:
        """Whether to save and stop after `step` (the same answer on every process)."""
        if jax.process_count() == 1:
            return self.signal_name is not None
        # Every process must stop at the same step; JAX's sync point agrees on one.
        return mngr.reached_preemption(step)

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
