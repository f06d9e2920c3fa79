"""The toy world's aesthetic rewards (the LAION aesthetic / HPSv2 counterparts): learned models of one rule.

The rule (`vaderbench.toyworld.labels.aesthetic_score`): high colour contrast between the shape and its
background, and a saturated background. Its gold is that rule read from the pixels, times how clean the
frames are (`vaderbench.toyworld.gold.gold_aesthetic`). The prompt is not used. Two learned rewards stand
for it, trained on different data, as real aesthetic predictors are:
- `toy_aesthetic` (the default): an ensemble of small pixel CNNs trained like real preference models, on
  the toy model's own videos, perturbed policies' videos and corrupted renders, ranked by the gold within
  each caption (`toyworld.preference_data`). Its value is the members' mean; `members` gives each one's,
  whose spread is an alarm for hacking that needs no gold;
- `toy_aesthetic_clean`: an MLP on the toy CLIP's image embedding trained on clean renders only, like a
  predictor trained on photographs and applied to generated video. On the model's own videos it cannot
  tell a better video of a caption from a worse one: the fragile case, for studying hacking.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.toy_clip import load_toy_clip, unit_image_embedding
from vaderbench.toyworld.gold import gold_aesthetic
from vaderbench.toyworld.nets import AestheticHead, CriticEnsemble
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_config, load_network


class ToyAestheticBase(ImageReward):
    prompt_free = True
    oracle = "best_scene"  # the reference video that scores best (vaderbench.toyworld.references)

    def gold(self, frames, prompts):
        return gold_aesthetic(frames)


@REWARDS.register(
    "toy_aesthetic",
    "toy world: ensemble of 4 pixel CNNs trained on the toy model's own videos ranked by the gold aesthetic "
    "(a preference model, as HPSv2/PickScore are trained)",
)
class ToyAestheticReward(ToyAestheticBase):
    def __init__(self, weights: str | None = None, ensemble: CriticEnsemble | None = None):
        """From the weights folder (default: the package's), or an ensemble in hand (the build's first round)."""
        super().__init__()
        if ensemble is None:
            directory = Path(weights) if weights else WEIGHTS_DIR
            config = load_config("aesthetic_ensemble", directory)
            ensemble = load_network(CriticEnsemble(**config), "aesthetic_ensemble", directory)
        self.ensemble = ensemble

    def score_images(self, images, prompts):
        return self.ensemble(images).mean(dim=0)

    def members(self, frames: torch.Tensor, prompts) -> torch.Tensor:
        """Every member's score [M, B] of videos [B, F, C, H, W] (the reward is their mean)."""
        b, f = frames.shape[:2]
        return self.ensemble(frames.flatten(0, 1)).view(-1, b, f).mean(dim=2)


@REWARDS.register(
    "toy_aesthetic_clean",
    "toy world: MLP on the toy CLIP image embedding trained on clean renders only (LAION aesthetic; fragile on "
    "generated video)",
)
class ToyAestheticCleanReward(ToyAestheticBase):
    def __init__(self, weights: str | None = None):
        super().__init__()
        directory = Path(weights) if weights else WEIGHTS_DIR
        self.clip = load_toy_clip(directory)
        self.head = load_network(AestheticHead(), "aesthetic_head", directory)

    def score_images(self, images, prompts):
        return self.head(unit_image_embedding(self.clip, images))
