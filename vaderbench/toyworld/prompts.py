"""The toy world's prompt sets, mirroring the paper's generalisation split (its Table 1).

Colour-shape combinations are split: for colour i the shape SHAPES[i % 3] is held out, so the held-out
set asks for a red circle, a green square, ... that no training prompt names, in every direction and on
every background. The base model was pretrained on all combinations (as a real base model has seen red
squares); the split is between the prompts an aligner trains on and those it is evaluated on.
"""

from __future__ import annotations

from vaderbench.registry import PROMPT_SETS
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, caption

Combo = tuple[str, str, str, str]  # colour, shape, direction, background


def held_out_pair(colour: str, shape: str) -> bool:
    return SHAPES[COLOURS.index(colour) % len(SHAPES)] == shape


def combos(held_out: bool, directions: tuple[str, ...] = DIRECTIONS) -> list[Combo]:
    return [
        (colour, shape, direction, background)
        for colour in COLOURS
        for shape in SHAPES
        if held_out_pair(colour, shape) == held_out
        for direction in directions
        for background in COLOURS
        if background != colour
    ]


def captions(items: list[Combo]) -> list[str]:
    return [caption(*item) for item in items]


@PROMPT_SETS.register("toy-train", "toy world: training captions (all but the held-out colour-shape pairs)")
def train_prompts() -> list[str]:
    return captions(combos(held_out=False))


@PROMPT_SETS.register("toy-heldout", "toy world: captions of held-out colour-shape pairs (no overlap with toy-train)")
def heldout_prompts() -> list[str]:
    return captions(combos(held_out=True))


@PROMPT_SETS.register("toy-object-removal", "toy world: still shapes for toy_object_removal to make disappear")
def object_removal_prompts() -> list[str]:
    return captions(combos(held_out=False, directions=("still",)))


@PROMPT_SETS.register("toy-action", "toy world: moving shapes, whose direction toy_action scores")
def action_prompts() -> list[str]:
    return captions(combos(held_out=False, directions=("left", "right", "up", "down")))
