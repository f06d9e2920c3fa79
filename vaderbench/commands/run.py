"""`vaderbench run FILE`: check the file, run the study it describes (`vaderbench.study`), print where it went."""

from __future__ import annotations

import argparse
import sys
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


def stage_table(title: str, trials) -> str:
    from vaderbench.experiment.commands import grid_table

    return f"{title} ({len(trials)} trial(s)):\n{grid_table(trials)}"


def run(args: argparse.Namespace) -> int:
    from vaderbench.runner.signals import sigterm_as_ctrl_c

    with sigterm_as_ctrl_c():
        return run_file(args)


def run_file(args: argparse.Namespace) -> int:
    from vaderbench.experiment.cost import describe_evaluations
    from vaderbench.experiment.load import load_experiment

    study = load_experiment(args.file, force=args.force)
    print(describe_evaluations([*study.tuning, *study.trials]))
    if args.dry_run:
        if study.tuning:
            print(stage_table("tuning stage", study.tuning) + "\n")
            print("final grid (each tuned method at the setting the tuning stage chooses):")
        print(stage_table("trials", study.trials))
        print(f"\n{len(study.tuning) + len(study.trials)} trial(s); nothing started (--dry-run)")
        return 0

    from vaderbench.runner.signals import interrupted_exit_code
    from vaderbench.runner.tracking import mlflow_ui_command, runs_page_url
    from vaderbench.runner.usage import startup_summary
    from vaderbench.study import run_study

    experiment = study.experiment
    output = (args.output or Path(experiment.output or Path("runs") / experiment.name)).resolve()
    outcome = run_study(
        study, args.file, output, resume=args.resume, address=args.address, force=args.force, report=not args.no_report
    )
    if outcome.tuning_failed:
        # a setting that diverged is an answer of the search, not a failure of the study
        print(f"tuning: {outcome.tuning_failed} trial(s) failed and were left out of the choice", file=sys.stderr)
    uri = outcome.tracking_uri
    print(f"\nMLflow store:   {uri} (experiment {outcome.experiment!r}, parent run {outcome.parent})")
    print(f"Ray results:    {outcome.storage}")
    if outcome.report:
        print(f"report:         {outcome.report}")
    if not uri.startswith(("http://", "https://")):  # a tracking server serves its UI already
        print(f"compare runs:   {mlflow_ui_command(uri)}")
    print(f"runs page:      {runs_page_url(uri, outcome.experiment_id)}")
    print(f"wall time:      {outcome.wall_time_s / 60:.1f} min")
    print(
        f"cores busy:     {100 * outcome.machine_busy:.0f}% of {outcome.cores}, of which this study's processes "
        f"{100 * outcome.study_busy:.0f}% (the OS's CPU times over the run; on a cluster, this machine's only)"
    )
    startup = startup_summary(outcome.durations)
    if startup:
        print(f"trial start-up: {startup}")
    if outcome.interrupted:
        print(f"interrupted: `vaderbench run {args.file} --resume` finishes the unfinished trials", file=sys.stderr)
        return interrupted_exit_code()
    if outcome.failed:
        failed = "; ".join(f"{k}: {v}" for k, v in outcome.failed.items())
        print(f"{len(outcome.failed)} trial(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0
