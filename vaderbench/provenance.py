"""Where and from what a study ran: the code's commit and the machine's CPU, recorded on the parent run so
that every timing in a report names the machine it was measured on (machines of one kind differ: AVX-512,
bf16 and clock speed change a study's wall time by 2x)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

#: CPU flags that decide the speed of the toy model's kernels
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpuinfo_field(name: str) -> str | None:
    """The first `name : value` line of /proc/cpuinfo (Linux), else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    present = set((cpuinfo_field("flags") or "").split())
    return [flag for flag in SPEED_FLAGS if flag in present]


def commit() -> str:
    """The vaderbench checkout's commit (with `+changes` when its tracked files differ), else `unknown`."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def provenance() -> dict[str, str]:
    """Tags of a study's parent run."""
    return {
        "machine.cpu": cpu_model(),
        "machine.cpu_flags": " ".join(cpu_flags()) or "none of " + " ".join(SPEED_FLAGS),
        "machine.cores": str(os.cpu_count() or 1),
        "vaderbench.commit": commit(),
    }
