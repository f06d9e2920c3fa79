"""Procedural videos of the toy world: shapes of named colours moving over a coloured background.

A `Scenes` batch holds every video's parameters as tensors (up to `K` object slots per video); `render`
draws them with torch at any resolution and frame count. Shapes are drawn from signed distance fields in
frame units, with one pixel of linear coverage at their edge (antialiasing), so the same scene at 16 and
64 px is the same picture at two sampling rates. Everything is a function of the scene tensors: the same
seed gives the same videos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, RGB, SHAPES, VELOCITY, object_phrase

#: how far a moving object travels over the whole clip, in frame widths (whatever the frame count)
TRAVEL = 0.35
SIZE_RANGE = (0.13, 0.2)  # object radius, in frame widths

_RGB = torch.tensor([RGB[c] for c in COLOURS])
_VELOCITY = torch.tensor([VELOCITY[d] for d in DIRECTIONS])


@dataclass
class Scenes:
    """N videos with up to K objects each; indices point into COLOURS / SHAPES / DIRECTIONS."""

    background: torch.Tensor  # [N] colour index
    colour: torch.Tensor  # [N, K] colour index
    shape: torch.Tensor  # [N, K] shape index
    direction: torch.Tensor  # [N, K] direction index
    start: torch.Tensor  # [N, K, 2] centre (x, y) at the first frame, in frame units
    size: torch.Tensor  # [N, K] radius in frame units
    present: torch.Tensor  # [N, K] bool

    def __len__(self) -> int:
        return self.background.shape[0]

    def captions(self) -> list[str]:
        """One caption per video naming its objects (slot order) and background."""
        out = []
        for i in range(len(self)):
            parts = [
                object_phrase(COLOURS[self.colour[i, k]], SHAPES[self.shape[i, k]], DIRECTIONS[self.direction[i, k]])
                for k in range(self.present.shape[1])
                if self.present[i, k]
            ]
            objects = " and ".join(parts) if parts else "nothing"
            out.append(f"{objects} on a {COLOURS[self.background[i]]} background")
        return out


def random_scenes(
    count: int,
    generator: torch.Generator,
    objects: tuple[int, int] = (1, 1),
    combos: list[tuple[str, str, str, str]] | None = None,
    spread: float = 1.0,
) -> Scenes:
    """`count` random scenes with between objects[0] and objects[1] objects each.

    With `combos` (colour, shape, direction, background) the first object and the background of every
    scene are drawn from that list (a prompt set's captions); otherwise every attribute is uniform.
    The background never has the colour of an object. Starts are uniform over the middle `spread`
    fraction of the positions from which the object stays in frame (0: every path is centred on the
    frame's centre).
    """
    if not 0 <= spread <= 1:
        raise ValueError(f"spread must be in [0, 1], got {spread}")
    lo, hi = objects
    k = max(hi, 1)
    g = generator
    n_colours = len(COLOURS)
    colour = torch.randint(0, n_colours, (count, k), generator=g)
    shape = torch.randint(0, len(SHAPES), (count, k), generator=g)
    direction = torch.randint(0, len(DIRECTIONS), (count, k), generator=g)
    background = torch.randint(0, n_colours, (count,), generator=g)
    if combos is not None:
        pick = torch.randint(0, len(combos), (count,), generator=g)
        chosen = [combos[i] for i in pick.tolist()]
        colour[:, 0] = torch.tensor([COLOURS.index(c[0]) for c in chosen])
        shape[:, 0] = torch.tensor([SHAPES.index(c[1]) for c in chosen])
        direction[:, 0] = torch.tensor([DIRECTIONS.index(c[2]) for c in chosen])
        background = torch.tensor([COLOURS.index(c[3]) for c in chosen])
    # an object of the background's colour would be invisible: shift it to another colour
    clash = colour == background[:, None]
    colour = torch.where(clash, (colour + torch.randint(1, n_colours, colour.shape, generator=g)) % n_colours, colour)
    if combos is not None:
        clash_bg = colour[:, 0] == background
        if clash_bg.any():
            raise ValueError("a combo has the same colour for its object and its background")
    number = torch.randint(lo, hi + 1, (count,), generator=g)
    present = torch.arange(k)[None] < number[:, None]
    size, start = random_placement(direction, g, spread)
    return Scenes(background, colour, shape, direction, start, size, present)


def random_placement(direction: torch.Tensor, generator: torch.Generator, spread: float = 1.0):
    """Radius [N, K] and start [N, K, 2] of objects moving in `direction` [N, K] (see `random_scenes`)."""
    size = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * torch.rand(direction.shape, generator=generator)
    # the start is drawn so that the object stays inside the frame for the whole clip
    velocity = _VELOCITY[direction] * TRAVEL  # [N, K, 2]
    low = size[..., None] - velocity.clamp(max=0)
    high = 1 - size[..., None] - velocity.clamp(min=0)
    # written so that spread = 1 draws bitwise the starts it always drew (the reward models' data)
    margin = (1 - spread) / 2 * (high - low)
    start = low + margin + (high - low - 2 * margin) * torch.rand(*direction.shape, 2, generator=generator)
    return size, start


def _signed_distance(shape: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) to a circle, square or upward triangle of radius `size`."""
    circle = torch.sqrt(dx**2 + dy**2) - size
    square = torch.maximum(dx.abs(), dy.abs()) - 0.85 * size
    # equilateral triangle: three half-planes at the inradius of a triangle with circumradius 1.3 * size
    s = math.sqrt(3) / 2
    triangle = torch.maximum(torch.maximum(dy, s * dx - 0.5 * dy), -s * dx - 0.5 * dy) - 0.65 * size
    return torch.where(shape == 0, circle, torch.where(shape == 1, square, triangle))


def clip_progress(frames: int, device=None) -> torch.Tensor:
    """Each frame's place in the clip, 0 (first) to 1 (last); a one-frame clip is at 0."""
    return torch.linspace(0, 1, frames, device=device) if frames > 1 else torch.zeros(1, device=device)


def render(scenes: Scenes, frames: int, size: int) -> torch.Tensor:
    """Videos [N, F, 3, H, W] in [0, 1] (H = W = size); later object slots are drawn on top."""
    if frames < 1 or size < 4:
        raise ValueError(f"need frames >= 1 and size >= 4, got frames={frames}, size={size}")
    n = len(scenes)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    progress = clip_progress(frames)
    video = _RGB[scenes.background].view(n, 1, 3, 1, 1).expand(n, frames, 3, size, size).clone()
    for k in range(scenes.present.shape[1]):
        velocity = _VELOCITY[scenes.direction[:, k]] * TRAVEL  # [N, 2]
        centre = scenes.start[:, k, None, :] + progress[None, :, None] * velocity[:, None, :]  # [N, F, 2]
        dx = coords.view(1, 1, 1, size) - centre[..., 0, None, None]
        dy = coords.view(1, 1, size, 1) - centre[..., 1, None, None]
        distance = _signed_distance(scenes.shape[:, k].view(n, 1, 1, 1), dx, dy, scenes.size[:, k].view(n, 1, 1, 1))
        coverage = (0.5 - distance * size).clamp(0, 1) * scenes.present[:, k].view(n, 1, 1, 1)
        colour = _RGB[scenes.colour[:, k]].view(n, 1, 3, 1, 1)
        video = video + coverage[:, :, None] * (colour - video)
    return video


def rgb_of(colour_index: torch.Tensor) -> torch.Tensor:
    return _RGB[colour_index]
