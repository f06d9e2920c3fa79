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


def build_reward(spec: str | Mapping[str, Any], device: str | torch.device = "cpu") -> Reward:
    """A reward from its YAML form: a name, {name: weight, ...}, or {name: {weight: w, **options}, ...}."""
    if isinstance(spec, str):
        return REWARDS.get(spec)().freeze().to(device)
    rewards, weights = {}, {}
    for name, value in spec.items():
        options = dict(value) if isinstance(value, Mapping) else {"weight": value}
        weights[name] = float(options.pop("weight", 1.0))
        rewards[name] = REWARDS.get(name)(**options)
    if len(rewards) == 1 and next(iter(weights.values())) == 1.0:
        return next(iter(rewards.values())).freeze().to(device)
    return WeightedSum(rewards, weights).freeze().to(device)
