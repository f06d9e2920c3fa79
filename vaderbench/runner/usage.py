"""How a study used the machine: the cores' busy fraction (from the OS) and the trials' share of start-up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CoreUsage:
    """Busy fraction of all cores between `start()` and `busy_fraction()`, from the OS's CPU times."""

    cores: int
    _start: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def _times() -> tuple[float, float]:
        import psutil

        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        return sum(times) - idle, sum(times)

    @classmethod
    def start(cls) -> CoreUsage:
        import psutil

        return cls(psutil.cpu_count() or 1, cls._times())

    def busy_fraction(self) -> float:
        busy, total = self._times()
        elapsed = total - self._start[1]
        return (busy - self._start[0]) / elapsed if elapsed > 0 else 0.0


def startup_summary(durations: list[tuple[str, float, float]]) -> str | None:
    """One line on the trials' start-up: mean and max per trial and its share of their run time."""
    if not durations:
        return None
    startups = [startup for _, _, startup in durations]
    share = sum(startups) / sum(duration for _, duration, _ in durations)
    return (f"{sum(startups) / len(startups):.1f} s a trial on average (max {max(startups):.1f} s), "
            f"{100 * share:.1f}% of the trials' run time")
