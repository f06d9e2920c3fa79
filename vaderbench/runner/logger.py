"""`TrialLogger`: a Ray Tune callback, in the sweep's driver, that writes every trial to MLflow.

A trial's first result opens (or, when resuming, reopens) its child run; each result is one step of
metrics (steps already logged by an interrupted attempt are not written twice); the last checkpoint a
trial reported carries its artifacts (sample GIFs, LoRA weights), logged when the trial completes, with
its start-up: how long its run lasted beyond the time its loop spent in steps, evaluations and logging.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from vaderbench.experiment.grid import Trial
from vaderbench.metrics import STARTUP_TIME
from vaderbench.runner.tracking import Tracker
from vaderbench.runner.trial import ARTIFACTS, CHECKPOINT_PATH, LOOP_TIME, REPLAY, TRIAL_ERROR, WORKER_NODES

#: keys of a result that are bookkeeping (Tune's, and the trial's own), never logged as metrics
NOT_METRICS = {
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "time_since_restore",
    "iterations_since_restore",
    "pid",
    "done",
    "step",
    CHECKPOINT_PATH,
    LOOP_TIME,
    REPLAY,
    TRIAL_ERROR,
    WORKER_NODES,
}


#: seconds without a running trial, while trials wait, before the progress line says they wait for resources
WAIT_NOTICE_S = 20.0


class TrialLogger(Callback):
    def __init__(self, tracker: Tracker, parent_id: str, progress=None):
        self.tracker, self.parent_id, self.progress = tracker, parent_id, progress
        self.runs: dict[str, str] = {}  # tune trial id -> MLflow run id
        self.last_step: dict[str, int] = {}
        self.started: dict[str, float] = {}  # tune trial id -> when its run opened (this process's clock)
        self.loop_time: dict[str, float] = {}
        self.checkpoints: dict[str, str] = {}
        self.errors: dict[str, str] = {}  # tune trial id -> the failure a trial reported before it stopped
        self.finished: list[str] = []
        self.failed: dict[str, str] = {}
        #: (trial id, seconds its run lasted, seconds of it that were start-up) of each finished trial
        self.durations: list[tuple[str, float, float]] = []
        self.placed_at = time.perf_counter()  # when a trial last ran
        self.postfix = ""

    def __getstate__(self):
        # Tune pickles its run configuration, callbacks included, into the experiment folder; the live
        # MLflow client and progress bar (its stream may be a test's capture) stay in this process
        return {**self.__dict__, "tracker": None, "progress": None}

    def _run(self, trial) -> tuple[str, Trial]:
        spec = Trial.from_dict(trial.config["trial"])
        if trial.trial_id not in self.runs:
            run_id, last = self.tracker.trial_run(self.parent_id, spec)
            self.runs[trial.trial_id], self.last_step[trial.trial_id] = run_id, last
            self.started[trial.trial_id] = time.perf_counter()
        return self.runs[trial.trial_id], spec

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """The progress line says how many trials run and wait, and when none could be placed for a while."""
        if self.progress is None:
            return
        running = sum(t.status == "RUNNING" for t in trials)
        waiting = sum(t.status == "PENDING" for t in trials)
        now = time.perf_counter()
        if running or not waiting:
            self.placed_at = now
        text = f"{running} running, {waiting} waiting"
        if now - self.placed_at > WAIT_NOTICE_S:
            text = f"waiting for resources: no trial placed for {now - self.placed_at:.0f} s"
        if text != self.postfix:
            self.progress.set_postfix_str(text, refresh=False)
            self.postfix = text

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        # a restored trial first replays its reports up to its checkpoint: those that an interruption kept
        # from arriving are logged now, the others were logged before
        if REPLAY in result:
            print(
                f"\ntrial {self._run(trial)[1].id}: continues from its step-{result['step']} checkpoint",
                file=sys.stderr,
            )
        for report in result.get(REPLAY, [result]):
            self._log(trial, report)
        if CHECKPOINT_PATH in result:
            self.checkpoints[trial.trial_id] = result[CHECKPOINT_PATH]
        if LOOP_TIME in result:
            self.loop_time[trial.trial_id] = result[LOOP_TIME]
        if TRIAL_ERROR in result:
            self.errors[trial.trial_id] = result[TRIAL_ERROR]
        if WORKER_NODES in result:
            self.tracker.set_worker_nodes(self._run(trial)[0], result[WORKER_NODES])

    def _log(self, trial, report: dict) -> None:
        run_id, _ = self._run(trial)
        step, last = int(report["step"]), self.last_step[trial.trial_id]
        if step <= last:
            return
        self.tracker.log_step(run_id, step, {k: v for k, v in report.items() if k not in NOT_METRICS})
        if self.progress is not None:
            self.progress.update(step - max(last, 0))
        self.last_step[trial.trial_id] = step

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        run_id, spec = self._run(trial)
        if trial.trial_id in self.errors:
            self.fail(trial, self.errors[trial.trial_id])
            return
        checkpoint = self.checkpoints.get(trial.trial_id)
        if checkpoint:
            self.tracker.log_artifacts(run_id, Path(checkpoint) / ARTIFACTS)
        duration = time.perf_counter() - self.started[trial.trial_id]
        startup = duration - self.loop_time.get(trial.trial_id, 0.0)
        self.tracker.log_step(run_id, self.last_step[trial.trial_id], {STARTUP_TIME: startup})
        self.durations.append((spec.id, duration, startup))
        self.tracker.finish(run_id, "FINISHED")
        self.finished.append(spec.id)
        self.forget(trial.trial_id)

    def on_trial_recover(self, iteration: int, trials: list, trial, **info: Any) -> None:
        """A worker failed (killed, out of memory, a node lost) and Tune runs the trial again from its latest
        checkpoint (`resources.max_failures`): said on the terminal, since the trial loses the steps since."""
        spec = Trial.from_dict(trial.config["trial"])
        print(
            f"\ntrial {spec.id}: attempt {trial.num_failures} failed ({first_error_line(trial)}); "
            "restarting from its latest checkpoint",
            file=sys.stderr,
        )

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.fail(trial, first_error_line(trial))

    def fail(self, trial, message: str) -> None:
        run_id, spec = self._run(trial)
        self.tracker.set_error(run_id, message)
        self.tracker.finish(run_id, "FAILED")
        self.failed[spec.id] = message
        print(f"\ntrial {spec.id} failed: {message}", file=sys.stderr)
        self.forget(trial.trial_id)

    def forget(self, trial_id: str) -> None:
        for table in (self.runs, self.started, self.loop_time, self.checkpoints, self.errors):
            table.pop(trial_id, None)

    def close_open_runs(self, status: str) -> None:
        """Runs of trials that were still going when the sweep stopped (Ctrl-C): KILLED, resumable."""
        for run_id in self.runs.values():
            self.tracker.finish(run_id, status)
        self.runs.clear()


def first_error_line(trial) -> str:
    """The last line of the trial's error (the exception itself), not Ray's wrapping of it."""
    path = Path(trial.error_file) if getattr(trial, "error_file", None) else None
    lines = path.read_text().strip().splitlines() if path is not None and path.is_file() else []
    return lines[-1].strip() if lines else f"see {path or 'the Ray logs'}"
