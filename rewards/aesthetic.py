"""LAION aesthetic predictor v2: an MLP on the L2-normalised CLIP ViT-L/14 image embedding.

Score on LAION's 1-10 aesthetic-rating scale (most images land between 4 and 7); higher is better.
The head's weights are `sac+logos+ava1-l14-linearMSE.pth` (keys `layers.{0,2,4,6,7}`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.checkpoints import load_state_dict
from vaderbench.rewards.openclip import OpenClipImageInput, load_open_clip, unit

HEAD_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth"
)
CLIP_L14_OPENAI = "timm/vit_large_patch14_clip_224.openai/open_clip_model.safetensors"


class AestheticHead(nn.Module):
    """768 -> 1024 -> 128 -> 64 -> 16 -> 1, dropouts between and no activations (as trained)."""

    def __init__(self, embed_dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings).squeeze(-1)


@REWARDS.register("aesthetic", "LAION aesthetic predictor v2 on CLIP ViT-L/14 (1-10 scale, higher is better)")
class AestheticReward(ImageReward):
    def __init__(self, head: str = HEAD_URL, clip_model: str = "ViT-L-14", clip_checkpoint: str = CLIP_L14_OPENAI):
        super().__init__()
        self.clip = load_open_clip(clip_model, clip_checkpoint)
        self.image_input = OpenClipImageInput(self.clip)
        self.head = AestheticHead(self.clip.visual.output_dim)
        self.head.load_state_dict(load_state_dict(head))

    def score_images(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        embeddings = self.clip.encode_image(self.image_input(images))
        return self.head(unit(embeddings))
