"""Reading an experiment file: the one loader behind `vaderbench validate` and `vaderbench run`.

The file is read as UTF-8 YAML (`yamlfile`: bounded in size, nesting and aliases; duplicate keys refused),
parsed by the schema, checked against the registries over every trial of the grid, and each trial's peak
memory is estimated against this machine's memory. Any mistake is an `ExperimentError` naming the file and
the key (the CLI prints it and exits with code 2).

Modules of this package depend in one direction: schema <- yamlfile, grid <- checks, memory, cost, tuning <- load.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from vaderbench.experiment.checks import check_experiment, check_trial
from vaderbench.experiment.cost import check_evaluation_time
from vaderbench.experiment.grid import Trial
from vaderbench.experiment.memory import check_memory, machine_memory_bytes
from vaderbench.experiment.schema import Experiment, ExperimentError, parse_experiment
from vaderbench.experiment.tuning import tuning_trials
from vaderbench.experiment.yamlfile import read_yaml


class Study(NamedTuple):
    experiment: Experiment
    #: the grid's trials (a tuned method at the settings the file gives it until the tuning stage chooses)
    trials: list[Trial]
    #: the tuning stage's trials (none without `tune:`)
    tuning: list[Trial]


def load_experiment(path: str | Path, *, force: bool = False) -> Study:
    """The checked experiment, its grid and its tuning stage; `force` skips the checks of cost only (memory and
    evaluation time)."""
    path = Path(path)
    experiment = parse_experiment(read_yaml(path), path)
    trials = check_experiment(experiment, path)
    tuning = tuning_trials(experiment, path)
    if tuning and experiment.tune.early_stopping is not None and not any(t.steps for t in tuning):
        raise ExperimentError(
            path,
            "tune.early_stopping",
            "early stopping needs a budget in steps (tune.budget.steps or budget.steps, or reward_queries), or "
            "`early_stopping: null`",
        )
    for trial in tuning:
        check_trial(trial, experiment, path)
    if not force:
        check_memory([*trials, *tuning], machine_memory_bytes(), path)
        check_evaluation_time([*trials, *tuning], path)
    return Study(experiment, trials, tuning)
