"""Gold measures: what each learned toy reward stands for, from the pixels and the caption.

The toy world knows its truth, so a learned ("proxy") reward can be watched next to it: a method that
raises the proxy while the gold stays put is over-optimising the learned model, and one that raises it
while caption fidelity falls is drifting from the prompt. Every measure is in [0, 1], per video:
- `gold_aesthetic`: the aesthetic rule (`labels.aesthetic_rule`) on the palette colours the pixels show,
  times how clean each frame is (`pixels.read_frames`), averaged over frames. A clean one-object render
  scores its rule exactly;
- `pixel_direction` / `direction_correct`: the object's motion read from its centroid, first to last frame;
- `steady_fraction`: the fraction of consecutive frame pairs in which the background and the object's
  colour stay and the object moves at most STEP_SLACK times the clip's per-frame travel;
- `caption_fidelity`: 0/1 for the colour, shape and direction the toy detector and direction classifier
  see (`judge`), and for the background the pixels show, against the caption;
- `shape_absent`: the fraction of frames in which the toy detector does not see the named shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.toyworld.labels import aesthetic_rule
from vaderbench.toyworld.pixels import border_pixels, nearest_colour, palette, read_frames
from vaderbench.toyworld.render import TRAVEL
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, first_word_of, parse_caption

#: how far an object may move between frames, in units of the clip's per-frame travel: rendered objects move
#: exactly 1; the base model's centroids jitter by a pixel or two (9 in 10 of its steps within 1.2 at 64 px)
STEP_SLACK = 1.5


def judge(videos: torch.Tensor, detector, classifier=None) -> dict[str, list[str]]:
    """Colour, shape (and direction, given the classifier) of videos [B, F, 3, H, W] as the toy networks see them."""
    b, f = videos.shape[:2]
    logits = detector(videos.flatten(0, 1)).view(b, f, -1).mean(dim=1)
    seen = {
        "shape": [SHAPES[i] for i in logits[:, : len(SHAPES)].argmax(dim=1).tolist()],
        "colour": [COLOURS[i] for i in logits[:, len(SHAPES) :].argmax(dim=1).tolist()],
    }
    if classifier is not None:
        seen["direction"] = [DIRECTIONS[i] for i in classifier(videos).argmax(dim=1).tolist()]
    return seen


@torch.no_grad()
def gold_aesthetic(videos: torch.Tensor) -> torch.Tensor:
    b, f = videos.shape[:2]
    seen = read_frames(videos.flatten(0, 1))
    colours = palette(videos)
    rule = aesthetic_rule(colours[seen.colour], colours[seen.background], seen.present)
    return (rule * seen.clean).view(b, f).mean(dim=1)


def need_frames(videos: torch.Tensor, what: str) -> None:
    if videos.shape[1] < 2:
        raise ValueError(f"{what} needs at least 2 frames, got {videos.shape[1]}")


@torch.no_grad()
def pixel_direction(videos: torch.Tensor) -> torch.Tensor:
    """Index into DIRECTIONS of the object's motion, first to last frame; -1 where either frame shows none.

    Still when the centroid moved less than half the clip's travel, else the axis it moved most along.
    """
    need_frames(videos, "a direction")
    b = videos.shape[0]
    seen = read_frames(videos[:, [0, -1]].flatten(0, 1))
    centroid, present = seen.centroid.view(b, 2, 2), seen.present.view(b, 2).all(dim=1)
    dx, dy = (centroid[:, 1] - centroid[:, 0]).unbind(dim=1)
    horizontal = torch.where(dx < 0, DIRECTIONS.index("left"), DIRECTIONS.index("right"))
    vertical = torch.where(dy < 0, DIRECTIONS.index("up"), DIRECTIONS.index("down"))
    moving = torch.where(dx.abs() >= dy.abs(), horizontal, vertical)
    direction = torch.where(torch.hypot(dx, dy) < TRAVEL / 2, DIRECTIONS.index("still"), moving)
    return torch.where(present, direction, -1)


def direction_correct(videos: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    named = torch.tensor([DIRECTIONS.index(first_word_of(p, DIRECTIONS, "direction")) for p in prompts])
    return (pixel_direction(videos).cpu() == named).float().to(videos.device)


@torch.no_grad()
def steady_fraction(videos: torch.Tensor) -> torch.Tensor:
    need_frames(videos, "temporal consistency")
    b, f = videos.shape[:2]
    seen = read_frames(videos.flatten(0, 1))
    background, colour = seen.background.view(b, f), seen.colour.view(b, f)
    present, centroid = seen.present.view(b, f), seen.centroid.view(b, f, 2)
    step = (centroid.diff(dim=1)).norm(dim=-1)
    limit = STEP_SLACK * TRAVEL / (f - 1)
    same_object = (colour.diff(dim=1) == 0) & (step <= limit)
    keeps = (background.diff(dim=1) == 0) & (present[:, 1:] == present[:, :-1]) & (same_object | ~present[:, 1:])
    return keeps.float().mean(dim=1)


def video_background(videos: torch.Tensor) -> torch.Tensor:
    """Palette index of each video's background: the median border pixel over all its frames."""
    border = border_pixels(videos.float())  # [B, F, 3, L]
    return nearest_colour(border.transpose(1, 2).flatten(2).median(dim=-1).values)


@torch.no_grad()
def caption_fidelity(videos: torch.Tensor, prompts: Sequence[str], detector, classifier=None) -> dict:
    """0/1 per video and attribute: colour, shape, background (and direction, given the classifier)."""
    truth = [parse_caption(p) for p in prompts]
    seen = judge(videos, detector, classifier)
    seen["background"] = [COLOURS[i] for i in video_background(videos).tolist()]
    return {
        key: torch.tensor([float(a == t[key]) for a, t in zip(values, truth)], device=videos.device)
        for key, values in seen.items()
    }


@torch.no_grad()
def shape_absent(videos: torch.Tensor, prompts: Sequence[str], detector) -> torch.Tensor:
    b, f = videos.shape[:2]
    named = torch.tensor([SHAPES.index(first_word_of(p, SHAPES, "shape")) for p in prompts], device=videos.device)
    logits = detector(videos.flatten(0, 1))[:, : len(SHAPES)].view(b, f, -1)
    return (logits.gather(2, named.view(b, 1, 1).expand(b, f, 1)).squeeze(2) <= 0).float().mean(dim=1)
