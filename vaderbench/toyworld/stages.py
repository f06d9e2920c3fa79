"""The stages of `vaderbench toyworld build`, in order (here, not in build.py, so the CLI lists them without
importing torch)."""

#: the aesthetic head and the frame predictor read the toy CLIP
STAGES = ("clip", "detector", "direction", "aesthetic", "predictor", "base")
