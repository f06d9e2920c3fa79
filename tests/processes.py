"""The processes a test starts, found and stopped by ancestry: never by name, so that the Ray instances and
servers of other users of the machine are left alone."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
from contextlib import contextmanager
from pathlib import Path

#: prctl option that makes this process adopt its orphaned descendants (daemons `ray start` leaves behind)
PR_SET_CHILD_SUBREAPER = 36


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parents() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # the command name may hold spaces and parentheses: the fields after its closing ')' are fixed
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                found[int(entry.name)] = int(fields[1])
    return found


def descendants(root: int) -> set[int]:
    table, found, frontier = parents(), set(), {root}
    while frontier:
        frontier = {pid for pid, parent in table.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop(pids: set[int], grace_s: float = 10.0) -> set[int]:
    """SIGTERM, then SIGKILL what is still there after `grace_s`; reaps those that are this process's
    children. Returns the pids still alive at the end."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            pids = pids & set(parents())
            if not pids:
                return set()
            time.sleep(0.2)
    return pids


@contextmanager
def adopting_orphans(grace_s: float = 10.0):
    """Within: every process started from here stays a descendant of this one, daemons included; on the way
    out all of them are stopped (SIGKILL for those still there `grace_s` after SIGTERM)."""
    libc = ctypes.CDLL(None, use_errno=True)
    me, before = os.getpid(), descendants(os.getpid())
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        left = stop(descendants(me) - before, grace_s)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        assert not left, {pid: command_line(pid) for pid in left}
