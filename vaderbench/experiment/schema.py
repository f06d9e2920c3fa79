"""The experiment file's schema (pydantic): keys, types and ranges, and the error every check raises.

A mistake in the file (an unknown key, a wrong type, a value out of range) becomes an `ExperimentError`
that names the file, the key path and what was expected. Names (methods, rewards, models, prompt sets)
and the settings that depend on a trial's point in the sweep are checked in `checks` over the expanded
grid (`grid`); the file is read in `load`. This module imports none of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vaderbench.stopping import BEST_OF, MEMBER_SPREAD

Resolution = int | tuple[int, int]

#: what a name that becomes a folder may hold (`runs/<name>`, a trial's `trials/<method>_...` folder): one
#: path component, so that no experiment file can make a run write outside its output folder
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)


class ExperimentError(ValueError):
    """A mistake in an experiment file: `path: key: message`."""

    def __init__(self, path: str | Path, key: str, message: str):
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + message)
        self.key = key


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prompts(Section):
    #: a registered prompt set (`vaderbench list`) or a text file with one prompt per line
    train: str = "toy-train"
    #: held-out prompts of the evaluation
    eval: str = "toy-heldout"


class Video(Section):
    frames: int = Field(8, ge=1)
    #: side length in pixels, or [height, width]
    resolution: Resolution = 32


class Sampler(Section):
    """Sampling of training and evaluation, one for every method of the study (a fair comparison).

    It replaces the aligners' own sampler defaults (DDPO's 50 steps and guidance 5, ...); a method entry
    that sets `num_steps`, `eta` or `guidance_scale` itself overrides the file's for that method's training
    samples only: evaluation videos are always sampled with the file's.
    """

    num_steps: int = Field(10, ge=1)
    #: each step's noise: DDIM's eta (0 deterministic, 1 the DDPM posterior's variance), or on a flow model
    #: Flow-GRPO's noise level `a` (0 is Euler's ODE; 0.7 in Flow-GRPO)
    eta: float = Field(1.0, ge=0, le=1)
    guidance_scale: float = Field(3.0, ge=0)


class PolicySwitches(Section):
    """LoRA and the memory switches of the policy (`vaderbench.policy.Policy`)."""

    lora_rank: int = Field(8, ge=1)
    lora_alpha: float | None = None
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] | None = None
    precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    offload_activations: bool = False


class Budget(Section):
    """When a trial stops: the first limit reached (at least one must be set)."""

    steps: int | None = Field(100, ge=1)
    reward_queries: int | None = Field(None, ge=1)
    wall_time_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self):
        if self.steps is None and self.reward_queries is None and self.wall_time_s is None:
            raise ValueError("set at least one of steps, reward_queries, wall_time_s")
        return self


class Evaluation(Section):
    """Held-out evaluation: the same prompts and noise for every method and every trial."""

    #: evaluate every N training steps (aligner rounds; and before the first and after the last)
    every: int = Field(10, ge=1)
    #: instead of `every`: evaluate each time a trial's reward queries reach a multiple of N, so that methods with
    #: different batches are evaluated at the same query counts (every method's batch must divide N)
    every_queries: int | None = Field(None, ge=1)
    #: held-out videos per evaluation (the first `videos` prompts of a fixed shuffle of the eval set)
    videos: int = Field(8, ge=1)
    #: seed of the evaluation's prompt choice and noise (not the trial's seed: all trials share it)
    seed: int = 0
    #: which held-out prompts: the final evaluation's (`test`) or the tuning stage's (`validation`: the next
    #: `videos` of the same shuffle, with noise of their own); the tuning stage sets it on its trials
    split: Literal["test", "validation"] = "test"
    #: evaluation videos saved as GIF at the start and the end of a trial
    sample_videos: int = Field(4, ge=0)
    #: a learned reward (the form of the file's `reward:`) that also scores every evaluation video, logged as
    #: `eval_reference_reward_mean`: one axis for method entries that train on rewards of their own (defences)
    reference_reward: str | dict[str, Any] | None = None
    #: a reward no method entry trains on (the form of `reward:`) that also scores every evaluation video, logged as
    #: `eval_held_out_reward_mean`: where the toy world's gold is missing (real models), the defences report's
    #: stand-in for the truth (the field's practice: train on one reward, judge on another)
    held_out_reward: str | dict[str, Any] | None = None
    #: every evaluation reads the trained LoRA adapter at each of these scales of its contribution (DRaFT's
    #: interpolation toward the base model: 0 is the base, 1 the trained policy, whose metrics keep their names;
    #: scale s logs the same metrics as `<metric>_lora<s>`); each scale is one more evaluation
    lora_scales: list[Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: [1.0], min_length=1)

    def scoring_rewards(self) -> dict[str, Any]:
        """The rewards besides a trial's own that score its evaluation videos, by key (`reference_reward`, ...)."""
        specs = {"reference_reward": self.reference_reward, "held_out_reward": self.held_out_reward}
        return {key: spec for key, spec in specs.items() if spec is not None}

    @field_validator("lora_scales")
    @classmethod
    def _trained_scale_and_distinct(cls, value: list[float]):
        if 1.0 not in value:
            raise ValueError(
                f"expected a list that includes 1.0 (the trained adapter's own evaluation, which tuning and the "
                f"report read), got {value}"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"a scale is listed twice: {value}")
        return value


