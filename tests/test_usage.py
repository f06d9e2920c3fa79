"""The study's CPU accounting: a finished child's CPU time counts as the study's own."""

import subprocess
import sys

from vaderbench.runner.usage import CoreUsage, startup_summary, tree_cpu_seconds

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"


def test_a_finished_child_process_counts_towards_the_study_s_cpu_time():
    usage = CoreUsage.start()
    before = tree_cpu_seconds()
    subprocess.run([sys.executable, "-c", BURN], check=True)
    assert tree_cpu_seconds() - before >= 0.5
    machine, study = usage.fractions()
    assert 0 < study <= machine + 0.05  # the study's processes are part of the machine's busy time


def test_the_start_up_summary_is_the_mean_max_and_share_of_run_time():
    line = startup_summary([("a", 10.0, 1.0), ("b", 30.0, 3.0)])
    assert line == "2.0 s a trial on average (max 3.0 s), 10.0% of the trials' run time"
