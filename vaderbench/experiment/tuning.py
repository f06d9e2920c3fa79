"""The tuning stage: every method's settings searched on tuning seeds before the final grid runs at the best.

    for each method entry of `tune.space`, at each resolution (or at `tune.resolution` for all of them):
        draw `tune.trials` settings from the space: stratified (one draw in each of `trials` equal parts of
        each range, on a log scale for loguniform), the parts of different keys paired at random
        run each setting on every tuning seed, evaluated on validation prompts: the held-out prompts that
        come after the final evaluation's in the same fixed shuffle, with their own noise, so the final
        numbers are never measured on what the settings were chosen on
        with `tune.refine`: then run the settings half a part below and above the best one, key by key
        Tune's ASHA scheduler stops the trials that fall behind (`tune.early_stopping`)
    a setting's score: the tuning score (the validation reward, folded at the oracle's where the reward has
    one: the toy world's reward of the best real video of each prompt) averaged over its last
    `tune.score_evaluations` evaluations and over the tuning seeds
    a method's choice: of the settings whose trials all ran to the budget, the one with the best score
    the final grid: every trial of `sweep` with its method's choice for its resolution

Why averaged: a learned reward moved by a policy gradient changes less in a tuning budget than it varies from
one evaluation or one seed to the next, and a setting chosen on one evaluation of one seed is a noise spike
that the final seeds do not repeat (nor, through rounding, another CPU).
Why folded: a learned reward can be driven past what any real video earns (the toy aesthetic reward to
twice its oracle's value, its frames turned to coloured noise), and the setting that does so best would
win a search on the raw reward. Past the oracle, every unit more counts as one less (`tuning_score`), so
the search picks the setting that comes closest to the best real video, never the best exploit of the
reward model; the report still shows every method's raw reward and gold reward.

Comparisons between untuned methods are not comparisons: a learning rate copied from a large model can be
off by orders of magnitude for another model's LoRA, and in a different direction for each method, and a
learning rate that suits one resolution need not suit another (the reward's gradient per pixel and the
number of pixels change with it). `tune.resolution` tunes once and assumes the choice carries over.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaderbench.experiment.checks import check_swept_key
from vaderbench.experiment.grid import Trial, aligner_of, applies, resolve
from vaderbench.experiment.schema import SWEEP_ALIASES, Domain, Experiment, ExperimentError, resolution_label

#: the stage of a trial, an MLflow param of its run
TUNE, FINAL = "tune", "final"
#: the evaluation split of tuning trials (`runner.trial.eval_set`)
VALIDATION = "validation"


def tuning_score(reward: float, oracle: float | None) -> float:
    """The validation reward, folded at the oracle's: above it, what a video gains counts against it."""
    return reward if oracle is None or reward <= oracle else 2 * oracle - reward


def draw(domain: Domain, count: int, rng: random.Random) -> list[Any]:
    """`count` values of `domain`, one in each of `count` equal parts of its range, in random order."""
    if domain.choice is not None:
        values = [domain.choice[i % len(domain.choice)] for i in range(count)]
    else:
        low, high = domain.loguniform or domain.uniform
        scale = (math.log, math.exp) if domain.loguniform else (float, float)
        a, b = scale[0](low), scale[0](high)
        # rounded to 3 significant digits: the values read in the report and the trials' ids stay short
        values = [float(f"{scale[1](a + (b - a) * (i + rng.random()) / count):.3g}") for i in range(count)]
    rng.shuffle(values)
    return values


def drawn_settings(space: Mapping[str, Domain], count: int, rng: random.Random) -> list[dict[str, Any]]:
    columns = {key: draw(domain, count, rng) for key, domain in sorted(space.items())}
    return [{key: values[i] for key, values in columns.items()} for i in range(count)]


def tuning_resolutions(experiment: Experiment) -> list[Any]:
    tune = experiment.tune
    if tune.resolution is not None:
        return [tune.resolution]
    return list(experiment.sweep.get("resolution", [experiment.video.resolution]))


