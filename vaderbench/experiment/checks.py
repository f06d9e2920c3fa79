"""Checks of an experiment that need the registries: names, options, and every trial of the grid.

Nothing here loads model weights: names are looked up in the registries, options are bound to the
factories' signatures, aligner settings go through each aligner's own `Config.validate`, and sizes through
the model's `check_size` rule (read from configs alone).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vaderbench.experiment.grid import Trial, aligner_of, expand, model_name_and_options
from vaderbench.experiment.schema import (
    SWEEP_ALIASES,
    Experiment,
    ExperimentError,
    PolicySwitches,
    Stopping,
    key_path,
)
from vaderbench.prompts import load_prompts
from vaderbench.registry import ALIGNERS, MODELS, PROMPT_SETS, REWARDS, Registry
from vaderbench.rewards.base import RewardOptionError, spec_class
from vaderbench.stopping import MEMBER_SPREAD


def check_experiment(experiment: Experiment, path: str | Path) -> list[Trial]:
    """Every check, in the order a reader fixes them; returns the expanded grid."""
    check_methods(experiment, path)
    check_model(experiment.model, path)
    check_reward(experiment.reward, path)
    for key, spec in experiment.eval.scoring_rewards().items():
        check_reward(spec, path, f"eval.{key}")
    check_prompts(experiment, path)
    check_sweep_keys(experiment, path)
    try:
        trials = expand(experiment)
    except ValueError as error:
        raise ExperimentError(path, "sweep", str(error).splitlines()[0]) from None
    for trial in trials:
        check_trial(trial, experiment, path)
    return trials


def check_factory_options(registry: Registry, name: str, options: Mapping[str, Any], path, key: str):
    if not isinstance(name, str):
        raise ExperimentError(path, key, f"expected a {registry.kind} name, got {name!r}")
    try:
        factory = registry.get(name)
    except ValueError as error:
        raise ExperimentError(path, key, str(error)) from None
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as error:
        accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
        raise ExperimentError(
            path, key, f"bad options for {registry.kind} {name!r} ({error}); it takes: {', '.join(accepted) or 'none'}"
        ) from None
    return factory


def check_model(spec, path) -> None:
    name, options = model_name_and_options(spec)
    if name is None:
        raise ExperimentError(path, "model", "a model given as a mapping needs `name:` (see `vaderbench list`)")
    check_factory_options(MODELS, name, options, path, "model" if isinstance(spec, str) else "model.name")


def check_reward(spec, path, key: str = "reward") -> None:
    """The file's reward (or a method entry's own, under `key`): names, weights and options."""
    if isinstance(spec, str):
        check_factory_options(REWARDS, spec, {}, path, key)
        return
    if not isinstance(spec, Mapping) or not spec:
        raise ExperimentError(path, key, "expected a reward name or a mapping of names to weights")
    for name, value in spec.items():
        options = dict(value) if isinstance(value, Mapping) else {"weight": value}
        weight = options.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ExperimentError(path, f"{key}.{name}.weight", f"expected a number, got {weight!r}")
        factory = check_factory_options(REWARDS, name, options, path, f"{key}.{name}")
        # a reward may check its option values too (the ensemble: its aggregate and its members), loading nothing
        check_options = getattr(factory, "check_options", None)
        if check_options is not None:
            try:
                check_options(**options)
            except RewardOptionError as error:
                raise ExperimentError(path, f"{key}.{name}.{error.key}", error.message) from None


def check_methods(experiment: Experiment, path) -> None:
    if not experiment.methods:
        raise ExperimentError(path, "methods", "no methods: name at least one of " + ", ".join(ALIGNERS.names()))
    for entry, settings in experiment.methods.items():
        aligner = aligner_of(entry, settings)
        if "reward" in settings:  # a variant with a reward of its own (a defence: a conservative ensemble)
            check_reward(settings["reward"], path, f"methods.{entry}.reward")
        for section, model in (("policy", PolicySwitches), ("stopping", Stopping)):
            if section not in settings or (section == "stopping" and settings[section] is None):
                continue  # `stopping: null`: this entry's trials run to their budget, whatever the file's rule
            try:
                model.model_validate(settings[section])
            except ValidationError as error:
                first = error.errors()[0]
                key = f"methods.{entry}.{section}." + key_path(first["loc"], settings[section])
                raise ExperimentError(path, key.rstrip("."), first["msg"]) from None
        if aligner not in ALIGNERS:
            hint = "" if "aligner" in settings else " (a variant names its aligner with `aligner:`)"
            key = f"methods.{entry}.aligner" if "aligner" in settings else f"methods.{entry}"
            raise ExperimentError(path, key, f"unknown method {aligner!r}; known: {', '.join(ALIGNERS.names())}{hint}")


def check_prompts(experiment: Experiment, path) -> None:
    """Registered sets stay names; files are made absolute (trials run in other working directories)."""
    for which in ("train", "eval"):
        value = getattr(experiment.prompts, which)
        if value in PROMPT_SETS:
            continue
        if ".." in Path(value).parts:
            # a relative reference stays in the working directory or beside the file; an absolute one says
            # plainly where it reads
            raise ExperimentError(path, f"prompts.{which}", f"{value!r} climbs out with `..`; give an absolute path")
        for candidate in (Path(value), Path(path).parent / value):
            if candidate.is_file() or candidate.is_dir():
                setattr(experiment.prompts, which, str(candidate.resolve()))
                break
        else:
            raise ExperimentError(
                path,
                f"prompts.{which}",
                f"{value!r} is neither a registered prompt set ({', '.join(PROMPT_SETS.names())}), a prompt file nor a "
                "folder of images",
            )


def check_sweep_keys(experiment: Experiment, path) -> None:
    for key in experiment.sweep:
        check_swept_key(key, experiment, path, f"sweep.{key}")
    for value in experiment.sweep.get("method", []):
        if value not in experiment.methods:
            raise ExperimentError(
                path, "sweep.method", f"{value!r} is not an entry of `methods` ({', '.join(experiment.methods)})"
            )


def check_swept_key(key: str, experiment: Experiment, path, where: str, entry: str | None = None) -> None:
    """ExperimentError (at `where`) unless `key` names something a sweep or a tuning space can set: one of
    SWEEP_ALIASES, `methods.<entry>.<setting>`, or a dotted key of the file. With `entry` (a tuning space's
    method), the message lists that method's settings."""
    if key in SWEEP_ALIASES:
        return
    parts = key.split(".")
    if parts[0] == "methods":
        if len(parts) < 3 or parts[1] not in experiment.methods:
            entries = ", ".join(experiment.methods)
            raise ExperimentError(
                path, where, f"expected methods.<entry>.<setting> with an entry of `methods` ({entries})"
            )
        return
    node: Any = experiment.model_dump()
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            settings = ""
            if entry is not None:
                aligner = ALIGNERS.get(aligner_of(entry, experiment.methods[entry]))
                names = ", ".join(sorted(f.name for f in dataclasses.fields(aligner.Config)))
                settings = f" or methods.{entry}.<setting> with a setting of {entry} ({names})"
            what = "setting" if entry else "sweep key"
            raise ExperimentError(
                path,
                where,
                f"unknown {what}; expected {', '.join(SWEEP_ALIASES)}{settings} or a dotted key of the file "
                "(policy.precision, sampler.num_steps, methods.<entry>.<setting>, ...)",
            )
        node = node[part]


