"""The toy world's action reward (the VideoMAE counterpart): the probability a small video classifier
gives to the motion direction the prompt names ("moving left", ..., "standing still"). Gold: 1 where the
object's motion read from the pixels (its centroid, first to last frame) is the named direction, else 0;
from pixels rather than the classifier, which is the learned reward itself."""

from __future__ import annotations

from pathlib import Path

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import Reward
from vaderbench.toyworld.gold import direction_correct
from vaderbench.toyworld.nets import DirectionClassifier
from vaderbench.toyworld.vocab import DIRECTIONS, first_word_of
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_network


def load_direction_classifier(weights: str | Path | None = None) -> DirectionClassifier:
    return load_network(DirectionClassifier(), "direction_classifier", Path(weights) if weights else WEIGHTS_DIR)


@REWARDS.register(
    "toy_action", "toy world: probability of the prompt's motion direction from a video classifier (VideoMAE action)"
)
class ToyActionReward(Reward):
    min_frames = 2
    prompt_free = False
    oracle = "caption"  # the reference video that scores best (vaderbench.toyworld.references)

    def __init__(self, weights: str | None = None):
        super().__init__()
        self.classifier = load_direction_classifier(weights)

    def forward(self, frames, prompts):
        if frames.shape[1] < self.min_frames:
            raise ValueError(f"toy_action needs at least {self.min_frames} frames, got {frames.shape[1]}")
        named = torch.tensor([DIRECTIONS.index(first_word_of(p, DIRECTIONS, "direction")) for p in prompts])
        probability = self.classifier(frames).softmax(dim=-1)
        return probability.gather(1, named.to(frames.device)[:, None]).squeeze(1)

    def gold(self, frames, prompts):
        return direction_correct(frames, prompts)
