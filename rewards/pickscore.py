"""PickScore (Kirstain et al. 2023): a CLIP-H/14 fine-tuned on Pick-a-Pic human preferences.

Score = logit_scale.exp() * cos(image, prompt): about 18-23 for real images (logit scale 100); higher is
better. Model `yuvalkirstain/PickScore_v1`, processor `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.openclip import unit
from vaderbench.rewards.preprocess import processor_size, resize_crop_normalize


def projected(output) -> torch.Tensor:
    # transformers 5 returns BaseModelOutputWithPooling from get_*_features (the projection is in
    # pooler_output); transformers 4 returned the tensor itself.
    return output.pooler_output if hasattr(output, "pooler_output") else output


@REWARDS.register(
    "pickscore", "PickScore image-text preference (100 x cosine, about 18-23 for real images; higher is better)"
)
class PickScoreReward(ImageReward):
    def __init__(
        self, model: str = "yuvalkirstain/PickScore_v1", processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    ):
        super().__init__()
        from transformers import AutoProcessor, CLIPModel

        self.model = CLIPModel.from_pretrained(model)
        self.processor = AutoProcessor.from_pretrained(processor)
        image_processor = self.processor.image_processor
        crop = processor_size(image_processor, "crop_size")
        self.size = processor_size(image_processor)["shortest_edge"]
        self.crop = (crop["height"], crop["width"])
        self.mean, self.std = image_processor.image_mean, image_processor.image_std

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return resize_crop_normalize(images, self.size, self.crop, self.mean, self.std)

    def score_images(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        pixels = self.preprocess(images)
        text = self.processor.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
        image_features = unit(projected(self.model.get_image_features(pixel_values=pixels)))
        text_features = unit(projected(self.model.get_text_features(**text.to(images.device))))
        return self.model.logit_scale.exp() * (image_features * text_features).sum(dim=-1)
