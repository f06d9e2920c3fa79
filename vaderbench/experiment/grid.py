"""The sweep: the experiment's grid expanded into trials, each a fully resolved point.

Sweep keys are `method`, `seed`, `resolution`, `frames`, `lr`, `K` or any dotted key of the experiment
(`policy.precision`, `sampler.num_steps`, `methods.ddpo.inner_epochs`, ...). A key that does not apply to
a method does not multiply its trials: `K` (VADER's `truncation.k`) only splits methods that truncate,
`methods.ddpo.*` only DDPO's trials. A method entry whose name is not an aligner's (`ddpo-on-policy:
{aligner: ddpo, ...}`) is a *variant*, logged as the `variant` param; an entry's `policy:` overrides the
file's policy switches for its trials, and its sampler keys (`num_steps`, `eta`, `guidance_scale`) the
file's `sampler:` for its training samples (evaluation samples with the file's, the same for every method).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pydantic import ValidationError

from vaderbench.experiment.schema import (
    SWEEP_ALIASES,
    Budget,
    Checkpointing,
    Evaluation,
    Experiment,
    PolicySwitches,
    Prompts,
    Sampler,
    Section,
    Stopping,
    first_problem,
    height_width,
    resolution_label,
)


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: everything a worker needs to build and run it (picklable data).

    The file's sections are the schema's own models (`trial.eval.videos`, `trial.budget.steps`): given as
    mappings (`from_dict`, `dataclasses.replace(trial, eval={...})`) they are validated into them, so a
    misspelt key is refused where the trial is made. `to_dict` gives them back as plain dicts (Ray's config,
    the id's digest, `config/trial.json`), and `from_dict(trial.to_dict()) == trial`.
    """

    #: stable identifier (the same point of the same file gets the same id in every invocation)
    id: str
    #: the swept values that apply to this trial, under the sweep's own keys
    point: dict[str, Any]
    #: method entry name (an aligner's name, or a variant's)
    method: str
    #: the registered aligner
    aligner: str
    #: aligner settings, the shared sampler folded in: a dict, checked by the aligner's own `Config`
    settings: dict[str, Any]
    seed: int
    frames: int
    height: int
    width: int
    model: Any
    reward: Any
    prompts: Prompts
    #: the file's `policy:` with the method entry's own switches over it
    policy: PolicySwitches
    budget: Budget
    eval: Evaluation
    #: the file's `sampler:`: every method's evaluation videos are sampled with it, whatever a method's entry
    #: sets for its own training samples (Flow-GRPO trains on SDE samples and is evaluated with the ODE)
    eval_sampler: Sampler
    checkpoint: Checkpointing
    #: the file's `stopping:` rule (`vaderbench.stopping`), or None: the trial runs to its budget
    stopping: Stopping | None = None
    workers: int = 1
    #: videos (reward queries) a training step samples over all workers: its method's `batch_size`
    batch_size: int = 1
    #: the modules that register this trial's aligner, model and rewards: a worker imports just these
    #: instead of the whole catalogue (every real model and reward library: seconds per trial)
    modules: tuple[str, ...] = ()
    #: "final" (a trial of the grid) or "tune" (a trial of the tuning stage: `experiment.tuning`)
    stage: str = "final"

    def __post_init__(self):
        for name, model in SECTIONS.items():
            object.__setattr__(self, name, _section(name, model, getattr(self, name)))
        object.__setattr__(self, "modules", tuple(self.modules))  # a list after a trip through JSON

    @property
    def steps(self) -> int | None:
        """The training steps its budget allows: `budget.steps`, or fewer where its reward queries (one per video
        sampled, `batch_size` a step) run out first; None when only wall time limits it."""
        limits = [self.budget.steps]
        if self.budget.reward_queries is not None:
            limits.append(math.ceil(self.budget.reward_queries / self.batch_size))
        limits = [limit for limit in limits if limit is not None]
        return min(limits) if limits else None

    def evaluates_after(self, step: int) -> bool:
        """Whether it evaluates after training step `step` (not counting the last, which always does)."""
        every_queries = self.eval.every_queries
        if every_queries is None:
            return step % self.eval.every == 0
        return (step * self.batch_size) // every_queries > ((step - 1) * self.batch_size) // every_queries

    @property
    def model_name(self) -> str:
        return model_name_and_options(self.model)[0]

    @property
    def model_options(self) -> dict[str, Any]:
        """The model factory's keyword arguments: the spec's keys other than `name`."""
        return model_name_and_options(self.model)[1]

    @property
    def variant(self) -> str | None:
        return None if self.method == self.aligner else self.method

    @property
    def resolution(self) -> str:
        return resolution_label((self.height, self.width))

    @property
    def K(self) -> int | None:
        truncation = self.settings.get("truncation")
        if not isinstance(truncation, dict):
            return None
        return truncation.get("k", 1) if truncation.get("mode", "last") == "last" else None

    def params(self) -> dict[str, str]:
        """The MLflow params of the trial's run: its point in the sweep and what identifies its setting."""
        params: dict[str, Any] = {
            "method": self.aligner,
            "resolution": self.resolution,
            "frames": self.frames,
            "seed": self.seed,
            "lr": self.settings.get("lr", _default(self.aligner, "lr")),
            "model": str(model_name_and_options(self.model)[0]),
            "reward": reward_label(self.reward),
            "num_steps": self.settings.get("num_steps"),
            "workers": self.workers,
            "trial_id": self.id,
            "stage": self.stage,
        }
        if self.variant:
            params["variant"] = self.variant
        if self.K is not None:
            params["K"] = self.K
        if self.stopping is not None:
            params["stopping"] = json.dumps(self.stopping.model_dump(), sort_keys=True)
        for key, value in self.settings.items():
            params.setdefault(key, value if not isinstance(value, dict) else json.dumps(value, sort_keys=True))
        for key, value in self.policy.model_dump().items():
            params.setdefault(key, value)
        for key, value in self.point.items():
            params.setdefault(key, value)
        return {k: str(v) for k, v in params.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (sections as dicts): what Ray's config carries and the trial's id digests."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in SECTIONS:
            if values[name] is not None:
                values[name] = values[name].model_dump(mode="python")
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Trial:
        """The trial `to_dict` gave; ValueError naming the key where a section does not pass the schema."""
        return cls(**values)


#: Trial's fields that are sections of the experiment file, and the schema's model of each
SECTIONS: dict[str, type[Section]] = {
    "prompts": Prompts,
    "policy": PolicySwitches,
    "budget": Budget,
    "eval": Evaluation,
    "eval_sampler": Sampler,
    "checkpoint": Checkpointing,
    "stopping": Stopping,
}


def _section(name: str, model: type[Section], value: Any) -> Section | None:
    """A trial's section as its model: a mapping is validated (unknown keys, types, ranges) into one."""
    if value is None and name == "stopping":
        return None
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"trial section {name}: expected a {model.__name__} or a mapping, got {value!r}")
    try:
        return model.model_validate(dict(value))
    except ValidationError as error:
        key, message = first_problem(error, dict(value), model)
        key = key or ".".join(str(part) for part in error.errors()[0]["loc"])  # a missing key is not in the data
        raise ValueError(f"trial section {name}" + (f".{key}" if key else "") + f": {message}") from None


