"""How a study used the machine: the cores' busy fraction (from the OS) and the trials' share of start-up."""

from __future__ import annotations

from dataclasses import dataclass


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and every process under it, the finished ones included: a finished
    process's time is added to its parent's `children_*` times when the parent reaps it."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            t = process.cpu_times()
        except psutil.Error:  # ended between listing and reading
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass
class CoreUsage:
    """Busy fraction of all cores between `start()` and `fractions()`, from the OS's CPU times: of the
    whole machine, and of this process's tree (the study's own processes on a Ray it started itself)."""

    cores: int
    _machine: tuple[float, float] = (0.0, 0.0)
    _tree: float = 0.0

    @staticmethod
    def _machine_times() -> tuple[float, float]:
        import psutil

        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        return sum(times) - idle, sum(times)

    @classmethod
    def start(cls) -> "CoreUsage":
        import psutil

        return cls(psutil.cpu_count() or 1, cls._machine_times(), tree_cpu_seconds())

    def fractions(self) -> tuple[float, float]:
        """(machine, study): busy share of the cores since `start()`."""
        busy, total = self._machine_times()
        elapsed = total - self._machine[1]
        if elapsed <= 0:
            return 0.0, 0.0
        return (busy - self._machine[0]) / elapsed, (tree_cpu_seconds() - self._tree) / elapsed


def startup_summary(durations: list[tuple[str, float, float]]) -> str | None:
    """One line on the trials' start-up: mean and max per trial and its share of their run time."""
    if not durations:
        return None
    startups = [startup for _, _, startup in durations]
    share = sum(startups) / sum(duration for _, duration, _ in durations)
    return (f"{sum(startups) / len(startups):.1f} s a trial on average (max {max(startups):.1f} s), "
            f"{100 * share:.1f}% of the trials' run time")
