"""Action recognition: VideoMAE's probability of the Kinetics action named in the prompt.

The clip is resampled to the model's `num_frames` (16) evenly over time, each frame resized, centre-
cropped and normalised as `VideoMAEImageProcessor` does. In [0, 1]; higher is better. The action is the
option `action`, or else the longest class name of the model (`id2label`) found in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import Reward
from vaderbench.rewards.preprocess import processor_size, resize_crop_normalize, sample_frames


@REWARDS.register("videomae_action", "VideoMAE probability of the Kinetics action named in the prompt, in [0, 1]")
class VideoMAEActionReward(Reward):
    def __init__(self, model: str = "MCG-NJU/videomae-base-finetuned-kinetics", action: str | None = None):
        super().__init__()
        from transformers import AutoImageProcessor, VideoMAEForVideoClassification

        self.model = VideoMAEForVideoClassification.from_pretrained(model)
        self.model_name = model
        self.labels = {name.lower(): int(i) for i, name in self.model.config.id2label.items()}
        self.action = self.class_of(action) if action is not None else None
        processor = AutoImageProcessor.from_pretrained(model)
        crop = processor_size(processor, "crop_size")
        self.size = processor_size(processor)["shortest_edge"]
        self.crop = (crop["height"], crop["width"])
        self.mean, self.std = processor.image_mean, processor.image_std

    def class_of(self, text: str) -> int:
        """The class id named by `text`: an exact class name, else the longest class name inside it."""
        text = text.lower().strip()
        if text in self.labels:
            return self.labels[text]
        found = [name for name in self.labels if name in text]
        if not found:
            examples = ", ".join(sorted(self.labels)[:8])
            raise ValueError(f"no action class of {self.model_name} is named in {text!r} (classes include: {examples})")
        return self.labels[max(found, key=len)]

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B, F, C, H, W] in [0, 1] to the model's clip [B, num_frames, C, crop, crop]."""
        clip = sample_frames(frames, self.model.config.num_frames)
        pixels = resize_crop_normalize(clip.flatten(0, 1), self.size, self.crop, self.mean, self.std, "bilinear")
        return pixels.unflatten(0, clip.shape[:2])

    def forward(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        b = frames.shape[0]
        probs = self.model(pixel_values=self.preprocess(frames)).logits.softmax(dim=-1)
        classes = [self.action if self.action is not None else self.class_of(p) for p in prompts]
        return probs[torch.arange(b, device=probs.device), torch.tensor(classes, device=probs.device)]