class Stopping(Section):
    """Early stopping that keeps the best checkpoint (`vaderbench.stopping`): at every evaluation the rule judges
    the trial's evaluation; the trial stops after `patience` that break it, and ends on the weights it kept."""

    #: `member_spread` (the reward ensemble's spread) or an evaluation metric to keep the highest of
    on: str
    #: evaluations in a row that break the rule before the trial stops
    patience: int = Field(1, ge=1)
    #: member_spread only (default 1.5 there): a spread above `rise` times the step-0 spread breaks the rule
    rise: float | None = Field(None, gt=1)

    @field_validator("on")
    @classmethod
    def _known_rule(cls, value: str):
        if value not in (MEMBER_SPREAD, *BEST_OF):
            raise ValueError(f"expected one of {', '.join((MEMBER_SPREAD, *BEST_OF))}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _rise_with_spread(self):
        if self.on != MEMBER_SPREAD:
            if self.rise is not None:
                raise ValueError(f"rise applies to on: {MEMBER_SPREAD} only (on: {self.on} keeps its highest value)")
        elif self.rise is None:
            self.rise = 1.5
        return self


class Checkpointing(Section):
    #: save the aligner's state every N training steps (and at the end)
    every: int = Field(10, ge=1)
    #: checkpoints Ray keeps per trial
    keep: int = Field(2, ge=1)


class Resources(Section):
    #: a Ray cluster to join ("auto", "ray://host:10001"); default: RAY_ADDRESS, else a local Ray
    address: str | None = None
    #: data-parallel workers per trial (DDP; gloo on CPU, NCCL on GPU)
    workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    #: trials at once (default: as many as the cluster's resources allow)
    max_concurrent_trials: int | None = Field(None, ge=1)
    #: worker failures a trial survives (it resumes from its last checkpoint)
    max_failures: int = Field(2, ge=0)


class Tracking(Section):
    #: MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///<output>/mlflow.db)
    uri: str | None = None
    #: MLflow experiment (default: the experiment's name)
    experiment: str | None = None


class Domain(Section):
    """Where a tuned setting is searched: exactly one of `loguniform: [low, high]`, `uniform: [low, high]`,
    `choice: [value, ...]`."""

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in ("loguniform", "uniform", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of loguniform: [low, high], uniform: [low, high], choice: [...]")
        low_high = self.loguniform or self.uniform
        if low_high is not None and not low_high[0] < low_high[1]:
            raise ValueError(f"expected [low, high] with low < high, got {list(low_high)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"a loguniform range must be positive, got {list(self.loguniform)}")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        return self


class EarlyStopping(Section):
    """Tune's ASHA scheduler on the validation reward: at steps grace, grace x reduction, ... a trial below the
    best 1/reduction of the trials that reached the same step before it stops."""

    grace: int = Field(20, ge=1)
    reduction: int = Field(3, ge=2)


class Tuning(Section):
    """The tuning stage: each method's settings searched on tuning seeds before the final grid runs at the best."""

    #: method entry -> setting (a sweep key: lr, K, or a dotted key) -> where to search it
    space: dict[str, dict[str, Domain]]
    #: settings drawn per method (per resolution when `resolution` is not set)
    trials: int = Field(6, ge=1)
    #: every drawn setting runs on each of these seeds; they must differ from the final grid's seeds
    seeds: list[int] = Field(default_factory=lambda: [1000, 1001], min_length=1)
    #: a trial's tuning score: the mean of its last N evaluations (one evaluation's noise does not choose)
    score_evaluations: int = Field(2, ge=1)
    #: after the draws, also run the settings half a part either side of the best one, key by key
    refine: bool = False
    #: tune at this one resolution and use its choice at every resolution (default: tune each resolution)
    resolution: Resolution | None = None
    #: the tuning trials' budget (default: the file's `budget`)
    budget: Budget | None = None
    #: stop trials that fall behind (default on); `early_stopping: null` runs every trial to the budget
    early_stopping: EarlyStopping | None = EarlyStopping()
    #: seed of the draws
    seed: int = 0

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution_form(cls, value):
        return parse_resolution(value) if isinstance(value, str) else value


SWEEP_ALIASES = {
    "method": "method",
    "seed": "seed",
    "resolution": "video.resolution",
    "frames": "video.frames",
    "lr": "lr",
    "K": "truncation.k",
}


def every_aligner() -> dict[str, dict[str, Any]]:
    from vaderbench.aligner import registered_aligners  # torch: only when the file names no methods

    return {name: {} for name in registered_aligners()}


class Experiment(Section):
    #: the study's name: MLflow experiment and default output folder (default: the file's stem)
    name: str | None = None
    #: base model: a registered name, or {name: ..., <its options>}
    model: str | dict[str, Any] = "toy"
    #: reward: a registered name, {name: weight, ...} or {name: {weight: w, <options>}, ...}
    reward: str | dict[str, Any] = "toy_clip"
    prompts: Prompts = Prompts()
    video: Video = Video()
    sampler: Sampler = Sampler()
    #: method entries: aligner name (or any name with `aligner: <name>`, a variant) -> its settings (default:
    #: every registered aligner at its defaults)
    methods: dict[str, dict[str, Any]] = Field(default_factory=every_aligner)
    policy: PolicySwitches = PolicySwitches()
    #: the grid: method, seed, resolution, frames, lr, K, or any dotted key (policy.precision,
    #: sampler.num_steps, methods.ddpo.inner_epochs, ...) -> list of values
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    #: the seed when `sweep` has none
    seed: int = 0
    budget: Budget = Budget()
    eval: Evaluation = Evaluation()
    #: early stopping that keeps the best checkpoint (none: every trial runs to its budget on its last weights)
    stopping: Stopping | None = None
    checkpoint: Checkpointing = Checkpointing()
    resources: Resources = Resources()
    tracking: Tracking = Tracking()
    #: output folder (default: runs/<name>)
    output: str | None = None
    #: the tuning stage (none: every method runs at the settings the file gives it)
    tune: Tuning | None = None

    @field_validator("video", mode="before")
    @classmethod
    def _resolution_form(cls, value):
        if isinstance(value, dict) and isinstance(value.get("resolution"), str):
            value = {**value, "resolution": parse_resolution(value["resolution"])}
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None):
        return value if value is None else safe_name(value)

    @field_validator("methods")
    @classmethod
    def _safe_entries(cls, value: dict[str, dict[str, Any]]):
        for entry in value:
            safe_name(entry, "a method entry")
        return value

    @field_validator("output")
    @classmethod
    def _output_inside(cls, value: str | None):
        if value is not None:
            parts = Path(value).parts
            if not parts or Path(value).is_absolute() or any(not SAFE_NAME.fullmatch(p) or p == ".." for p in parts):
                raise ValueError(
                    f"expected a relative folder of plain names (runs/my_study), without `..`, got {value!r}; "
                    "`vaderbench run --output DIR` writes anywhere"
                )
        return value

    @field_validator("sweep")
    @classmethod
    def _sweep_lists(cls, value: dict[str, list[Any]]):
        for key, values in value.items():
            if not values:
                raise ValueError(f"sweep key {key!r} has no values")
        return value


def safe_name(value: str, what: str = "a name") -> str:
    """`value` if it is one plain path component; ValueError otherwise."""
    if not SAFE_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{what} becomes a folder name: expected letters, digits and -_. (not empty, not . or ..), got {value!r}"
        )
    return value


def parse_resolution(value: Any) -> Resolution:
    """64, "64", "64x48" or [64, 48] -> 64 or (64, 48)."""
    if isinstance(value, bool):
        raise ValueError(f"a resolution is a side length or HxW, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    if isinstance(value, str) and re.fullmatch(r"\d+(x\d+)?", value.strip()):
        parts = [int(p) for p in value.strip().split("x")]
        return parts[0] if len(parts) == 1 else (parts[0], parts[1])
    raise ValueError(f"a resolution is a side length (64) or HxW (64x48 or [64, 48]), got {value!r}")


def height_width(resolution: Resolution) -> tuple[int, int]:
    return (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)


def resolution_label(resolution: Resolution) -> str:
    h, w = height_width(resolution)
    return str(h) if h == w else f"{h}x{w}"


def key_path(loc: tuple, data: Any) -> str:
    """The file's key path of a pydantic error location (`video.resolution`, `policy.lora_targets[0]`).

    Followed through the file's own data: pydantic also puts in the location the names of the union
    members it tried (`int`, `tuple[int, int]`, ...), which are no keys of the file and are left out.
    """
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(node, dict) and item in node:
            parts.append(("." if parts else "") + str(item))
            node = node[item]
        elif isinstance(node, (list, tuple)) and isinstance(item, int) and 0 <= item < len(node):
            parts.append(f"[{item}]")
            node = node[item]
    return "".join(parts)


def parse_experiment(data: dict[str, Any], path: str | Path = "<experiment>") -> Experiment:
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as error:
        raise ExperimentError(path, *first_problem(error, data)) from None
    if experiment.name is None:
        try:
            experiment.name = safe_name(Path(path).stem, "the file's stem (the default `name`)")
        except ValueError as error:
            raise ExperimentError(path, "name", f"{error}; set `name:`") from None
    return experiment


def first_problem(error: ValidationError, data: Any, model: type[BaseModel] = Experiment) -> tuple[str, str]:
    """(the file's key path, what was expected) of the first error of validating `data` as an Experiment (or as
    `model`, one of its sections: the key path is then the section's own)."""
    first = error.errors()[0]
    key = key_path(first["loc"], data)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
        section = key.rsplit(".", 1)[0] if "." in key else None
        known = _known_keys(section, model)
        if known:
            message += f"; expected one of: {', '.join(known)}"
    elif "input" in first and first["type"] not in ("missing", "value_error"):
        message += f" (got {first['input']!r})"
    extra = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
    return key, message + extra


def _known_keys(section: str | None, model: type[BaseModel]) -> list[str]:
    for part in section.split(".") if section else []:
        annotation = model.model_fields.get(part)
        if (
            annotation is None
            or not isinstance(annotation.annotation, type)
            or not issubclass(annotation.annotation, BaseModel)
        ):
            return []
        model = annotation.annotation
    return list(model.model_fields)
