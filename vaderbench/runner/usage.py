"""How a study used the machine: the cores' busy fraction (from the OS) and the trials' share of start-up."""

from __future__ import annotations

import threading
from dataclasses import dataclass


class TreeCpu:
    """CPU seconds of this process and every process under it, the ended ones included.

    Ray's raylet does not collect the CPU times of the workers it reaps (the kernel adds an ended child's
    times to its parent's only when the parent waits for it), so the tree is sampled every `interval` seconds
    from a thread and each process counts with the last time it was seen with: at most `interval` seconds of
    each ended process's work are missed."""

    def __init__(self, interval: float = 2.0):
        import psutil

        self.me, self.interval = psutil.Process(), interval
        self.seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds
        self.start_total = self.sample()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="vaderbench-cpu-sampler", daemon=True)
        self.thread.start()

    def sample(self) -> float:
        import psutil

        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                with process.oneshot():
                    t = process.cpu_times()
                    key = (process.pid, process.create_time())
            except psutil.Error:  # ended between listing and reading
                continue
            self.seen[key] = t.user + t.system
        return sum(self.seen.values())

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def seconds(self) -> float:
        """CPU seconds of the tree since this object was made."""
        return self.sample() - self.start_total

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class CoreUsage:
    """Busy fraction of all cores between `start()` and `fractions()`, from the OS's CPU times: of the
    whole machine, and of this process's tree (the study's own processes on a Ray it started itself)."""

    cores: int
    _machine: tuple[float, float]
    _tree: TreeCpu

    @staticmethod
    def _machine_times() -> tuple[float, float]:
        import psutil

        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        return sum(times) - idle, sum(times)

    @classmethod
    def start(cls) -> CoreUsage:
        import psutil

        return cls(psutil.cpu_count() or 1, cls._machine_times(), TreeCpu())

    def fractions(self) -> tuple[float, float]:
        """(machine, study): busy share of the cores since `start()`; the sampling stops."""
        busy, total = self._machine_times()
        study = self._tree.seconds()
        self._tree.close()
        elapsed = total - self._machine[1]
        if elapsed <= 0:
            return 0.0, 0.0
        return (busy - self._machine[0]) / elapsed, study / elapsed


def startup_summary(durations: list[tuple[str, float, float]]) -> str | None:
    """One line on the trials' start-up: mean and max per trial and its share of their run time."""
    if not durations:
        return None
    startups = [startup for _, _, startup in durations]
    share = sum(startups) / sum(duration for _, duration, _ in durations)
    return (
        f"{sum(startups) / len(startups):.1f} s a trial on average (max {max(startups):.1f} s), "
        f"{100 * share:.1f}% of the trials' run time"
    )
