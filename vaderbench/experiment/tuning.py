"""The tuning stage: every method's settings searched on tuning seeds before the final grid runs at the best.

    for each method entry of `tune.space`, at each resolution (or at `tune.resolution` for all of them):
        draw `tune.trials` settings from the space: stratified (one draw in each of `trials` equal parts of
        each range, on a log scale for loguniform), the parts of different keys paired at random
        run each setting on every tuning seed, evaluated on validation prompts: the held-out prompts that
        come after the final evaluation's in the same fixed shuffle, with their own noise, so the final
        numbers are never measured on what the settings were chosen on
        Tune's ASHA scheduler stops the trials that fall behind (`tune.early_stopping`)
    a method's choice: of the settings whose trials all ran to the budget, the one with the highest mean
    tuning score over the tuning seeds: the validation reward at the last step, folded at the oracle's
    where the reward has an oracle (the toy world's: the reward of the best real video of each prompt)
    the final grid: every trial of `sweep` with its method's choice for its resolution

Why folded: a learned reward can be driven past what any real video earns (the toy aesthetic reward to
twice its oracle's value, its frames turned to coloured noise), and the setting that does so best would
win a search on the raw reward. Past the oracle, every unit more counts as one less (`tuning_score`), so
the search picks the setting that comes closest to the best real video, never the best exploit of the
reward model; the report still shows every method's raw reward and gold reward.

Comparisons between untuned methods are not comparisons: a learning rate copied from a large model can be
off by orders of magnitude for another model's LoRA, and in a different direction for each method.
Tuning each resolution on its own costs a tuning stage per resolution; `tune.resolution` tunes once and
assumes the choice carries over to the other sizes (the toy model's weights are shared across sizes, but
the reward's gradient per pixel and the number of pixels are not).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vaderbench.experiment.checks import check_swept_key
from vaderbench.experiment.grid import Trial, aligner_of, applies, resolve
from vaderbench.experiment.schema import SWEEP_ALIASES, Domain, Experiment, ExperimentError, resolution_label
from vaderbench.metrics import BUDGET_SPENT, TUNING_SCORE

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
    base = experiment.model_dump(mode="python")
    if tune.budget is not None:
        base["budget"] = tune.budget.model_dump()
    trials = []
    for entry, space in tune.space.items():
        aligner = aligner_of(entry, base["methods"][entry])
        for resolution in tuning_resolutions(experiment):
            rng = random.Random(f"{tune.seed}/{entry}/{resolution_label(resolution)}")
            for setting in drawn_settings(space, tune.trials, rng):
                for seed in tune.seeds:
                    point = {"method": entry, "resolution": resolution, "seed": seed, **setting}
                    try:
                        trial = resolve(base, entry, aligner, point)
                    except ValueError as error:
                        raise ExperimentError(path, f"tune.space.{entry}", str(error).splitlines()[0]) from None
                    trials.append(
                        dataclasses.replace(
                            trial, id=f"{TUNE}-{trial.id}", stage=TUNE, eval={**trial.eval, "split": VALIDATION}
                        )
                    )
    return trials


def setting_of(trial: Trial) -> dict[str, Any]:
    """The tuned values of a tuning trial: its point without method, resolution and seed."""
    return {k: v for k, v in trial.point.items() if k not in ("method", "resolution", "seed")}


def choose(tuning: list[Trial], results: Mapping[str, Mapping[str, float]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method entry, resolution label) -> the chosen setting, from each tuning trial's last metrics.

    `results` maps a tuning trial's id to its run's latest metrics (`TUNING_SCORE` at its last step and
    `BUDGET_SPENT` if it ran to the budget). A setting counts only if every one of its seeds ran to the budget.
    """
    groups: dict[tuple[str, str], dict[str, list[Trial]]] = {}
    for trial in tuning:
        key = (trial.method, trial.resolution)
        groups.setdefault(key, {}).setdefault(repr(sorted(setting_of(trial).items())), []).append(trial)
    chosen = {}
    for key, settings in groups.items():
        scored = []
        for trials in settings.values():
            metrics = [results.get(t.id, {}) for t in trials]
            if all(m.get(BUDGET_SPENT) == 1 and TUNING_SCORE in m for m in metrics):
                scored.append((sum(m[TUNING_SCORE] for m in metrics) / len(metrics), trials[0]))
        if not scored:
            raise ValueError(f"tuning {key[0]} at {key[1]} px: no setting ran to the budget on every tuning seed")
        best = max(scored, key=lambda pair: pair[0])[1]  # the first of equals: the draw order
        chosen[key] = setting_of(best)
    return chosen


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
