"""Rewards computed from the pixels alone: no weights, no prompt. Useful as simple, exact objectives."""

from __future__ import annotations

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward, Reward


@REWARDS.register("colourfulness", "mean HSV-style saturation of the frames (max - min channel), in [0, 1]")
class Colourfulness(ImageReward):
    def score_images(self, images, prompts):
        saturation = images.amax(dim=1) - images.amin(dim=1)
        return saturation.mean(dim=(1, 2))


@REWARDS.register("temporal_smoothness", "minus the mean squared change between consecutive frames, in [-1, 0]")
class TemporalSmoothness(Reward):
    min_frames = 2

    def forward(self, frames, prompts):
        if frames.shape[1] < 2:
            raise ValueError("temporal_smoothness needs at least 2 frames; do not subsample frames for it")
        return -((frames[:, 1:] - frames[:, :-1]) ** 2).mean(dim=(1, 2, 3, 4))
