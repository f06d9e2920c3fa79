"""The toy world's aesthetic reward (the LAION aesthetic counterpart): an MLP on the toy CLIP's image embedding.

It is trained to the rule in `vaderbench.toyworld.labels.aesthetic_score`: high colour contrast between
the shape and its background, and a saturated background. The prompt is not used. Its gold is that rule
read from the pixels, times how clean the frames are (`vaderbench.toyworld.gold.gold_aesthetic`).
"""

from __future__ import annotations

from pathlib import Path

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.toy_clip import load_toy_clip, unit_image_embedding
from vaderbench.toyworld.gold import gold_aesthetic
from vaderbench.toyworld.nets import AestheticHead
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_network


@REWARDS.register(
    "toy_aesthetic", "toy world: MLP on the toy CLIP image embedding scoring contrast and saturation (LAION aesthetic)"
)
class ToyAestheticReward(ImageReward):
    prompt_free = True
    oracle = "best_scene"  # the reference video that scores best (vaderbench.toyworld.references)

    def __init__(self, weights: str | None = None):
        super().__init__()
        directory = Path(weights) if weights else WEIGHTS_DIR
        self.clip = load_toy_clip(directory)
        self.head = load_network(AestheticHead(), "aesthetic_head", directory)

    def score_images(self, images, prompts):
        return self.head(unit_image_embedding(self.clip, images))

    def gold(self, frames, prompts):
        return gold_aesthetic(frames)
