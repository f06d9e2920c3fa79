"""The toy world's object-removal reward (the YOLOS counterpart): minus the probability that the shape
the prompt names is present, from a per-frame multi-label shape detector, averaged over frames. Gold: the
fraction of frames in which that detector does not see the named shape (logit <= 0). It is the learned
model thresholded, not an independent truth: the pixels cannot tell a shape reliably at 16 px."""

from __future__ import annotations

from pathlib import Path

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.toyworld.gold import shape_absent
from vaderbench.toyworld.nets import ShapeDetector
from vaderbench.toyworld.vocab import SHAPES, first_word_of
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_network


def load_detector(weights: str | Path | None = None) -> ShapeDetector:
    return load_network(ShapeDetector(), "shape_detector", Path(weights) if weights else WEIGHTS_DIR)


@REWARDS.register(
    "toy_object_removal", "toy world: minus the detected probability of the shape the prompt names (YOLOS removal)"
)
class ToyObjectRemovalReward(ImageReward):
    prompt_free = False
    oracle = "background"  # the reference video that scores best (vaderbench.toyworld.references)

    def __init__(self, weights: str | None = None):
        super().__init__()
        self.detector = load_detector(weights)

    def score_images(self, images, prompts):
        named = torch.tensor([SHAPES.index(first_word_of(p, SHAPES, "shape")) for p in prompts], device=images.device)
        probability = torch.sigmoid(self.detector(images)[:, : len(SHAPES)])
        return -probability.gather(1, named[:, None]).squeeze(1)

    def gold(self, frames, prompts):
        return shape_absent(frames, prompts, self.detector)