def model_name_and_options(spec: str | Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A model spec (`toy`, or `{name: toy-flow, ...options}`) as its registered name and its options."""
    if isinstance(spec, str):
        return spec, {}
    options = dict(spec)
    return options.pop("name", None), options


def reward_label(spec: Any) -> str:
    """A reward's name for the params: `toy_aesthetic`, `1*aesthetic+1*hpsv2` for a sum, a reward's options after
    it (`1*ensemble(aggregate=min,of=toy_aesthetic)`): two settings of a reward are two series."""
    from vaderbench.rewards.base import reward_entries

    if isinstance(spec, str):
        return spec
    labels = []
    for name, (weight, options) in reward_entries(spec).items():
        shown = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(options.items()))
        labels.append(f"{weight:g}*{name}" + (f"({shown})" if shown else ""))
    return "+".join(labels)


def _default(aligner: str, key: str):
    from vaderbench.registry import ALIGNERS

    return getattr(ALIGNERS.get(aligner).Config(), key)


def aligner_of(entry: str, settings: dict[str, Any]) -> str:
    return settings.get("aligner", entry)


def has_setting(aligner: str, key: str) -> bool:
    from vaderbench.registry import ALIGNERS

    return key in {f.name for f in fields(ALIGNERS.get(aligner).Config)}


def set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        values = values.setdefault(part, {})
        if not isinstance(values, dict):
            raise ValueError(f"{dotted!r} goes through a setting that is not a mapping")
    values[parts[-1]] = value


def applies(key: str, entry: str, aligner: str) -> bool:
    """Whether sweep key `key` splits the trials of method entry `entry`."""
    target = SWEEP_ALIASES.get(key, key)
    if target in ("lr",) or target.startswith("truncation."):
        return has_setting(aligner, target.split(".")[0])
    if target.startswith("methods."):
        return target.split(".")[1] == entry
    return True


#: the file's sections a method entry may replace for its own trials (a defence compared in one study)
ENTRY_SECTIONS = ("reward", "stopping")


def resolved_settings(experiment: dict[str, Any], entry: str) -> dict[str, Any]:
    """A method entry's aligner settings: the file's `sampler:` (every method's), then the entry's own keys,
    which win for this method only (`methods.ddpo.num_steps: 50` samples DDPO alone with 50 steps)."""
    settings = {**experiment["sampler"], **copy.deepcopy(experiment["methods"][entry])}
    for key in ("aligner", "policy", *ENTRY_SECTIONS):
        settings.pop(key, None)
    return settings


def trial_id(entry: str, point: dict[str, Any], resolved: dict[str, Any]) -> str:
    """Readable (method, resolution, seed, K) plus a digest of everything the trial will do: editing the
    file changes the ids of the trials it changes, so `--resume` never mistakes them for finished ones."""
    digest = hashlib.blake2b(json.dumps(resolved, sort_keys=True, default=str).encode(), digest_size=4).hexdigest()
    short = {"resolution": "r", "seed": "s", "K": "K"}
    readable = "".join(f"_{short[k]}{v}" for k, v in point.items() if k in short)
    return f"{entry}{readable}_{digest}".replace(" ", "").replace("/", "-").replace(",", "x")


def expand(experiment: Experiment) -> list[Trial]:
    """Every trial of the grid, in a stable order (methods as listed, then the sweep's order)."""
    base = experiment.model_dump(mode="python")
    entries = [str(e) for e in base["sweep"].get("method", list(base["methods"]))]
    axes = [(k, v) for k, v in base["sweep"].items() if k != "method"]
    trials, seen = [], set()
    for entry in entries:
        if entry not in base["methods"]:
            raise ValueError(
                f"sweep.method names {entry!r}, which is not an entry of `methods` ({', '.join(base['methods'])})"
            )
        aligner = aligner_of(entry, base["methods"][entry])
        own_axes = [(k, v) for k, v in axes if applies(k, entry, aligner)]
        for values in itertools.product(*(v for _, v in own_axes)):
            point = {"method": entry, **dict(zip((k for k, _ in own_axes), values))}
            identity = json.dumps(point, sort_keys=True, default=str)
            if identity in seen:
                continue
            seen.add(identity)
            trials.append(resolve(base, entry, aligner, point))
    return trials


def resolve(base: dict[str, Any], entry: str, aligner: str, point: dict[str, Any]) -> Trial:
    values = copy.deepcopy(base)
    for key, value in point.items():
        if key == "method":
            continue
        target = SWEEP_ALIASES.get(key, key)
        if target == "lr" or target.startswith("truncation."):
            set_dotted(values["methods"][entry], target, value)
        else:
            set_dotted(values, target, value)
    # a method entry may override policy switches (a memory-ablation variant turns on checkpointing)
    values["policy"].update(values["methods"][entry].get("policy", {}))
    # and its own reward (a defence such as a conservative ensemble, compared beside the plain reward) and
    # stopping rule (`stopping: null` for none where the file has one)
    for section in ENTRY_SECTIONS:
        values[section] = values["methods"][entry].get(section, values[section])
    # the swept values pass the same schema as the file's own (types, ranges, unknown keys)
    try:
        experiment = Experiment.model_validate(values)
    except ValidationError as error:
        key, message = first_problem(error, values)
        raise ValueError(f"{key}: {message}") from None
    checked = experiment.model_dump(mode="python")
    height, width = height_width(checked["video"]["resolution"])
    trial = Trial(
        id="",
        point=point,
        method=entry,
        aligner=aligner,
        settings=resolved_settings(checked, entry),
        seed=int(checked["seed"]),
        frames=int(checked["video"]["frames"]),
        height=height,
        width=width,
        model=checked["model"],
        reward=checked["reward"],
        prompts=experiment.prompts,
        policy=experiment.policy,
        budget=experiment.budget,
        eval=experiment.eval,
        eval_sampler=experiment.sampler,
        checkpoint=experiment.checkpoint,
        stopping=experiment.stopping,
        workers=int(checked["resources"]["workers"]),
        batch_size=batch_size_of(aligner, checked["methods"][entry]),
        modules=registering_modules(
            aligner,
            checked["model"],
            [checked["reward"], *experiment.eval.scoring_rewards().values()],
            checked["prompts"].values(),
        ),
    )
    resolved = trial.to_dict()
    if resolved["stopping"] is None:  # a file without the rule keeps the ids it had before the rule existed
        del resolved["stopping"]
    return dataclasses.replace(trial, id=trial_id(entry, point, resolved))


def batch_size_of(aligner: str, entry: dict[str, Any]) -> int:
    """A method entry's `batch_size`, or its aligner's default."""
    from vaderbench.registry import ALIGNERS

    return int(entry.get("batch_size", ALIGNERS.get(aligner).Config.batch_size))


def registering_modules(aligner: str, model: Any, rewards: list[Any], prompt_sets) -> tuple[str, ...]:
    from vaderbench.registry import ALIGNERS, MODELS, PROMPT_SETS, REWARDS
    from vaderbench.rewards.base import spec_names

    model_name, _ = model_name_and_options(model)
    names = [name for reward in rewards for name in spec_names(reward)]
    factories = [ALIGNERS.get(aligner), MODELS.get(model_name), *(REWARDS.get(r) for r in names)]
    factories += [PROMPT_SETS.get(p) for p in prompt_sets if p in PROMPT_SETS]
    return tuple(dict.fromkeys(f.__module__ for f in factories))