def check_space(experiment: Experiment, path: str | Path) -> None:
    for entry, space in experiment.tune.space.items():
        if entry not in experiment.methods:
            raise ExperimentError(
                path, f"tune.space.{entry}", f"not an entry of `methods` ({', '.join(experiment.methods)})"
            )
        aligner = aligner_of(entry, experiment.methods[entry])
        for key in space:
            check_swept_key(key, experiment, path, f"tune.space.{entry}.{key}", entry)
            if key in ("method", "seed", "resolution"):
                raise ExperimentError(path, f"tune.space.{entry}.{key}", "method, seed and resolution are not tuned")
            if key in experiment.sweep:
                raise ExperimentError(path, f"tune.space.{entry}.{key}", "is also a sweep key: tune it or sweep it")
            target = SWEEP_ALIASES.get(key, key)
            if not applies(key, entry, aligner) or (target.startswith("methods.") and target.split(".")[1] != entry):
                raise ExperimentError(path, f"tune.space.{entry}.{key}", f"does not apply to method {entry!r}")
    final_seeds = set(experiment.sweep.get("seed", [experiment.seed]))
    shared = sorted(final_seeds & set(experiment.tune.seeds))
    if shared:
        raise ExperimentError(path, "tune.seeds", f"seed(s) {shared} are also final seeds: tuning seeds must differ")


def tuning_trials(experiment: Experiment, path: str | Path = "<experiment>") -> list[Trial]:
    """Every trial of the tuning stage (none without `tune`), each checked like a trial of the grid."""
    if experiment.tune is None:
        return []
    check_space(experiment, path)
    tune = experiment.tune
    base = tuning_base(experiment)
    trials = []
    for entry, space in tune.space.items():
        aligner = aligner_of(entry, base["methods"][entry])
        for resolution in tuning_resolutions(experiment):
            rng = random.Random(f"{tune.seed}/{entry}/{resolution_label(resolution)}")
            for setting in drawn_settings(space, tune.trials, rng):
                trials += seeded_trials(base, entry, aligner, resolution, setting, path)
    return trials


def tuning_base(experiment: Experiment) -> dict[str, Any]:
    """The experiment's settings as the tuning trials have them: with the tuning budget."""
    base = experiment.model_dump(mode="python")
    if experiment.tune.budget is not None:
        base["budget"] = experiment.tune.budget.model_dump()
    return base


def resolution_value(experiment: Experiment, label: str) -> Any:
    """The tuning resolution (as the file gives it) whose label is `label`."""
    return next(r for r in tuning_resolutions(experiment) if resolution_label(r) == label)


def seeded_trials(
    base: dict[str, Any], entry: str, aligner: str, resolution: Any, setting: dict[str, Any], path: str | Path
) -> list[Trial]:
    """One tuning trial of `setting` per tuning seed, evaluated on the validation prompts (the trained adapter
    alone: tuning reads no other LoRA scale)."""
    trials = []
    for seed in base["tune"]["seeds"]:
        point = {"method": entry, "resolution": resolution, "seed": seed, **setting}
        try:
            trial = resolve(base, entry, aligner, point)
        except ValueError as error:
            raise ExperimentError(path, f"tune.space.{entry}", str(error).splitlines()[0]) from None
        trials.append(
            dataclasses.replace(
                trial,
                id=f"{TUNE}-{trial.id}",
                stage=TUNE,
                eval={**trial.eval.model_dump(), "split": VALIDATION, "lora_scales": [1.0]},
            )
        )
    return trials


def setting_of(trial: Trial) -> dict[str, Any]:
    """The tuned values of a tuning trial: its point without method, resolution and seed."""
    return {k: v for k, v in trial.point.items() if k not in ("method", "resolution", "seed")}


@dataclass(frozen=True)
class TuningRun:
    """What the choice reads of a tuning trial's run: its tuning score at each evaluation, in order, and
    whether it ran to its budget (a trial stopped early does not compete)."""

    scores: list[float]
    spent: bool


def recent_mean(values: Sequence[float], last: int) -> float:
    """The mean of the last `last` values (of all of them if there are fewer)."""
    recent = list(values)[-last:]
    return sum(recent) / len(recent)


