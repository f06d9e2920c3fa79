"""What the toy reward models are trained to predict from a scene: its labels and the aesthetic rule."""

from __future__ import annotations

import torch

from vaderbench.toyworld.render import Scenes, rgb_of
from vaderbench.toyworld.vocab import COLOURS, SHAPES


def presence(scenes: Scenes) -> torch.Tensor:
    """Multi-hot [N, len(SHAPES) + len(COLOURS)]: which shapes and which object colours are in the video."""
    n = len(scenes)
    out = torch.zeros(n, len(SHAPES) + len(COLOURS))
    rows = torch.arange(n)[:, None].expand_as(scenes.shape)
    present = scenes.present.float()
    out.index_put_((rows, scenes.shape), present, accumulate=True)
    out.index_put_((rows, len(SHAPES) + scenes.colour), present, accumulate=True)
    return out.clamp(max=1)


def aesthetic_score(scenes: Scenes) -> torch.Tensor:
    """The toy world's fixed "aesthetic" rule, in [0, 1]: a vivid shape that stands out from a vivid background.

    0.7 x the colour contrast between the first object and the background (RGB distance / sqrt 3)
    + 0.3 x the background's saturation (max - min channel). Black on white scores high; yellow on
    white or orange on red scores low. Scenes without an object score their background's saturation only.
    """
    return aesthetic_rule(rgb_of(scenes.colour[:, 0]), rgb_of(scenes.background), scenes.present[:, 0])


def aesthetic_rule(shape: torch.Tensor, background: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The rule on colours: RGB [..., 3] of the object and of the background, `present` [...] (bool)."""
    contrast = (shape - background).norm(dim=-1) / 3**0.5 * present
    saturation = background.amax(dim=-1) - background.amin(dim=-1)
    return 0.7 * contrast + 0.3 * saturation
