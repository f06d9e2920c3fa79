"""The toy world's temporal-consistency reward (the V-JEPA counterpart): minus the error of a predictor
of each frame's toy-CLIP embedding from the two frames before it. It was trained on smooth procedural
motion only (self-supervised), so flicker, identity changes and jumps raise its error. Gold: the fraction of
consecutive frame pairs in which the pixels show the same background and object colour and the object
moved at most 1.5x the clip's per-frame travel (`vaderbench.toyworld.gold.steady_fraction`)."""

from __future__ import annotations

from pathlib import Path

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import Reward
from vaderbench.rewards.toy_clip import load_toy_clip, unit_image_embedding
from vaderbench.toyworld.gold import steady_fraction
from vaderbench.toyworld.nets import FramePredictor
from vaderbench.toyworld.weights import WEIGHTS_DIR, load_network


@REWARDS.register("toy_consistency", "toy world: minus the error of a frame-embedding predictor (V-JEPA consistency)")
class ToyConsistencyReward(Reward):
    min_frames = FramePredictor.context + 1
    prompt_free = True
    oracle = "best_scene"  # the reference video that scores best (vaderbench.toyworld.references): any clean render

    def __init__(self, weights: str | None = None):
        super().__init__()
        directory = Path(weights) if weights else WEIGHTS_DIR
        self.clip = load_toy_clip(directory)
        self.predictor = load_network(FramePredictor(), "frame_predictor", directory)

    def forward(self, frames, prompts):
        b, f = frames.shape[:2]
        embeddings = unit_image_embedding(self.clip, frames.flatten(0, 1)).view(b, f, -1)
        return -self.predictor.error(embeddings)

    def gold(self, frames, prompts):
        return steady_fraction(frames)