def setting_scores(
    tuning: list[Trial], runs: Mapping[str, TuningRun], last: int
) -> dict[tuple[str, str], list[tuple[float, dict[str, Any]]]]:
    """(method entry, resolution label) -> (score, setting) of every setting whose trials all ran to the budget,
    in the order drawn: the score is the mean over its tuning seeds of each trial's last `last` evaluations."""
    groups: dict[tuple[str, str], dict[str, list[Trial]]] = {}
    for trial in tuning:
        key = (trial.method, trial.resolution)
        groups.setdefault(key, {}).setdefault(repr(sorted(setting_of(trial).items())), []).append(trial)
    scored: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = {}
    for key, settings in groups.items():
        scored[key] = []
        for trials in settings.values():
            found = [runs.get(t.id) for t in trials]
            if all(run is not None and run.spent and run.scores for run in found):
                score = sum(recent_mean(run.scores, last) for run in found) / len(found)
                scored[key].append((score, setting_of(trials[0])))
    return scored


def choose(tuning: list[Trial], runs: Mapping[str, TuningRun], last: int = 2) -> dict[tuple[str, str], dict[str, Any]]:
    """(method entry, resolution label) -> the setting with the best score (`setting_scores`); the first drawn
    of equals."""
    chosen = {}
    for key, scored in setting_scores(tuning, runs, last).items():
        if not scored:
            raise ValueError(f"tuning {key[0]} at {key[1]} px: no setting ran to the budget on every tuning seed")
        chosen[key] = max(scored, key=lambda pair: pair[0])[1]
    return chosen


def refined_trials(
    experiment: Experiment,
    tuning: list[Trial],
    chosen: Mapping[tuple[str, str], dict[str, Any]],
    path: str | Path = "<experiment>",
) -> list[Trial]:
    """The refinement around each choice of the drawn settings: for each key with a range, the best value
    moved half a part (of the `tune.trials` equal parts of its range) down and up, within the range, the
    other keys kept; each such setting on every tuning seed, unless it was already drawn."""
    tune = experiment.tune
    if tune is None or not tune.refine:
        return []
    tried = {(t.method, t.resolution, repr(sorted(setting_of(t).items()))) for t in tuning}
    base = tuning_base(experiment)
    trials = []
    for (entry, resolution), best in chosen.items():
        aligner = aligner_of(entry, base["methods"][entry])
        for key, domain in sorted(tune.space[entry].items()):
            for value in neighbours(domain, best[key], tune.trials):
                setting = {**best, key: value}
                seen = (entry, resolution, repr(sorted(setting.items())))
                if seen in tried:
                    continue
                tried.add(seen)
                trials += seeded_trials(base, entry, aligner, resolution_value(experiment, resolution), setting, path)
    return trials


def neighbours(domain: Domain, value: Any, parts: int) -> list[Any]:
    """`value` moved half of one of `parts` equal parts of the domain's range down and up (on a log scale for
    loguniform), kept inside the range; none for a choice."""
    if domain.choice is not None:
        return []
    low, high = domain.loguniform or domain.uniform
    forward, back = (math.log, math.exp) if domain.loguniform else (float, float)
    half = (forward(high) - forward(low)) / parts / 2
    moved = [min(max(forward(value) + sign * half, forward(low)), forward(high)) for sign in (-1, 1)]
    return [v for v in dict.fromkeys(float(f"{back(m):.3g}") for m in moved) if v != value]


def final_trials(
    experiment: Experiment,
    grid: list[Trial],
    chosen: Mapping[tuple[str, str], dict[str, Any]],
    path: str | Path = "<experiment>",
) -> list[Trial]:
    """The grid's trials, each method at its chosen setting for its resolution (or the tuning resolution)."""
    if experiment.tune is None:
        return grid
    shared = resolution_label(experiment.tune.resolution) if experiment.tune.resolution is not None else None
    base = experiment.model_dump(mode="python")
    final = []
    for trial in grid:
        setting = chosen.get((trial.method, shared or trial.resolution))
        if setting is None:
            final.append(trial)
            continue
        try:
            final.append(resolve(base, trial.method, trial.aligner, {**trial.point, **setting}))
        except ValueError as error:
            raise ExperimentError(path, f"tune.space.{trial.method}", str(error).splitlines()[0]) from None
    return final
