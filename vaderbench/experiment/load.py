"""Reading an experiment file: the one loader behind `vaderbench validate` and `vaderbench run`.

The file is read as UTF-8 YAML (duplicate keys, which YAML would silently resolve to the last one, are
refused), parsed by the schema, checked against the registries over every trial of the grid, and each
trial's peak memory is estimated against this machine's memory. Any mistake is an `ExperimentError`
naming the file and the key (the CLI prints it and exits with code 2).

Modules of this package depend in one direction: schema <- grid <- checks, memory, tuning <- load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import yaml

from vaderbench.experiment.checks import check_experiment, check_trial
from vaderbench.experiment.grid import Trial
from vaderbench.experiment.memory import check_memory, machine_memory_bytes
from vaderbench.experiment.schema import Experiment, ExperimentError, parse_experiment
from vaderbench.experiment.tuning import tuning_trials


class Study(NamedTuple):
    experiment: Experiment
    #: the grid's trials (a tuned method at the settings the file gives it until the tuning stage chooses)
    trials: list[Trial]
    #: the tuning stage's trials (none without `tune:`)
    tuning: list[Trial]


def load_experiment(path: str | Path, *, force: bool = False) -> Study:
    """The checked experiment, its grid and its tuning stage; `force` skips the memory check only."""
    path = Path(path)
    experiment = parse_experiment(read_yaml(path), path)
    trials = check_experiment(experiment, path)
    tuning = tuning_trials(experiment, path)
    if tuning and experiment.tune.early_stopping is not None and not any(t.budget["steps"] for t in tuning):
        raise ExperimentError(
            path,
            "tune.early_stopping",
            "early stopping needs a budget in steps (tune.budget.steps or budget.steps), or `early_stopping: null`",
        )
    for trial in tuning:
        check_trial(trial, experiment, path)
    if not force:
        check_memory([*trials, *tuning], machine_memory_bytes(), path)
    return Study(experiment, trials, tuning)


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; ExperimentError for a missing, non-UTF-8, empty or malformed file."""
    if not path.is_file():
        raise ExperimentError(path, "", "no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ExperimentError(
            path, "", f"not UTF-8 text: byte 0x{raw[error.start]:02x} on line {line} (save the file as UTF-8)"
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            refuse_duplicate_keys(root, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ExperimentError(path, "", f"not valid YAML: {where}{getattr(error, 'problem', None) or error}") from None
    if data is None:
        raise ExperimentError(path, "", "the file is empty; an experiment names at least its `methods:`")
    if not isinstance(data, dict):
        raise ExperimentError(path, "", f"expected a mapping of settings at the top, got {type(data).__name__}")
    return data


def refuse_duplicate_keys(node: yaml.Node, path: Path, where: str = "") -> None:
    """ExperimentError at the first key that a mapping repeats, with the lines of both."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            refuse_duplicate_keys(item, path, f"{where}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[str, int] = {}
    for key, value in node.value:
        name = str(key.value)
        dotted = f"{where}.{name}" if where else name
        if name in first_line and key.tag != "tag:yaml.org,2002:merge":
            lines = f"{first_line[name]} and {key.start_mark.line + 1}"
            raise ExperimentError(path, dotted, f"duplicate key on lines {lines} (YAML would keep only the last)")
        first_line[name] = key.start_mark.line + 1
        refuse_duplicate_keys(value, path, dotted)
