"""`vaderbench validate FILE`: check an experiment file and print its trial grid, starting nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from vaderbench.experiment.grid import Trial


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check an experiment file (keys, types, names, every trial of the grid) and start nothing",
        description="Reads FILE, checks every key, name and value and every trial of the expanded grid (K against "
        "the sampling steps, resolutions against the model, each trial's estimated peak memory against this "
        "machine's), and prints the grid. Exit code 0 when the file is good, 2 with the file, the key and what was "
        "expected when it is not.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="experiment YAML, e.g. experiments/smoke.yaml")
    parser.set_defaults(func=run)


def grid_table(trials: list[Trial]) -> str:
    """One row per trial: its id, method and the swept values."""
    keys = list(dict.fromkeys(k for t in trials for k in t.point if k != "method"))
    header = ["trial", "method", *keys]
    rows = [[t.id, t.method, *(str(t.point.get(k, "-")) for k in keys)] for t in trials]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from vaderbench.experiment.cost import describe_evaluations
    from vaderbench.experiment.load import load_experiment

    experiment, trials, tuning = load_experiment(args.file)
    if tuning:
        print(f"tuning stage ({len(tuning)} trial(s)):\n{grid_table(tuning)}\n")
        print("final grid (each tuned method at the setting the tuning stage chooses):")
    print(grid_table(trials))
    print(f"\n{describe_evaluations([*tuning, *trials])}")
    total = f"{len(tuning)} tuning and {len(trials)} final trial(s)" if tuning else f"{len(trials)} trial(s)"
    print(f"\n{args.file}: valid; experiment {experiment.name!r}, {total}")
    return 0
