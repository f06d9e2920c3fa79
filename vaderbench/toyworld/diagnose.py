"""The toy base model's clean estimate at each noise level: where it loses what its captions ask for.

Procedural videos (fresh seed, the eval's 8 frames) are noised to timestep t and the model, given their captions,
estimates the clean video in one call, as a DDIM step does (x0 = (x_t - sqrt(1 - a) eps) / sqrt(a),
clipped to the pixel range). `diagnose` reports, per t, the RMS error of that estimate next to the RMS
of the noise it was given (a denoiser that removes nothing scores the same as the noise), and the toy
judges' shape and direction accuracy on it (`gold.judge`; about 1 on clean renders). Where direction
falls, the model no longer reconstructs the motion. `caption_sensitivity` asks whether the model reads each
word at all: the RMS change of its clean estimate, from the same noisy input, when the caption's colour,
shape or direction word alone is changed. `analysis/toy_denoiser_diagnostics.py` prints both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from vaderbench.models.toy import ToyVideoModel
from vaderbench.rewards.toy_action import ToyActionReward
from vaderbench.rewards.toy_object_removal import ToyObjectRemovalReward
from vaderbench.toyworld.evaluate import FRAMES
from vaderbench.toyworld.gold import judge
from vaderbench.toyworld.render import Scenes, random_scenes, render
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES

TIMESTEPS = (10, 99, 199, 399, 599, 799, 999)


def noised(model: ToyVideoModel, clean: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=generator)
    return model.scheduler.add_noise(clean, noise, torch.full((clean.shape[0],), t))


@torch.no_grad()
def clean_estimate(model: ToyVideoModel, noisy: torch.Tensor, captions: list[str], t: int) -> torch.Tensor:
    """The model's clipped one-call clean estimate from x_t, [B, C, F, H, W] in [-1, 1]."""
    eps = model.predict_noise(noisy, torch.full((noisy.shape[0],), t), model.encode_prompts(captions))
    a = model.scheduler.alphas_cumprod[t]
    return ((noisy - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)


def diagnose(model: ToyVideoModel, weights: Path, size: int, count: int, seed: int, timesteps=TIMESTEPS) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    detector = ToyObjectRemovalReward(str(weights)).freeze().detector
    classifier = ToyActionReward(str(weights)).freeze().classifier
    scenes = random_scenes(count, generator)
    clean = render(scenes, FRAMES, size).transpose(1, 2) * 2 - 1
    truth = {
        "shape": [SHAPES[i] for i in scenes.shape[:, 0]],
        "direction": [DIRECTIONS[i] for i in scenes.direction[:, 0]],
    }
    rows = []
    for t in timesteps:
        noisy = noised(model, clean, t, generator)
        estimate = clean_estimate(model, noisy, scenes.captions(), t)
        seen = judge((estimate.transpose(1, 2) + 1) / 2, detector, classifier)
        row = {"size": size, "t": t, "noise_rms": float((noisy - clean).square().mean().sqrt())}
        row["estimate_rms"] = float((estimate - clean).square().mean().sqrt())
        for key in truth:
            row[key] = sum(a == b for a, b in zip(seen[key], truth[key])) / count
        rows.append(row)
    return rows


def _with_other(scenes: Scenes, attribute: str) -> Scenes:
    """The same scenes with the first object's colour, shape or direction moved to the next one (never the
    background's colour)."""
    changed = replace(scenes, **{attribute: getattr(scenes, attribute).clone()})
    values = getattr(changed, attribute)
    count = {"colour": len(COLOURS), "shape": len(SHAPES), "direction": len(DIRECTIONS)}[attribute]
    values[:, 0] = (values[:, 0] + 1) % count
    if attribute == "colour":
        clash = values[:, 0] == scenes.background
        values[clash, 0] = (values[clash, 0] + 1) % count
    return changed


def caption_sensitivity(model: ToyVideoModel, size: int, count: int, seed: int, timesteps=(899, 599)) -> list[dict]:
    """Per t: RMS change of the clean estimate when one word of each caption changes, from the same noisy input."""
    generator = torch.Generator().manual_seed(seed)
    scenes = random_scenes(count, generator)
    clean = render(scenes, FRAMES, size).transpose(1, 2) * 2 - 1
    rows = []
    for t in timesteps:
        noisy = noised(model, clean, t, generator)
        estimate = clean_estimate(model, noisy, scenes.captions(), t)
        row = {"size": size, "t": t}
        for attribute in ("colour", "shape", "direction"):
            other = clean_estimate(model, noisy, _with_other(scenes, attribute).captions(), t)
            row[attribute] = float((other - estimate).square().mean().sqrt())
        rows.append(row)
    return rows
