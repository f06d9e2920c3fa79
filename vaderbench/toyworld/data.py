"""Training batches for the toy models: fresh random scenes at random sizes, rendered on the fly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaderbench.toyworld.render import Scenes, random_scenes, render

SIZES = (16, 24, 32, 48, 64)  # the reward models see every resolution a study may generate


def choice(options, generator: torch.Generator):
    return options[int(torch.randint(0, len(options), (1,), generator=generator))]


def degrade(videos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur half the videos (down- and up-sampling) and add a little noise to all of them.

    Generated videos are softer and noisier than renders; reward models trained on clean renders
    alone would judge them out of distribution.
    """
    n, f, c, h, w = videos.shape
    flat = videos.flatten(0, 1)
    soft = F.interpolate(
        F.interpolate(flat, scale_factor=0.5, mode="bilinear", antialias=True), size=(h, w), mode="bilinear"
    )
    blur = (torch.rand(n, generator=generator) < 0.5).float().repeat_interleave(f).view(-1, 1, 1, 1)
    flat = blur * soft + (1 - blur) * flat
    sigma = 0.04 * torch.rand(n, generator=generator).repeat_interleave(f).view(-1, 1, 1, 1)
    flat = flat + sigma * torch.randn(flat.shape, generator=generator)
    return flat.clamp(0, 1).view(n, f, c, h, w)


def video_batch(
    count: int,
    generator: torch.Generator,
    frames: int | tuple[int, ...],
    objects=(1, 1),
    sizes=SIZES,
    augment=True,
    spread: float = 1.0,
) -> tuple[torch.Tensor, Scenes]:
    """`count` videos [N, F, 3, S, S] of one random size from `sizes`, and their scenes (`spread`: see
    `random_scenes`)."""
    scenes = random_scenes(count, generator, objects, spread=spread)
    frame_count = frames if isinstance(frames, int) else choice(frames, generator)
    videos = render(scenes, frame_count, choice(sizes, generator))
    return (degrade(videos, generator) if augment else videos), scenes
