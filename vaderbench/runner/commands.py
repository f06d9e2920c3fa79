"""`vaderbench run FILE`: the sweep of an experiment file through Ray Tune + Ray Train, logged to MLflow."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run an experiment file: every trial a Ray Train run, the grid a Ray Tune sweep, each trial an MLflow run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Runs the sweep an experiment file describes and writes, under the output folder:
  mlflow.db      the MLflow store (unless tracking.uri or MLFLOW_TRACKING_URI names another)
  mlartifacts/   the runs' artifacts: sample GIFs, LoRA weights, configs
  ray/           Ray's trial folders and checkpoints
  report/        figures and tables (`vaderbench report` regenerates them)

examples:
  vaderbench run experiments/smoke.yaml --dry-run      # print the trial grid, start nothing
  vaderbench run experiments/efficiency.yaml           # the resolution-gap study on the toy world
  vaderbench run experiments/efficiency.yaml --resume  # after Ctrl-C: finish only the unfinished trials
  vaderbench run my.yaml --address auto                # on a running Ray cluster""",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="experiment YAML")
    parser.add_argument("--output", type=Path, help="output folder (default: the file's `output`, else runs/<name>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest invocation: finished trials are kept, the others resume from their checkpoints",
    )
    parser.add_argument("--dry-run", action="store_true", help="check the file and print the expanded trial grid")
    parser.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even when a trial's estimated peak memory exceeds this machine's memory",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaderbench.runner.signals import sigterm_as_ctrl_c

    with sigterm_as_ctrl_c():
        return run_study(args)


def tracking_of(experiment, output: Path) -> tuple[str, Path | None]:
    """(tracking URI, artifact root for a new experiment): the file's, MLFLOW_TRACKING_URI, or sqlite in `output`."""
    from vaderbench.runner.tracking import default_store

    uri = experiment.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_store(output)
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    return uri, (output / "mlartifacts") if local else None


def open_tracking(args: argparse.Namespace, planned: int, uri: str, name: str, artifact_root: Path | None):
    """(tracker, parent run id, ids of the trials finished under it): a new parent run, or with --resume the
    latest one."""
    import logging

    from vaderbench.cli import UserError
    from vaderbench.runner.tracking import Tracker

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" lines on the terminal
    tracker = Tracker(uri, name, artifact_root)
    if not args.resume:
        return tracker, tracker.start_parent(args.file, args.file.read_text(encoding="utf-8"), planned), set()
    parent = tracker.latest_parent()
    if parent is None:
        raise UserError(f"nothing to resume: experiment {name!r} in {uri} has no earlier `vaderbench run`")
    finished = {tid for tid, r in tracker.children(parent).items() if r.info.status == "FINISHED"}
    tracker.reopen(parent)
    print(f"resuming run {parent}: {len(finished)} trial(s) finished before")
    return tracker, parent, finished


def stage_table(title: str, trials) -> str:
    from vaderbench.experiment.commands import grid_table

    return f"{title} ({len(trials)} trial(s)):\n{grid_table(trials)}"


