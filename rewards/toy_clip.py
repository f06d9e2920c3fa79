"""The toy world's image-text reward (the HPSv2 / PickScore counterpart): a tiny open_clip CLIP.

Score: cosine similarity between each frame's image embedding and the caption's text embedding,
averaged over frames. One frame cannot show motion, so the score judges colour, shape and background.
Gold: the mean of three 0/1 checks against the caption: the object colour and shape the toy shape
detector sees, and the background the pixels show (`vaderbench.toyworld.gold.caption_fidelity`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.toy_object_removal import load_detector
from vaderbench.toyworld.gold import caption_fidelity
from vaderbench.toyworld.nets import ClipTokenizer, build_toy_clip, frames_to_input
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_config, load_network


def load_toy_clip(weights: str | Path | None = None):
    directory = Path(weights) if weights else WEIGHTS_DIR
    return load_network(build_toy_clip(load_config("toy_clip", directory)), "toy_clip", directory)


def unit_image_embedding(clip, images: torch.Tensor) -> torch.Tensor:
    return F.normalize(clip.encode_image(frames_to_input(images)), dim=-1)


@REWARDS.register(
    "toy_clip", "toy world: tiny CLIP frame-caption cosine similarity, averaged over frames (HPS/PickScore)"
)
class ToyClipReward(ImageReward):
    prompt_free = False
    oracle = "caption"  # the reference video that scores best (vaderbench.toyworld.references)

    def __init__(self, weights: str | None = None):
        super().__init__()
        self.clip = load_toy_clip(weights)
        self.tokenizer = ClipTokenizer()
        self.detector = load_detector(weights)  # for the gold only

    def score_images(self, images, prompts):
        ids = self.tokenizer(prompts).to(images.device)
        text = F.normalize(self.clip.encode_text(ids), dim=-1)
        return (unit_image_embedding(self.clip, images) * text).sum(dim=-1)

    def gold(self, frames, prompts):
        fidelity = caption_fidelity(frames, prompts, self.detector)
        return (fidelity["colour"] + fidelity["shape"] + fidelity["background"]) / 3
