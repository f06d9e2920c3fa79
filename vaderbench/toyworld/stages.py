"""The stages of `vaderbench toyworld build`, in order (here, not in build.py, so the CLI lists them without
importing torch)."""

#: the clean-render aesthetic head and the frame predictor read the toy CLIP; the aesthetic reward learns from the
#: base model's videos, so it comes after the base
STAGES = ("clip", "detector", "direction", "aesthetic_clean", "predictor", "base", "aesthetic")
