"""Object removal: minus a YOLOS detector's confidence that the named COCO object is in the frame.

Per frame: the largest softmax probability of the target class over YOLOS's detection tokens (not the
thresholded `post_process` output, which has no gradient); averaged over frames and negated. In
[-1, 0]; higher (closer to 0) means the object is gone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import ImageReward
from vaderbench.rewards.preprocess import normalize, processor_size, resize


def yolos_resize_shape(height: int, width: int, shortest: int, longest: int | None, multiple: int = 16):
    """YolosImageProcessor's output size: shortest edge to `shortest` (longest capped at `longest`), keeping
    aspect, then both sides floored to a multiple of 16."""
    short, long = min(height, width), max(height, width)
    scale = shortest / short
    if longest is not None and long * scale > longest:
        scale = longest / long
    new_h, new_w = int(height * scale), int(width * scale)
    return new_h - new_h % multiple, new_w - new_w % multiple


@REWARDS.register("yolos_removal", "minus YOLOS's max probability of the target COCO class per frame, in [-1, 0]")
class YolosRemovalReward(ImageReward):
    def __init__(
        self,
        target: str,
        model: str = "hustvl/yolos-tiny",
        shortest_edge: int | None = None,
        longest_edge: int | None = None,
    ):
        super().__init__()
        from transformers import AutoImageProcessor, YolosForObjectDetection

        self.model = YolosForObjectDetection.from_pretrained(model)
        labels = {name.lower(): int(i) for i, name in self.model.config.id2label.items()}
        if target.lower() not in labels:
            raise ValueError(f"target {target!r} is not a class of {model}; classes: {sorted(labels)}")
        self.class_id = labels[target.lower()]
        processor = AutoImageProcessor.from_pretrained(model)
        size = processor_size(processor)
        self.shortest_edge = shortest_edge or size["shortest_edge"]
        self.longest_edge = longest_edge or size.get("longest_edge")
        self.mean, self.std = processor.image_mean, processor.image_std

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        shape = yolos_resize_shape(*images.shape[-2:], self.shortest_edge, self.longest_edge)
        pixels = resize(images, shape, "bilinear")
        return normalize(pixels, self.mean, self.std)

    def score_images(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        logits = self.model(pixel_values=self.preprocess(images)).logits  # [N, tokens, classes + 1]
        return -logits.softmax(dim=-1)[..., self.class_id].amax(dim=1)
