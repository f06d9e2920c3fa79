"""The toy world's vocabulary: what its captions can say, and how they are read back into labels."""

from __future__ import annotations

import re

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down", "still")
FILLER = ("a", "an", "the", "moving", "standing", "on", "background", "and", "with", "no", "of", "video")

VOCAB = tuple(dict.fromkeys(FILLER + COLOURS + SHAPES + DIRECTIONS))

#: linear RGB in [0, 1] of each colour name, for shapes and backgrounds alike
RGB = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "purple": (0.60, 0.20, 0.80),
    "orange": (1.00, 0.55, 0.05),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
}

#: unit screen velocity of each direction (x right, y down); "still" does not move
VELOCITY = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "still": (0.0, 0.0)}


def object_phrase(colour: str, shape: str, direction: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    motion = "standing still" if direction == "still" else f"moving {direction}"
    return f"{article} {colour} {shape} {motion}"


def caption(colour: str, shape: str, direction: str, background: str) -> str:
    return f"{object_phrase(colour, shape, direction)} on a {background} background"


def first_word_of(prompt: str, words: tuple[str, ...], what: str) -> str:
    """The first of `words` in `prompt` (ValueError naming the prompt when there is none)."""
    for word in re.findall(r"[a-z]+", prompt.lower()):
        if word in words:
            return word
    raise ValueError(f"prompt {prompt!r} names no {what} (one of {', '.join(words)})")


def parse_caption(prompt: str) -> dict[str, str]:
    """Colour, shape and direction of the caption's first object, and its background colour."""
    words = re.findall(r"[a-z]+", prompt.lower())
    if (
        "background" not in words
        or words.index("background") == 0
        or words[words.index("background") - 1] not in COLOURS
    ):
        raise ValueError(f"prompt {prompt!r} names no background colour (`... on a <colour> background`)")
    return {
        "colour": first_word_of(prompt, COLOURS, "colour"),
        "shape": first_word_of(prompt, SHAPES, "shape"),
        "direction": first_word_of(prompt, DIRECTIONS, "direction"),
        "background": words[words.index("background") - 1],
    }
