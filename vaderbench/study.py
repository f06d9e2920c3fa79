"""A study's flow: the tuning stage, the choice, the final grid, the report; one call, one typed outcome.

    open MLflow (a new parent run, or the latest with `resume`) while Ray starts
    refuse a trial that no node can place (or, on a cluster, hold in memory)
    tuning stage (if the file has one) -> the choice, read back from the tuning runs' metrics
    with `tune.refine`: the settings around each choice -> the choice among all of them
    final grid, each tuned method at its choice
    the report, unless interrupted

It sits above the runner and the report and is the only module that calls both; `vaderbench run` parses its
arguments, calls `run_study` and prints the outcome.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vaderbench.cli import UserError
from vaderbench.experiment.grid import Trial
from vaderbench.experiment.load import Study
from vaderbench.experiment.memory import check_memory
from vaderbench.experiment.schema import ExperimentError
from vaderbench.experiment.tuning import TUNE, TuningRun, choose, final_trials, refined_trials
from vaderbench.metrics import BUDGET_SPENT, TUNING_SCORE
from vaderbench.runner.placement import alive_nodes, misfit
from vaderbench.runner.signals import reclaim_sigterm
from vaderbench.runner.sweep import SweepOutcome, run_sweep, start_ray
from vaderbench.runner.tracking import Tracker, default_store
from vaderbench.runner.usage import CoreUsage

#: where a study's progress lines go (`print` for `vaderbench run`)
Say = Callable[[str], None]


@dataclass(frozen=True)
class StudyOutcome:
    """Where a study's results went and how it ended."""

    #: the MLflow tracking URI, the experiment's name and id there, and the study's parent run
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent: str
    #: Ray's folder of the parent run: Tune's results and every trial's checkpoints
    storage: Path
    #: report.md, or None (not asked for, or the study was interrupted)
    report: Path | None
    wall_time_s: float
    #: the cores' busy fraction over the study, and the part of it that was the study's own processes
    machine_busy: float
    study_busy: float
    cores: int
    interrupted: bool
    #: trial id -> error, of the final grid
    failed: dict[str, str]
    #: tuning trials that failed (left out of the choice, not a failure of the study)
    tuning_failed: int
    #: (trial id, run seconds, start-up seconds) of every trial finished in this invocation
    durations: list[tuple[str, float, float]]


def tracking_of(study: Study, output: Path) -> tuple[str, Path | None]:
    """(tracking URI, artifact root for a new experiment): the file's, MLFLOW_TRACKING_URI, or sqlite in `output`."""
    uri = study.experiment.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_store(output)
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    return uri, (output / "mlartifacts") if local else None


