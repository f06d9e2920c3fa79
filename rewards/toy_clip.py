"""The toy world's image-text reward (the HPSv2 / PickScore counterpart): a tiny open_clip CLIP.

Score: cosine similarity between each frame's image embedding and the caption's text embedding,
averaged over frames. One frame cannot show motion, so the score judges colour, shape and background.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.toyworld.nets import ClipTokenizer, build_toy_clip, frames_to_input
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_config, load_network


def load_toy_clip(weights: str | Path | None = None):
    directory = Path(weights) if weights else WEIGHTS_DIR
    return load_network(build_toy_clip(load_config("toy_clip", directory)), "toy_clip", directory)


def unit_image_embedding(clip, images: torch.Tensor) -> torch.Tensor:
    return F.normalize(clip.encode_image(frames_to_input(images)), dim=-1)


@REWARDS.register("toy_clip", "toy world: tiny CLIP frame-caption cosine similarity, averaged over frames (HPS/PickScore)")
class ToyClipReward(ImageReward):
    def __init__(self, weights: str | None = None):
        super().__init__()
        self.clip = load_toy_clip(weights)
        self.tokenizer = ClipTokenizer()

    def score_images(self, images, prompts):
        ids = self.tokenizer(prompts).to(images.device)
        text = F.normalize(self.clip.encode_text(ids), dim=-1)
        return (unit_image_embedding(self.clip, images) * text).sum(dim=-1)
