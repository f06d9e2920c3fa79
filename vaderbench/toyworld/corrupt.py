"""Corruptions of rendered videos, each at a strength in [0, 1] (0 leaves the video as it is).

They span the defects a generated video has and the gold's cleanliness factor reads (`pixels.read_frames`):
pixel noise, blur, a colour cast, flicker (the colour drifting from frame to frame), grid artefacts (a
periodic pattern, as upsampling layers leave), and a missing object. The learned aesthetic reward is
trained on renders under them (`preference_data`), and `reward_checks.ladder` checks that it falls as the
gold falls along each one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def noise(videos: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    return videos + 0.25 * strength * torch.randn(videos.shape, generator=generator)


def blur(videos: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian blur of up to a tenth of the frame's width."""
    n, f, c, h, w = videos.shape
    sigma = strength * w / 10
    if sigma <= 0:
        return videos
    radius = max(1, int(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=videos.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    flat = videos.reshape(-1, 1, h, w)
    rows = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    both = F.conv2d(F.pad(rows, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return both.view(n, f, c, h, w)


def colour_shift(videos: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """One random colour cast per video, the same in every frame and pixel."""
    cast = torch.randn(videos.shape[0], 1, 3, 1, 1, generator=generator)
    return videos + 0.3 * strength * cast / cast.norm(dim=2, keepdim=True)


def flicker(videos: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """A random colour cast per frame: the picture changes colour from frame to frame."""
    n, f = videos.shape[:2]
    cast = torch.randn(n, f, 3, 1, 1, generator=generator)
    return videos + 0.3 * strength * cast / cast.norm(dim=2, keepdim=True)


def grid(videos: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """A checkerboard of random colour every 2 pixels, as a transposed convolution's artefact."""
    n, h, w = videos.shape[0], *videos.shape[-2:]
    sign = ((torch.arange(h)[:, None] + torch.arange(w)[None]) % 2 * 2 - 1).to(videos.dtype)
    colour = torch.randn(n, 1, 3, 1, 1, generator=generator)
    return videos + 0.15 * strength * colour / colour.norm(dim=2, keepdim=True) * 3**0.5 * sign


def missing_object(videos: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Fade the object into the background, by the strength (the background: the frame's median border colour)."""
    border = torch.cat([videos[..., 0, :], videos[..., -1, :], videos[..., :, 0], videos[..., :, -1]], dim=-1)
    background = border.median(dim=-1).values[..., None, None]
    return videos + strength * (background - videos)


CORRUPTIONS = {
    "noise": noise,
    "blur": blur,
    "colour_shift": colour_shift,
    "flicker": flicker,
    "grid": grid,
    "missing_object": missing_object,
}
#: what `corrupt` can do, in the order of the ladder's report
KINDS = tuple(CORRUPTIONS)


def corrupt(videos: torch.Tensor, kind: str, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Videos [N, F, 3, H, W] in [0, 1] under one corruption, clamped back to [0, 1]."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {', '.join(KINDS)}, got {kind!r}")
    if not 0 <= strength <= 1:
        raise ValueError(f"corruption strength must be in [0, 1], got {strength}")
    return CORRUPTIONS[kind](videos, strength, generator).clamp(0, 1)
