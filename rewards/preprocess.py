"""Reward-model preprocessing in torch, so that the reward's gradient reaches the frames.

These re-implement what the models' own processors do with PIL (resize the shortest edge, centre-crop,
normalise) on float tensors in [0, 1]; `tests/test_real_rewards.py` checks each reward's pipeline against
its processor on the same image. Antialiased interpolation matches PIL's downsampling filters closely.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_shortest_edge(images: torch.Tensor, size: int, mode: str = "bicubic", max_size: int | None = None):
    """Resize [N, C, H, W] so the shorter side is `size` (the longer capped at `max_size`), keeping aspect.

    Rounds as transformers' `get_resize_output_image_size` and torchvision's `Resize(int)` do.
    """
    h, w = images.shape[-2:]
    short, long = min(h, w), max(h, w)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return resize(images, (new_long, new_short) if w <= h else (new_short, new_long), mode)


def resize(images: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    antialias = mode in ("bilinear", "bicubic")
    return F.interpolate(images, size=size, mode=mode, antialias=antialias, align_corners=False if antialias else None)


def center_crop(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    if top < 0 or left < 0:
        raise ValueError(f"cannot centre-crop {h}x{w} images to {size[0]}x{size[1]}")
    return images[..., top : top + size[0], left : left + size[1]]


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images - mean) / std


def resize_crop_normalize(
    images: torch.Tensor, size: int, crop: tuple[int, int], mean: Sequence[float], std: Sequence[float], mode="bicubic"
) -> torch.Tensor:
    """The CLIP/VideoMAE recipe: shortest edge to `size`, centre crop, normalise. Images [N, C, H, W] in [0, 1]."""
    return normalize(center_crop(resize_shortest_edge(images, size, mode), crop), mean, std)


def sample_frames(frames: torch.Tensor, count: int) -> torch.Tensor:
    """`count` frames of [B, F, ...] evenly spaced over the clip (repeating frames when F < count)."""
    index = torch.linspace(0, frames.shape[1] - 1, count).round().long().to(frames.device)
    return frames[:, index]


def processor_size(processor, key: str = "size") -> dict:
    """A processor's `size`/`crop_size` as a plain dict (transformers 5 uses SizeDict objects)."""
    value = getattr(processor, key)
    if isinstance(value, int):
        return {"shortest_edge": value}
    items = value.items() if hasattr(value, "items") else vars(value).items()
    return {k: v for k, v in items if v is not None}
