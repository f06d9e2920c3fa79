"""Reference videos that bracket a toy reward: what chance scores, and the best the renderer can draw.

One video per prompt (a toy caption), deterministic from the seed: the same prompts, geometry and seed
give the same videos. Kinds:
- "caption": the caption's exact render (its colour, shape, direction and background; radius and start
  drawn from the seed as the reward models' training data draws them);
- "best_scene": the same layout (shape, motion, start, radius) in the object/background colour pair the
  aesthetic rule rates highest: the best scene the renderer can draw for a reward that ignores the prompt;
- "background": the caption's background alone, its object removed;
- "shuffled": the "caption" videos handed to other prompts of the set by a fixed derangement (shuffled
  captions: chance for a reward that reads the prompt);
- "random": every frame from another random one-object scene, at its place in the clip (chance for a
  reward that ignores the prompt: nothing to read in any frame, and nothing that holds from frame to frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.toyworld.labels import aesthetic_rule
from vaderbench.toyworld.render import Scenes, random_placement, random_scenes, render, rgb_of
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, parse_caption

KINDS = ("caption", "best_scene", "background", "shuffled", "random")


def caption_scenes(prompts: Sequence[str], generator: torch.Generator) -> Scenes:
    """One object per prompt as its caption names it, placed at random."""
    labels = [parse_caption(p) for p in prompts]

    def index(key: str, names: tuple[str, ...]) -> torch.Tensor:
        return torch.tensor([names.index(label[key]) for label in labels])

    direction = index("direction", DIRECTIONS)[:, None]
    size, start = random_placement(direction, generator)
    present = torch.ones(len(prompts), 1, dtype=torch.bool)
    return Scenes(index("background", COLOURS), index("colour", COLOURS)[:, None], index("shape", SHAPES)[:, None],
                  direction, start, size, present)  # fmt: skip


def best_colour_pair() -> tuple[int, int]:
    """(object, background) palette indices that the aesthetic rule rates highest."""
    n = len(COLOURS)
    shape, background = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    rule = aesthetic_rule(rgb_of(shape), rgb_of(background), shape != background)
    return divmod(int(rule.argmax()), n)


def derangement(count: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(count) that moves every index: one random cycle through all of them."""
    if count < 2:
        raise ValueError(f"shuffled captions need at least 2 prompts, got {count}")
    order = torch.randperm(count, generator=generator)
    target = torch.empty(count, dtype=torch.long)
    target[order] = order.roll(-1)
    return target


def reference_videos(prompts: Sequence[str], frames: int, size: int, kind: str, seed: int) -> torch.Tensor:
    """Videos [len(prompts), frames, 3, size, size] in [0, 1] of the given kind (see the module's doc)."""
    if kind not in KINDS:
        raise ValueError(f"reference kind must be one of {', '.join(KINDS)}, got {kind!r}")
    generator = torch.Generator().manual_seed(seed)
    if kind == "random":
        count = len(prompts) * frames
        videos = render(random_scenes(count, generator), frames, size)
        return videos[torch.arange(count), torch.arange(count) % frames].view(len(prompts), frames, 3, size, size)
    scenes = caption_scenes(prompts, generator)
    if kind == "best_scene":
        shape, background = best_colour_pair()
        scenes.colour[:], scenes.background[:] = shape, background
    if kind == "background":
        scenes.present[:] = False
    videos = render(scenes, frames, size)
    return videos[derangement(len(prompts), generator)] if kind == "shuffled" else videos