def open_tracking(
    file: Path, resume: bool, planned: int, uri: str, name: str, artifact_root: Path | None, say: Say
) -> tuple[Tracker, str, set[str]]:
    """(tracker, parent run id, ids of the trials finished under it): a new parent run, or with `resume` the
    latest one."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" lines on the terminal
    tracker = Tracker(uri, name, artifact_root)
    if not resume:
        return tracker, tracker.start_parent(file, file.read_text(encoding="utf-8"), planned), set()
    parent = tracker.latest_parent()
    if parent is None:
        raise UserError(f"nothing to resume: experiment {name!r} in {uri} has no earlier `vaderbench run`")
    finished = {tid for tid, r in tracker.children(parent).items() if r.info.status == "FINISHED"}
    tracker.reopen(parent)
    say(f"resuming run {parent}: {len(finished)} trial(s) finished before")
    return tracker, parent, finished


def run_study(
    study: Study,
    file: Path,
    output: Path,
    *,
    resume: bool = False,
    address: str | None = None,
    force: bool = False,
    report: bool = True,
    say: Say = print,
) -> StudyOutcome:
    """Run `study` (read from `file`) into `output`: see the module's docstring. `say` gets the progress lines;
    a mistake found before anything runs raises `UserError` or `ExperimentError`."""
    started = time.perf_counter()
    experiment, grid, tuning = study
    usage = CoreUsage.start()
    output.mkdir(parents=True, exist_ok=True)
    uri, artifact_root = tracking_of(study, output)
    name = experiment.tracking.experiment or experiment.name
    # the MLflow store opens while Ray starts (each takes seconds); with `resume` and nothing left to do,
    # Ray was started for nothing, which costs less than waiting for both every time
    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(open_tracking, file, resume, len(tuning) + len(grid), uri, name, artifact_root, say)
        modules = tuple(dict.fromkeys(module for trial in [*tuning, *grid] for module in trial.modules))
        ray_at = start_ray(address or experiment.resources.address, modules)
        reclaim_sigterm()  # Ray's start installs its own handler, which ends the driver at once
        tracker, parent, finished = opening.result()

    def discard_new_parent() -> None:
        if not resume:
            tracker.client.delete_run(parent)  # nothing ran under it

    problem = misfit(alive_nodes(), experiment.resources.model_dump())
    if problem:
        discard_new_parent()
        raise UserError(f"{file}: resources: {problem}")
    if ray_at != "local" and not force:
        try:
            largest = max((node.get("memory", 0) for node in alive_nodes()), default=0)
            check_memory([*tuning, *grid], int(largest), file, "the cluster's largest node", spread=True)
        except ExperimentError:
            discard_new_parent()
            raise
    storage = output / "ray" / parent
    say(f"Ray ({ray_at}); MLflow experiment {name!r}, parent run {parent}")

    def stage(title: str, trials: list[Trial], early_stopping: bool = False) -> SweepOutcome:
        return run_stage(title, trials, finished, study, tracker, parent, storage, say, early_stopping)

    tuned = stage("tuning", tuning, early_stopping=True) if tuning else None
    if tuned is not None and not tuned.interrupted and experiment.tune.refine:
        refinement = refined_trials(experiment, tuning, tuning_choice(study, tuning, file, tracker, parent), file)
        if refinement:
            tuned = tuned.then(stage("tuning (refinement)", refinement, early_stopping=True))
            tuning = [*tuning, *refinement]
    final = None
    if tuned is None or not tuned.interrupted:
        if tuned is not None:
            grid = final_grid(study, tuning, file, tracker, parent, say)
        final = stage("final" if tuning else "training", grid)
    interrupted = final is None or final.interrupted
    failed = final.failed if final is not None else {}
    machine, own = usage.fractions()
    tracker.log_usage(parent, time.perf_counter() - started, machine, own)
    tracker.finish(parent, "KILLED" if interrupted else "FAILED" if failed else "FINISHED")
    report_path = None
    if report and not interrupted:
        from vaderbench.report.build import write_report  # matplotlib and seaborn: seconds, not for --no-report

        report_path, _ = write_report(output, experiment=name, tracking_uri=uri)
    return StudyOutcome(
        tracking_uri=uri,
        experiment=name,
        experiment_id=tracker.experiment_id,
        parent=parent,
        storage=storage,
        report=report_path,
        wall_time_s=time.perf_counter() - started,
        machine_busy=machine,
        study_busy=own,
        cores=usage.cores,
        interrupted=interrupted,
        failed=failed,
        tuning_failed=len(tuned.failed) if tuned is not None else 0,
        durations=[d for outcome in (tuned, final) if outcome is not None for d in outcome.durations],
    )


def tuning_choice(study: Study, tuning: list[Trial], file: Path, tracker: Tracker, parent: str) -> dict:
    """The tuning stage's choice, read back from the tuning trials' runs in MLflow (this invocation's and, with
    `resume`, the earlier ones')."""
    runs = {
        tid: TuningRun(tracker.metric_values(run.info.run_id, TUNING_SCORE), run.data.metrics.get(BUDGET_SPENT) == 1)
        for tid, run in tracker.children(parent).items()
        if tid.startswith(TUNE)
    }
    try:
        return choose(tuning, runs, study.experiment.tune.score_evaluations)
    except ValueError as error:
        tracker.finish(parent, "FAILED")
        raise UserError(f"{file}: tune: {error}", code=1) from None


def final_grid(study: Study, tuning: list[Trial], file: Path, tracker: Tracker, parent: str, say: Say) -> list[Trial]:
    """The grid at the tuning stage's choice, logged on the parent run."""
    chosen = tuning_choice(study, tuning, file, tracker, parent)
    tracker.log_choice(parent, chosen, study.experiment.tune.score_evaluations)
    for (method, resolution), setting in chosen.items():
        say(f"tuned {method} at {resolution} px: " + ", ".join(f"{k}={v}" for k, v in setting.items()))
    return final_trials(study.experiment, study.trials, chosen, file)


def run_stage(
    title: str,
    trials: list[Trial],
    finished: set[str],
    study: Study,
    tracker: Tracker,
    parent: str,
    storage: Path,
    say: Say,
    early_stopping: bool = False,
) -> SweepOutcome:
    """Run the trials of one stage that are not finished yet, with a progress bar; returns the sweep's outcome."""
    from tqdm import tqdm

    pending = [t for t in trials if t.id not in finished]
    if len(pending) < len(trials):
        say(f"{title}: {len(trials) - len(pending)} of {len(trials)} trial(s) finished before")
    if not pending:
        return SweepOutcome([], {}, interrupted=False, durations=[])
    # the largest videos first: the long trials start early and the short ones fill in at the end
    pending = sorted(pending, key=lambda t: t.height * t.width * t.frames * t.settings["num_steps"], reverse=True)
    steps = [t.steps for t in pending]
    experiment = study.experiment
    stopping = experiment.tune.early_stopping if early_stopping and experiment.tune else None
    say(f"{title}: {len(pending)} trial(s)" + (" (Tune's ASHA stops those that fall behind)" if stopping else ""))
    with tqdm(
        total=sum(steps) if all(steps) else None, unit="step", desc=title, dynamic_ncols=True, file=sys.stderr
    ) as progress:
        return run_sweep(
            pending,
            tracker,
            parent,
            storage=storage,
            resources=experiment.resources.model_dump(),
            progress=progress,
            early_stopping=stopping,
        )
