"""The toy world's vocabulary: what its captions can say."""

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down", "still")
FILLER = ("a", "an", "the", "moving", "standing", "on", "background", "and", "with", "no", "of", "video")

VOCAB = tuple(dict.fromkeys(FILLER + COLOURS + SHAPES + DIRECTIONS))


def caption(colour: str, shape: str, direction: str, background: str) -> str:
    motion = "standing still" if direction == "still" else f"moving {direction}"
    return f"a {colour} {shape} {motion} on a {background} background"