def describe(trial: Trial) -> str:
    return ", ".join(f"{k}={v}" for k, v in trial.point.items())


def check_trial(trial: Trial, experiment: Experiment, path) -> None:
    """The checks that depend on the trial's point: aligner settings, batch split, size."""
    config_cls = ALIGNERS.get(trial.aligner).Config
    key = f"methods.{trial.method}"
    try:
        config = config_cls.from_dict(trial.settings)
        config.validate()
    except (TypeError, ValueError) as error:
        raise ExperimentError(path, key, f"{error} (trial {describe(trial)})") from None
    workers = experiment.resources.workers
    if config.batch_size % (workers * config.group_size):
        raise ExperimentError(
            path,
            f"{key}.batch_size",
            f"batch_size={config.batch_size} must split into whole prompt groups of {config.group_size} over "
            f"resources.workers={workers} (trial {describe(trial)})",
        )
    every_queries, queries = trial.eval.every_queries, trial.budget.reward_queries
    for limit, name in ((every_queries, "eval.every_queries"), (queries, "budget.reward_queries")):
        if limit is not None and limit % config.batch_size:
            raise ExperimentError(
                path,
                name,
                f"{limit} is not a multiple of {trial.method}'s batch_size={config.batch_size}: every method must "
                f"reach each multiple exactly, so that all are evaluated and stopped at the same reward queries "
                f"(trial {describe(trial)})",
            )
    if experiment.eval.videos % workers:
        raise ExperimentError(
            path, "eval.videos", f"{experiment.eval.videos} videos do not split over {workers} workers"
        )
    available = len(load_prompts(trial.prompts.eval))
    if trial.eval.videos > available:
        raise ExperimentError(
            path,
            "eval.videos",
            f"{trial.eval.videos} videos per evaluation, but prompts.eval has {available} prompts: at most "
            f"{available} (one video a prompt) (trial {describe(trial)})",
        )
    stopping = trial.stopping
    if stopping is not None and stopping.on == MEMBER_SPREAD and not hasattr(spec_class(trial.reward), "members"):
        raise ExperimentError(
            path,
            "stopping.on",
            f"{MEMBER_SPREAD} needs a reward with members, whose spread evaluation logs (toy_aesthetic, or an "
            f"`ensemble:` reward); this reward has none (trial {describe(trial)})",
        )
    check_size = getattr(MODELS.get(trial.model_name), "check_size", None)
    if check_size is not None:
        try:
            check_size(trial.frames, trial.height, trial.width, **trial.model_options)
        except ValueError as error:
            key = "sweep.resolution" if "resolution" in trial.point else "video.resolution"
            raise ExperimentError(path, key, f"{error} (trial {describe(trial)})") from None
