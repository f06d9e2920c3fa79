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
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest invocation: finished trials are kept, the others resume from their checkpoints")
    parser.add_argument("--dry-run", action="store_true", help="check the file and print the expanded trial grid")
    parser.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--force", action="store_true",
                        help="run even when a trial's estimated peak memory exceeds this machine's memory")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.set_defaults(func=run)


def tracking_of(experiment, output: Path) -> tuple[str, Path | None]:
    """(tracking URI, artifact root for a new experiment): the file's, MLFLOW_TRACKING_URI, or sqlite in `output`."""
    from vaderbench.runner.tracking import default_store

    uri = experiment.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or default_store(output)
    local = uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri
    return uri, (output / "mlartifacts") if local else None


def open_tracking(args: argparse.Namespace, trials, uri: str, name: str, artifact_root: Path | None):
    """(tracker, parent run id, trials still to run): a new parent run, or with --resume the latest one."""
    import logging

    from vaderbench.cli import UserError
    from vaderbench.runner.tracking import Tracker

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" lines on the terminal
    tracker = Tracker(uri, name, artifact_root)
    if not args.resume:
        return tracker, tracker.start_parent(args.file, args.file.read_text(encoding="utf-8"), len(trials)), trials
    parent = tracker.latest_parent()
    if parent is None:
        raise UserError(f"nothing to resume: experiment {name!r} in {uri} has no earlier `vaderbench run`")
    done = {tid for tid, r in tracker.children(parent).items() if r.info.status == "FINISHED"}
    pending = [t for t in trials if t.id not in done]
    tracker.reopen(parent)
    print(f"resuming run {parent}: {len(trials) - len(pending)} trial(s) finished, {len(pending)} to go")
    return tracker, parent, pending


def run(args: argparse.Namespace) -> int:
    from vaderbench.experiment.commands import grid_table
    from vaderbench.experiment.load import load_experiment

    started = time.perf_counter()
    experiment, trials = load_experiment(args.file, force=args.force)
    if args.dry_run:
        print(grid_table(trials))
        print(f"\n{len(trials)} trial(s); nothing started (--dry-run)")
        return 0

    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from vaderbench.runner.sweep import run_sweep, start_ray
    from vaderbench.runner.tracking import mlflow_ui_command

    output = (args.output or Path(experiment.output or Path("runs") / experiment.name)).resolve()
    output.mkdir(parents=True, exist_ok=True)
    uri, artifact_root = tracking_of(experiment, output)
    name = experiment.tracking.experiment or experiment.name
    # the MLflow store opens while Ray starts (each takes seconds); with --resume and nothing left to do,
    # Ray was started for nothing, which costs less than waiting for both every time
    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(open_tracking, args, trials, uri, name, artifact_root)
        ray_at = start_ray(args.address or experiment.resources.address)
        tracker, parent, pending = opening.result()
    storage = output / "ray" / parent
    # the largest videos first: the long trials start early and the short ones fill in at the end
    pending = sorted(pending, key=lambda t: t.height * t.width * t.frames * t.settings["num_steps"], reverse=True)

    outcome = None
    if pending:
        print(f"{len(pending)} trial(s) on Ray ({ray_at}); MLflow experiment {name!r}, parent run {parent}")
        steps = experiment.budget.steps
        with tqdm(total=steps * len(pending) if steps else None, unit="step", desc="training",
                  dynamic_ncols=True, file=sys.stderr) as progress:
            outcome = run_sweep(pending, tracker, parent, storage=storage,
                                resources=experiment.resources.model_dump(), progress=progress)
    failed = outcome.failed if outcome else {}
    interrupted = bool(outcome and outcome.interrupted)
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
    print(f"compare runs:   {mlflow_ui_command(uri)}")
    print(f"wall time:      {minutes:.1f} min")
    if interrupted:
        print(f"interrupted: `vaderbench run {args.file} --resume` finishes the unfinished trials", file=sys.stderr)
        return 130
    if failed:
        print(f"{len(failed)} trial(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()), file=sys.stderr)
        return 1
    return 0
