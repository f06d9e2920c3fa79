"""The reward seam: frames in, one differentiable score per video out.

`Reward.forward(frames, prompts)` takes frames [B, F, C, H, W] in [0, 1] and returns [B]. Image rewards
implement `score_images` on [N, C, H, W] and are averaged over frames (the paper's eq. 7: the
expectation over frames of a per-image reward). Preprocessing is done with torch ops so that gradients
reach the frames.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from vaderbench.registry import REWARDS


class Reward(nn.Module, ABC):
    """Higher is better. Reward models are frozen: their parameters never receive gradient."""

    #: fewest frames the reward can score (video rewards need the clip, so no frame subsampling below it)
    min_frames: int = 1
    #: videos of the base model this reward is fitted on before training (0: none). A reward that has some
    #: (a standardised ensemble: `rewards.ensemble`) scores them with `base_scores` and is fitted with
    #: `fit_to_base`; the trial loop does both at a trial's start, and keeps the fit in its checkpoints
    base_videos: int = 0

    @abstractmethod
    def forward(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...

    def base_scores(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """What `fit_to_base` needs of a batch of the base model's videos, [..., B] (batches concatenate on the
        last dimension)."""
        raise NotImplementedError(f"{type(self).__name__} is not fitted on the base model's videos")

    def fit_to_base(self, scores: torch.Tensor) -> dict[str, list[float]]:
        """Fit the reward on `base_scores` of `base_videos` videos; returns the fit (`load_base_fit` takes it)."""
        raise NotImplementedError(f"{type(self).__name__} is not fitted on the base model's videos")

    def load_base_fit(self, fit: dict[str, list[float]]) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not fitted on the base model's videos")

    def freeze(self) -> Reward:
        self.requires_grad_(False)
        return self.eval()


class ImageReward(Reward):
    """A per-image reward averaged over the (possibly subsampled) frames of each video."""

    @abstractmethod
    def score_images(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...

    def forward(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        b, f = frames.shape[:2]
        per_image_prompts = [p for p in prompts for _ in range(f)]
        return self.score_images(frames.flatten(0, 1), per_image_prompts).view(b, f).mean(dim=1)


class WeightedSum(Reward):
    """sum_i w_i R_i (the paper's VADER-Aesthetic+HPS is such a sum)."""

    def __init__(self, rewards: Mapping[str, Reward], weights: Mapping[str, float]):
        super().__init__()
        self.rewards = nn.ModuleDict(dict(rewards))
        self.weights = dict(weights)
        self.min_frames = max(r.min_frames for r in self.rewards.values())

    def forward(self, frames, prompts):
        return sum(self.weights[name] * reward(frames, prompts) for name, reward in self.rewards.items())


class RewardOptionError(ValueError):
    """A bad option of a reward spec, found before anything loads: `key` is its path inside the reward's entry
    (`aggregate`, `of[1]`), so that `vaderbench validate` can name `reward.<name>.<key>`."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def reward_entries(spec: str | Mapping[str, Any]) -> dict[str, tuple[float, dict[str, Any]]]:
    """A reward spec's entries, name -> (weight, constructor options)."""
    if isinstance(spec, str):
        return {spec: (1.0, {})}
    entries = {}
    for name, value in spec.items():
        options = dict(value) if isinstance(value, Mapping) else {"weight": value}
        entries[name] = (float(options.pop("weight", 1.0)), options)
    return entries


def single(entries: dict[str, tuple[float, dict[str, Any]]]) -> bool:
    """Whether a spec's entries build their one reward itself (one entry of weight 1), not a `WeightedSum`."""
    return len(entries) == 1 and next(iter(entries.values()))[0] == 1.0


def spec_class(spec: str | Mapping[str, Any]) -> type[Reward]:
    """The class `build_reward(spec)` returns, without building it (ValueError for an unknown name)."""
    entries = reward_entries(spec)
    classes = [REWARDS.get(name) for name in entries]
    return classes[0] if single(entries) else WeightedSum


def walk_spec(spec: str | Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, options) of every reward a spec builds, those nested in a reward's options included (an ensemble's
    members: its class lists them with `nested_specs(**options)`), loading nothing."""
    for name, (_, options) in reward_entries(spec).items():
        yield name, options
        nested_specs = getattr(REWARDS.get(name), "nested_specs", None)
        for nested in nested_specs(**options) if nested_specs is not None else []:
            yield from walk_spec(nested)


def spec_names(spec: str | Mapping[str, Any]) -> list[str]:
    """Every registered name a reward spec builds (`walk_spec`), so that a worker imports just their modules."""
    return [name for name, _ in walk_spec(spec)]


#: the rewards built inside `shared_rewards()`, by name and options (None outside it)
_shared: dict[str, Reward] | None = None


@contextmanager
def shared_rewards() -> Iterator[None]:
    """Inside it, `build_reward` builds each reward (name and options) once and hands out that one copy wherever
    a spec names it again: a trial's reward, an ensemble's member and `eval.reference_reward` share one frozen
    reward model (HPSv2's and PickScore's ViT-H are about 1B parameters each) instead of loading it per spec."""
    global _shared
    previous, _shared = _shared, {}
    try:
        yield
    finally:
        _shared = previous


def new_reward(name: str, options: dict[str, Any]) -> Reward:
    """The reward `name` built with `options`, or inside `shared_rewards()` the copy built already."""
    if _shared is None:
        return REWARDS.get(name)(**options)
    key = json.dumps([name, options], sort_keys=True, default=str)
    if key not in _shared:
        _shared[key] = REWARDS.get(name)(**options)
    return _shared[key]


def base_videos_of(spec: str | Mapping[str, Any]) -> int:
    """The base-model videos a trial samples to fit the reward of `spec` (`Reward.base_videos`: the most any part
    of it needs), loading nothing: a reward class tells it with a classmethod `base_videos_of(**options)`."""
    counts = [
        REWARDS.get(name).base_videos_of(**options)
        for name, options in walk_spec(spec)
        if hasattr(REWARDS.get(name), "base_videos_of")
    ]
    return max(counts, default=0)


def build_reward(spec: str | Mapping[str, Any], device: str | torch.device = "cpu") -> Reward:
    """A reward from its YAML form: a name, {name: weight, ...}, or {name: {weight: w, **options}, ...}."""
    entries = reward_entries(spec)
    rewards = {name: new_reward(name, options) for name, (_, options) in entries.items()}
    weights = {name: weight for name, (weight, _) in entries.items()}
    if single(entries):
        return next(iter(rewards.values())).freeze().to(device)
    return WeightedSum(rewards, weights).freeze().to(device)