def run_study(args: argparse.Namespace) -> int:
    from vaderbench.cli import UserError
    from vaderbench.experiment.cost import describe_evaluations
    from vaderbench.experiment.load import load_experiment
    from vaderbench.experiment.tuning import choose, final_trials
    from vaderbench.runner.signals import interrupted_exit_code, reclaim_sigterm

    started = time.perf_counter()
    experiment, grid, tuning = load_experiment(args.file, force=args.force)
    print(describe_evaluations([*tuning, *grid]))
    if args.dry_run:
        if tuning:
            print(stage_table("tuning stage", tuning) + "\n")
            print("final grid (each tuned method at the setting the tuning stage chooses):")
        print(stage_table("trials", grid))
        print(f"\n{len(tuning) + len(grid)} trial(s); nothing started (--dry-run)")
        return 0

    from concurrent.futures import ThreadPoolExecutor

    from vaderbench.experiment.memory import check_memory
    from vaderbench.experiment.schema import ExperimentError
    from vaderbench.runner.placement import alive_nodes, misfit
    from vaderbench.runner.sweep import start_ray
    from vaderbench.runner.tracking import mlflow_ui_command, runs_page_url
    from vaderbench.runner.usage import CoreUsage, startup_summary

    usage = CoreUsage.start()
    output = (args.output or Path(experiment.output or Path("runs") / experiment.name)).resolve()
    output.mkdir(parents=True, exist_ok=True)
    uri, artifact_root = tracking_of(experiment, output)
    name = experiment.tracking.experiment or experiment.name
    # the MLflow store opens while Ray starts (each takes seconds); with --resume and nothing left to do,
    # Ray was started for nothing, which costs less than waiting for both every time
    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(open_tracking, args, len(tuning) + len(grid), uri, name, artifact_root)
        modules = tuple(dict.fromkeys(module for trial in [*tuning, *grid] for module in trial.modules))
        ray_at = start_ray(args.address or experiment.resources.address, modules)
        reclaim_sigterm()  # Ray's start installs its own handler, which ends the driver at once
        tracker, parent, finished = opening.result()
    problem = misfit(alive_nodes(), experiment.resources.model_dump())
    if problem:
        if not args.resume:
            tracker.client.delete_run(parent)  # nothing ran under it
        raise UserError(f"{args.file}: resources: {problem}")
    if ray_at != "local" and not args.force:
        try:
            largest = max((node.get("memory", 0) for node in alive_nodes()), default=0)
            check_memory([*tuning, *grid], int(largest), args.file, "the cluster's largest node", spread=True)
        except ExperimentError:
            if not args.resume:
                tracker.client.delete_run(parent)
            raise
    storage = output / "ray" / parent
    print(f"Ray ({ray_at}); MLflow experiment {name!r}, parent run {parent}")

    outcomes = []
    if tuning:
        outcomes.append(
            run_stage("tuning", tuning, finished, experiment, tracker, parent, storage, early_stopping=True)
        )
        if not outcomes[-1].interrupted:
            results = {tid: run.data.metrics for tid, run in tracker.children(parent).items()}
            try:
                chosen = choose(tuning, results)
            except ValueError as error:
                tracker.finish(parent, "FAILED")
                raise UserError(f"{args.file}: tune: {error}", code=1) from None
            grid = final_trials(experiment, grid, chosen, args.file)
            tracker.log_choice(parent, chosen)
            for (method, resolution), setting in chosen.items():
                print(f"tuned {method} at {resolution} px: " + ", ".join(f"{k}={v}" for k, v in setting.items()))
    if not any(outcome.interrupted for outcome in outcomes):
        outcomes.append(
            run_stage("training" if not tuning else "final", grid, finished, experiment, tracker, parent, storage)
        )
    if tuning and outcomes[0].failed:
        # a setting that diverged is an answer of the search, not a failure of the study: it is left out of
        # the choice and listed in the report
        print(f"tuning: {len(outcomes[0].failed)} trial(s) failed and were left out of the choice", file=sys.stderr)
    failed = outcomes[-1].failed if not tuning or len(outcomes) == 2 else {}
    interrupted = any(outcome.interrupted for outcome in outcomes)
    machine, study = usage.fractions()
    tracker.log_usage(parent, time.perf_counter() - started, machine, study)
    tracker.finish(parent, "KILLED" if interrupted else "FAILED" if failed else "FINISHED")

    report_path = None
    if not args.no_report and not interrupted:
        from vaderbench.report.build import write_report

        report_path, _ = write_report(output, experiment=name, tracking_uri=uri)
    minutes = (time.perf_counter() - started) / 60
    print(f"\nMLflow store:   {uri} (experiment {name!r}, parent run {parent})")
    print(f"Ray results:    {storage}")
    if report_path:
        print(f"report:         {report_path}")
    if not uri.startswith(("http://", "https://")):  # a tracking server serves its UI already
        print(f"compare runs:   {mlflow_ui_command(uri)}")
    print(f"runs page:      {runs_page_url(uri, tracker.experiment_id)}")
    print(f"wall time:      {minutes:.1f} min")
    print(
        f"cores busy:     {100 * machine:.0f}% of {usage.cores}, of which this study's processes "
        f"{100 * study:.0f}% (the OS's CPU times over the run; on a cluster, this machine's only)"
    )
    startup = startup_summary([d for outcome in outcomes for d in outcome.durations])
    if startup:
        print(f"trial start-up: {startup}")
    if interrupted:
        print(f"interrupted: `vaderbench run {args.file} --resume` finishes the unfinished trials", file=sys.stderr)
        return interrupted_exit_code()
    if failed:
        print(f"{len(failed)} trial(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()), file=sys.stderr)
        return 1
    return 0


def run_stage(
    stage: str,
    trials,
    finished: set[str],
    experiment,
    tracker,
    parent: str,
    storage: Path,
    early_stopping: bool = False,
):
    """Run the trials of one stage that are not finished yet, with a progress bar; returns the sweep's outcome."""
    from tqdm import tqdm

    from vaderbench.runner.sweep import SweepOutcome, run_sweep

    pending = [t for t in trials if t.id not in finished]
    if len(pending) < len(trials):
        print(f"{stage}: {len(trials) - len(pending)} of {len(trials)} trial(s) finished before")
    if not pending:
        return SweepOutcome([], {}, interrupted=False, durations=[])
    # the largest videos first: the long trials start early and the short ones fill in at the end
    pending = sorted(pending, key=lambda t: t.height * t.width * t.frames * t.settings["num_steps"], reverse=True)
    steps = pending[0].budget["steps"]
    stopping = experiment.tune.early_stopping if early_stopping and experiment.tune else None
    print(f"{stage}: {len(pending)} trial(s)" + (" (Tune's ASHA stops those that fall behind)" if stopping else ""))
    with tqdm(
        total=steps * len(pending) if steps else None, unit="step", desc=stage, dynamic_ncols=True, file=sys.stderr
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
