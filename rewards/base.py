"""The reward seam: frames in, one differentiable score per video out.

`Reward.forward(frames, prompts)` takes frames [B, F, C, H, W] in [0, 1] and returns [B]. Image rewards
implement `score_images` on [N, C, H, W] and are averaged over frames (the paper's eq. 7: the
expectation over frames of a per-image reward). Preprocessing is done with torch ops so that gradients
reach the frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vaderbench.registry import REWARDS


class Reward(nn.Module, ABC):
    """Higher is better. Reward models are frozen: their parameters never receive gradient."""

    #: fewest frames the reward can score (video rewards need the clip, so no frame subsampling below it)
    min_frames: int = 1

    @abstractmethod
    def forward(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor: ...

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


def spec_class(spec: str | Mapping[str, Any]) -> type[Reward]:
    """The class `build_reward(spec)` returns, without building it (ValueError for an unknown name)."""
    entries = reward_entries(spec)
    classes = [REWARDS.get(name) for name in entries]
    if len(entries) == 1 and next(iter(entries.values()))[0] == 1.0:
        return classes[0]
    return WeightedSum


def spec_names(spec: str | Mapping[str, Any]) -> list[str]:
    """Every registered name a reward spec builds, those nested in a reward's options included (an ensemble's
    members: its class lists them with `nested_specs(**options)`), so that a worker imports just their modules."""
    names = []
    for name, (_, options) in reward_entries(spec).items():
        names.append(name)
        nested_specs = getattr(REWARDS.get(name), "nested_specs", None)
        for nested in nested_specs(**options) if nested_specs is not None else []:
            names += spec_names(nested)
    return names


def build_reward(spec: str | Mapping[str, Any], device: str | torch.device = "cpu") -> Reward:
    """A reward from its YAML form: a name, {name: weight, ...}, or {name: {weight: w, **options}, ...}."""
    entries = reward_entries(spec)
    rewards = {name: REWARDS.get(name)(**options) for name, (_, options) in entries.items()}
    weights = {name: weight for name, (weight, _) in entries.items()}
    if len(rewards) == 1 and next(iter(weights.values())) == 1.0:
        return next(iter(rewards.values())).freeze().to(device)
    return WeightedSum(rewards, weights).freeze().to(device)
