"""`TrialLogger`: a Ray Tune callback, in the sweep's driver, that writes every trial to MLflow.

A trial's first result opens (or, when resuming, reopens) its child run; each result is one step of
metrics (steps already logged by an interrupted attempt are not written twice); the last result's
checkpoint carries the trial's artifacts (sample GIFs, LoRA weights), logged when the trial completes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ray.tune import Callback

from vaderbench.experiment.grid import Trial
from vaderbench.runner.sweep import TUNE_KEYS
from vaderbench.runner.tracking import Tracker
from vaderbench.runner.trial import ARTIFACTS, REPLAY


class TrialLogger(Callback):
    def __init__(self, tracker: Tracker, parent_id: str, progress=None):
        self.tracker, self.parent_id, self.progress = tracker, parent_id, progress
        self.runs: dict[str, str] = {}  # tune trial id -> MLflow run id
        self.last_step: dict[str, int] = {}
        self.finished: list[str] = []
        self.failed: dict[str, str] = {}

    def __getstate__(self):
        # Tune pickles its run configuration, callbacks included, into the experiment folder; the live
        # MLflow client and progress bar (its stream may be a test's capture) stay in this process
        return {**self.__dict__, "tracker": None, "progress": None}

    def _run(self, trial) -> tuple[str, Trial]:
        spec = Trial.from_dict(trial.config["trial"])
        if trial.trial_id not in self.runs:
            run_id, last = self.tracker.trial_run(self.parent_id, spec)
            self.runs[trial.trial_id], self.last_step[trial.trial_id] = run_id, last
        return self.runs[trial.trial_id], spec

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        # a restored trial first replays its reports up to its checkpoint: those that an interruption kept
        # from arriving are logged now, the others were logged before
        for report in result.get(REPLAY, [result]):
            self._log(trial, report)

    def _log(self, trial, report: dict) -> None:
        run_id, _ = self._run(trial)
        step, last = int(report["step"]), self.last_step[trial.trial_id]
        if step <= last:
            return
        self.tracker.log_step(run_id, step, {k: v for k, v in report.items() if k not in TUNE_KEYS and k != "step"})
        if self.progress is not None:
            self.progress.update(step - max(last, 0))
        self.last_step[trial.trial_id] = step

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        run_id, spec = self._run(trial)
        checkpoint = (trial.last_result or {}).get("checkpoint_path")
        if checkpoint:
            self.tracker.log_artifacts(run_id, Path(checkpoint) / ARTIFACTS)
        self.tracker.finish(run_id, "FINISHED")
        self.finished.append(spec.id)
        self.runs.pop(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        run_id, spec = self._run(trial)
        self.tracker.finish(run_id, "FAILED")
        message = first_error_line(trial)
        self.failed[spec.id] = message
        print(f"\ntrial {spec.id} failed: {message}", file=sys.stderr)
        self.runs.pop(trial.trial_id)

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
