"""Where a trial's time goes: seconds per phase, accumulated over the trial.

The aligners time their own phases (sampling, reward, the training loss's forward, backward, optimiser
step); the trial loop times evaluation and logging (reporting and checkpointing). Together they account
for the trial's wall time but for bookkeeping (prompt choice, per-prompt statistics, replay buffer): the
report draws them as a stacked bar per method, and what they leave of the wall time as "other".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

#: the phases, in the order of a step
PHASES = ("sample", "reward", "loss", "backward", "optimizer", "evaluate", "log")


def metric_name(phase: str) -> str:
    return f"time_{phase}_s"


class PhaseClock:
    """Seconds per phase so far; `phase(name)` times a block (phases do not nest)."""

    def __init__(self, seconds: dict[str, float] | None = None):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        if seconds:
            self.seconds.update({k: v for k, v in seconds.items() if k in self.seconds})

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; phases: {', '.join(PHASES)}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        return {metric_name(name): value for name, value in self.seconds.items()}
