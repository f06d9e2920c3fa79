"""The study's CPU accounting: a finished child's CPU time counts as the study's own."""

import subprocess
import sys

from vaderbench.runner.usage import CoreUsage, TreeCpu, startup_summary

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"


def test_an_ended_child_that_nobody_waited_for_counts_towards_the_study_s_cpu_time():
    usage, tree = CoreUsage.start(), TreeCpu(interval=0.05)
    # the child ignores SIGCHLD, so its ended child is reaped by the kernel and its CPU time is added to no
    # one's: like a worker under Ray's raylet
    parent = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
        f"subprocess.Popen([sys.executable, '-c', {BURN!r}]); time.sleep(2.5)"
    )
    subprocess.run([sys.executable, "-c", parent], check=True)
    assert tree.seconds() >= 0.4  # of 0.5 s burnt: at most one sampling interval missed
    tree.close()
    machine, study = usage.fractions()
    assert 0 < study <= machine + 0.05  # the study's processes are part of the machine's busy time


def test_the_start_up_summary_is_the_mean_max_and_share_of_run_time():
    line = startup_summary([("a", 10.0, 1.0), ("b", 30.0, 3.0)])
    assert line == "2.0 s a trial on average (max 3.0 s), 10.0% of the trials' run time"
