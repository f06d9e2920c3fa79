"""Temporal consistency from V-JEPA 2: minus its masked-prediction loss in feature space.

V-JEPA predicts the features of masked space-time blocks from the visible ones; a temporally coherent
video is predictable, a flickering one is not. `VJEPA2Model.forward(context_mask=..., target_mask=...)`
would let the encoder see the whole video (the context tokens then leak the targets), so we run the
masked prediction as V-JEPA was trained: the encoder sees only the context tokens (its layers take their
positions), the predictor fills in the targets, and the targets are the layer-normed encoding of the
full video (no gradient, like V-JEPA's target encoder). Reward = -L1(prediction, targets), <= 0; higher
is more consistent.

The mask is V-JEPA's multi-block kind: `num_blocks` spatial rectangles covering `block_scale` of the
frame each, through all time, drawn once from `mask_seed` (the same for every video, so scores compare).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import Reward
from vaderbench.rewards.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    processor_size,
    resize_crop_normalize,
    sample_frames,
)


def multiblock_target(grid_t: int, grid_h: int, grid_w: int, num_blocks: int, block_scale: float, seed: int):
    """Boolean [T, H, W] token mask: the union of `num_blocks` square-ish spatial blocks, through all time."""
    generator = torch.Generator().manual_seed(seed)
    side_h = max(1, round(grid_h * block_scale**0.5))
    side_w = max(1, round(grid_w * block_scale**0.5))
    spatial = torch.zeros(grid_h, grid_w, dtype=torch.bool)
    for _ in range(num_blocks):
        top = int(torch.randint(0, grid_h - side_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, grid_w - side_w + 1, (1,), generator=generator))
        spatial[top : top + side_h, left : left + side_w] = True
    return spatial.expand(grid_t, grid_h, grid_w)


@REWARDS.register(
    "vjepa_consistency", "minus V-JEPA 2's masked feature-prediction L1 (leak-free), <= 0; higher is more consistent"
)
class VJEPAConsistencyReward(Reward):
    def __init__(
        self,
        model: str = "facebook/vjepa2-vitl-fpc64-256",
        num_frames: int | None = None,
        num_blocks: int = 8,
        block_scale: float = 0.15,
        mask_seed: int = 0,
    ):
        super().__init__()
        from transformers import AutoVideoProcessor, VJEPA2Model

        self.model = VJEPA2Model.from_pretrained(model)
        config = self.model.config
        self.min_frames = config.tubelet_size
        self.num_frames = num_frames
        processor = AutoVideoProcessor.from_pretrained(model)
        crop = processor_size(processor, "crop_size")
        self.size = processor_size(processor)["shortest_edge"]
        self.crop = (crop["height"], crop["width"])
        self.mean = getattr(processor, "image_mean", None) or IMAGENET_MEAN
        self.std = getattr(processor, "image_std", None) or IMAGENET_STD
        self.mask_options = (num_blocks, block_scale, mask_seed)

    def masks(self, frames: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.model.config
        grid = (frames // config.tubelet_size, self.crop[0] // config.patch_size, self.crop[1] // config.patch_size)
        target = multiblock_target(*grid, *self.mask_options).flatten()
        if target.all():
            raise ValueError("vjepa_consistency: the target blocks cover every token; lower num_blocks or block_scale")
        ids = torch.arange(target.numel(), device=device)
        return ids[~target.to(device)], ids[target.to(device)]

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B, F, C, H, W] in [0, 1] to `pixel_values_videos` (a whole number of tubelets)."""
        tubelet = self.model.config.tubelet_size
        if self.num_frames is not None:
            frames = sample_frames(frames, self.num_frames)
        usable = frames.shape[1] // tubelet * tubelet
        if usable == 0:
            raise ValueError(f"vjepa_consistency needs at least {tubelet} frames; do not subsample frames below that")
        clip = frames[:, :usable]
        video = resize_crop_normalize(clip.flatten(0, 1), self.size, self.crop, self.mean, self.std, "bilinear")
        return video.unflatten(0, clip.shape[:2])

    def forward(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.score_video(self.preprocess(frames))

    def score_video(self, video: torch.Tensor) -> torch.Tensor:
        """-L1 of the masked prediction for preprocessed videos [B, T, C, H, W]."""
        b, usable = video.shape[:2]
        context_ids, target_ids = self.masks(usable, video.device)
        encoder = self.model.encoder
        with torch.no_grad():
            targets = encoder(video).last_hidden_state[:, target_ids]
        tokens = encoder.embeddings(video)
        context = tokens[:, context_ids]
        positions = context_ids.expand(b, -1)
        for layer in encoder.layer:
            context = layer(context, positions)[0]
        context = encoder.layernorm(context)
        # the predictor gathers the context itself from a full-length sequence: scatter ours into one
        full = torch.zeros_like(tokens).index_copy(1, context_ids, context)
        prediction = self.model.predictor(
            encoder_hidden_states=full, context_mask=[positions], target_mask=[target_ids.expand(b, -1)]
        ).last_hidden_state
        return -(prediction - targets).abs().mean(dim=(1, 2))
