"""What a frame's pixels show, read back without any learned model: the renderer's picture grammar inverted.

A clean render (`render.render`, one object) is a background colour of the palette, an object of another
palette colour, and a one-pixel antialiased rim whose pixels are exact mixes of the two: pixel =
background + t (object - background), t the object's coverage. `read_frames` estimates, per frame:
- the background: the per-channel median of the border pixels snapped to the nearest palette colour
  (objects stay inside the frame, so the border is background but for the tips of a shape);
- the object colour: the palette colour, other than the background, whose mixes with the background
  explain the most object coverage;
- each pixel's coverage t, the object mask (t >= 1/2) and the coverage-weighted centroid of the object;
- how clean the frame is: how well each pixel is explained, exp(-r^2 / (2 TOLERANCE^2)) with r its RGB
  distance to what a clean render puts there: a pure colour (background or object, by the mask) away from
  the mask's rim, any mix of the two on it. Averaged over the object (mask and rim) and over the rest of
  the frame, then the two averages are averaged. A clean render scores 1; noise, a third colour, or blur
  (mixes away from the rim) score less.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vaderbench.toyworld.render import rgb_of
from vaderbench.toyworld.vocab import COLOURS

#: RGB distance at which a pixel counts as exp(-1/2) explained. The palette's colours are >= 0.46 apart;
#: the base model's pixels lie a median 0.04 to 0.06 off the two-colour mix its caption asks for
TOLERANCE = 0.1


@dataclass
class FrameReading:
    """Per frame (N of them): what the pixels show."""

    background: torch.Tensor  # [N] palette index
    colour: torch.Tensor  # [N] palette index of the object (any colour but the background's where absent)
    present: torch.Tensor  # [N] bool: some pixel is at least half object
    coverage: torch.Tensor  # [N, H, W] the object's coverage t of each pixel, in [0, 1]
    centroid: torch.Tensor  # [N, 2] (x, y) in frame units, coverage-weighted over the mask and its rim
    clean: torch.Tensor  # [N] in [0, 1], 1 for a clean render


def nearest_colour(rgb: torch.Tensor) -> torch.Tensor:
    """Palette index nearest to each RGB [..., 3]."""
    return torch.cdist(rgb.reshape(-1, 3), palette(rgb)).argmin(dim=-1).view(rgb.shape[:-1])


def palette(like: torch.Tensor) -> torch.Tensor:
    return rgb_of(torch.arange(len(COLOURS))).to(like)


def border_pixels(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, 2H + 2W - 4]: every pixel on the frame's edge once."""
    return torch.cat([images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], dim=-1)


def explained(distance: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * (distance / TOLERANCE) ** 2)


def object_colour(offset: torch.Tensor, background: torch.Tensor, colours: torch.Tensor):
    """The palette colour whose mixes with the background explain the most coverage, and each pixel's coverage.

    offset: [N, 3, P] pixels minus the background colour. Returns (palette index [N], coverage [N, P]).
    """
    n = offset.shape[0]
    span = colours[None] - colours[background][:, None]  # [N, C, 3]; the background's own row is zero
    length = span.square().sum(dim=-1, keepdim=True)  # [N, C, 1]
    dot = span @ offset  # [N, C, P]
    cover = (dot / length.clamp(min=1e-12)).clamp(0, 1)
    # squared distance to the mix, |offset - cover span|^2 expanded: it only ranks colours, so rounding is harmless
    off_mix = (offset.square().sum(dim=1, keepdim=True) - 2 * cover * dot + cover.square() * length).clamp(min=0)
    mass = (cover * explained(off_mix.sqrt())).sum(dim=-1)  # [N, C]
    mass[torch.arange(n), background] = -1
    colour = mass.argmax(dim=1)
    return colour, cover[torch.arange(n), colour]


def rim(mask: torch.Tensor) -> torch.Tensor:
    """[N, H, W] bool: where a clean render may mix the two colours, given the object mask [N, H, W].

    Background pixels up to 2 px from the mask (a triangle's antialiased corner reaches that far), object
    pixels next to the background (beyond the frame counts as background).
    """
    inside = mask[:, None].float()
    outside = F.pad(1 - inside, (1, 1, 1, 1), value=1)
    return torch.where(mask, F.max_pool2d(outside, 3, 1)[:, 0] > 0, F.max_pool2d(inside, 5, 1, 2)[:, 0] > 0)


@torch.no_grad()
def read_frames(images: torch.Tensor) -> FrameReading:
    """Read frames [N, 3, H, W] in [0, 1] (computed in float32 whatever their dtype)."""
    images = images.float()
    n, _, h, w = images.shape
    colours = palette(images)  # [C, 3]
    background = nearest_colour(border_pixels(images).median(dim=-1).values)
    offset = images - colours[background].view(n, 3, 1, 1)
    colour, coverage = object_colour(offset.flatten(2), background, colours)
    t = coverage.view(n, h, w)
    mask = t >= 0.5
    edge = rim(mask)
    # a clean render's offset from the background: the object's colour, times its coverage on the rim
    expected = (colours[colour] - colours[background]).view(n, 3, 1, 1) * torch.where(edge, t, mask.float())[:, None]
    fit = explained((offset - expected).square().sum(dim=1).sqrt())  # [N, H, W]
    # the object's pixels weigh as much as the background's: a small object's flaws would vanish in the mean
    region = mask | edge
    on_object = (fit * region).sum(dim=(1, 2)) / region.sum(dim=(1, 2)).clamp(min=1)
    on_background = (fit * ~region).sum(dim=(1, 2)) / (~region).sum(dim=(1, 2)).clamp(min=1)
    clean = torch.where(region.flatten(1).any(dim=1), (on_object + on_background) / 2, on_background)
    weight = t * region
    xs = (torch.arange(w, device=images.device) + 0.5) / w
    ys = (torch.arange(h, device=images.device) + 0.5) / h
    total = weight.sum(dim=(1, 2)).clamp(min=1e-12)[:, None]
    centroid = torch.stack([(weight.sum(dim=1) * xs).sum(dim=1), (weight.sum(dim=2) * ys).sum(dim=1)], dim=1) / total
    return FrameReading(background, colour, mask.flatten(1).any(dim=1), t, centroid, clean)
