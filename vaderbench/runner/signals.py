"""SIGTERM stops a study as Ctrl-C does.

A job scheduler, a container stop, `timeout` or a preemption ends a process with SIGTERM. Left to Ray, the
driver dies on it at once (Ray's handler dumps the stack and exits): no resume command, and the trials'
processes compute on until Ray notices the driver is gone. `vaderbench run` turns SIGTERM into the SIGINT
that Tune already handles (the trials stop, their runs are KILLED, the resume command is printed) and exits
with 128 + the signal's number, as a shell reports a process the signal ended: 130 for Ctrl-C, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

#: the signal that interrupted this process (SIGINT unless SIGTERM arrived)
_received = signal.SIGINT


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within: SIGTERM interrupts as SIGINT does; the handler before is restored on the way out."""
    global _received
    _received = signal.SIGINT
    previous = signal.getsignal(signal.SIGTERM)
    reclaim_sigterm()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def reclaim_sigterm() -> None:
    """SIGTERM interrupts as SIGINT does again, after something (Ray's start) installed its own handler."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame) -> None:
    global _received
    _received = signal.Signals(signum)
    signal.raise_signal(signal.SIGINT)  # to whichever SIGINT handler is current: Tune's, or KeyboardInterrupt


def interrupted_exit_code() -> int:
    """128 + the number of the signal that interrupted the process."""
    return 128 + _received
