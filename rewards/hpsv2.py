"""Human Preference Score v2 / v2.1: open_clip ViT-H/14 fine-tuned on human preferences (Wu et al. 2023).

Score = cosine similarity of the image and prompt embeddings, in [-1, 1] (real videos score about
0.2-0.3); higher is better. The checkpoint keeps its weights under `state_dict`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.openclip import OpenClipImageInput, load_open_clip, unit


@REWARDS.register(
    "hpsv2", "HPS v2.1 image-text preference score (cosine, about 0.2-0.3 for real images; higher is better)"
)
class HPSv2Reward(ImageReward):
    def __init__(self, checkpoint: str = "xswu/HPSv2/HPS_v2.1_compressed.pt", clip_model: str = "ViT-H-14"):
        super().__init__()
        import open_clip

        self.clip = load_open_clip(clip_model, checkpoint, key="state_dict")
        self.tokenizer = open_clip.get_tokenizer(clip_model)
        self.image_input = OpenClipImageInput(self.clip)

    def score_images(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        image_features = unit(self.clip.encode_image(self.image_input(images)))
        tokens = self.tokenizer(list(prompts)).to(images.device)
        text_features = unit(self.clip.encode_text(tokens))
        return (image_features * text_features).sum(dim=-1)
