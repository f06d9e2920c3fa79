"""`vaderbench toyworld build`: train every toy model from scratch, deterministically from one seed.

Each stage gets its own seed (seed + stage number) for its initial weights and its data, so a stage's
result does not depend on how long the stages before it ran.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vaderbench.toyworld import train_base, train_rewards
from vaderbench.toyworld.nets import CLIP_CONFIG
from vaderbench.toyworld.stages import STAGES
from vaderbench.toyworld.train_aesthetic import AestheticRecipe, build_aesthetic
from vaderbench.toyworld.weights import WEIGHTS_DIR, save_network


@dataclass(frozen=True)
class BuildSteps:
    """Optimiser steps per model (the stages of a build, in order), and the aesthetic reward's recipe."""

    clip: int = 800
    detector: int = 600
    direction: int = 800
    aesthetic_clean: int = 400
    predictor: int = 400
    #: 10000 steps of the same recipe drew held-out shapes at 0.47-0.53 on 240 captions, under chance + 0.2
    base: int = 20000
    #: the learned aesthetic reward's data and training (`train_aesthetic.AestheticRecipe`)
    aesthetic: AestheticRecipe = field(default_factory=AestheticRecipe)

    def scaled(self, factor: float) -> BuildSteps:
        steps = {k: max(1, int(v * factor)) for k, v in vars(self).items() if isinstance(v, int)}
        return BuildSteps(**steps, aesthetic=self.aesthetic.scaled(factor))


def _stage(seed: int, number: int) -> torch.Generator:
    torch.manual_seed(seed + number)
    return torch.Generator().manual_seed(seed + number)


def build(
    out: Path = WEIGHTS_DIR, seed: int = 0, steps: BuildSteps = BuildSteps(), only: tuple[str, ...] = STAGES
) -> float:
    """Train and save the toy models of `only` into `out`; returns the wall time in seconds.

    A stage's weights do not depend on the other stages' (each has its own seed), except that the
    clean-render aesthetic head and the frame predictor are trained on the CLIP in `out` when `only` skips it,
    and the aesthetic reward on the base model in `out` when `only` skips that.
    """
    from vaderbench.rewards.toy_clip import load_toy_clip

    unknown = sorted(set(only) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown build stage(s) {', '.join(unknown)}; the stages are {', '.join(STAGES)}")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    clip = None
    if "clip" in only:
        clip = train_rewards.train_clip(_stage(seed, 1), steps.clip)
        save_network(clip, "toy_clip", CLIP_CONFIG, out)
    if "detector" in only:
        save_network(train_rewards.train_detector(_stage(seed, 2), steps.detector), "shape_detector", {}, out)
    if "direction" in only:
        save_network(train_rewards.train_direction(_stage(seed, 3), steps.direction), "direction_classifier", {}, out)
    if {"aesthetic_clean", "predictor"} & set(only):
        clip = clip if clip is not None else load_toy_clip(out)
    if "aesthetic_clean" in only:
        head = train_rewards.train_aesthetic(clip, _stage(seed, 4), steps.aesthetic_clean)
        save_network(head, "aesthetic_head", {}, out)
    if "predictor" in only:
        save_network(train_rewards.train_predictor(clip, _stage(seed, 5), steps.predictor), "frame_predictor", {}, out)
    if "base" in only:
        base = train_base.train_base(_stage(seed, 6), steps.base, seed=seed + 6)
        shutil.rmtree(out / "base", ignore_errors=True)
        base.save_pretrained(out / "base")
    if "aesthetic" in only:
        recipe = steps.aesthetic
        ensemble = build_aesthetic(out / "base", _stage(seed, 7), recipe)
        save_network(ensemble, "aesthetic_ensemble", {"members": recipe.members, "width": recipe.width}, out)
    return time.perf_counter() - start
