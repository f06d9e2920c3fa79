"""The toy base model's clean estimate at each noise level: where it loses what its captions ask for.

Procedural videos (fresh seed, the eval's 8 frames) are noised to timestep t and the model, given their captions,
estimates the clean video in one call, as a DDIM step does (x0 = (x_t - sqrt(1 - a) eps) / sqrt(a),
clipped to the pixel range). `diagnose` reports, per t, the RMS error of that estimate next to the RMS
of the noise it was given (a denoiser that removes nothing scores the same as the noise), and the toy
judges' shape and direction accuracy on it (`evaluate.judge`; about 1 on clean renders). Where direction
falls, the model no longer reconstructs the motion. `analysis/toy_denoiser_diagnostics.py` prints it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaderbench.models.toy import ToyVideoModel
from vaderbench.rewards.toy_action import ToyActionReward
from vaderbench.rewards.toy_object_removal import ToyObjectRemovalReward
from vaderbench.toyworld.evaluate import FRAMES, judge
from vaderbench.toyworld.render import random_scenes, render
from vaderbench.toyworld.vocab import DIRECTIONS, SHAPES

TIMESTEPS = (10, 99, 199, 399, 599, 799, 999)


@torch.no_grad()
def clean_estimates(model: ToyVideoModel, clean: torch.Tensor, captions: list[str], t: int, generator: torch.Generator):
    """The noisy input and the model's clipped clean estimate, both [B, C, F, H, W] in [-1, 1]."""
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.full((clean.shape[0],), t)
    noisy = model.scheduler.add_noise(clean, noise, timesteps)
    eps = model.predict_noise(noisy, timesteps, model.encode_prompts(captions))
    a = model.scheduler.alphas_cumprod[t]
    return noisy, ((noisy - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)


def diagnose(model: ToyVideoModel, weights: Path, size: int, count: int, seed: int, timesteps=TIMESTEPS) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    detector = ToyObjectRemovalReward(str(weights)).freeze().detector
    classifier = ToyActionReward(str(weights)).freeze().classifier
    scenes = random_scenes(count, generator)
    clean = render(scenes, FRAMES, size).transpose(1, 2) * 2 - 1
    truth = {"shape": [SHAPES[i] for i in scenes.shape[:, 0]], "direction": [DIRECTIONS[i] for i in scenes.direction[:, 0]]}
    rows = []
    for t in timesteps:
        noisy, estimate = clean_estimates(model, clean, scenes.captions(), t, generator)
        seen = judge((estimate.transpose(1, 2) + 1) / 2, detector, classifier)
        row = {"size": size, "t": t, "noise_rms": float((noisy - clean).square().mean().sqrt())}
        row["estimate_rms"] = float((estimate - clean).square().mean().sqrt())
        for key in truth:
            row[key] = sum(a == b for a, b in zip(seen[key], truth[key])) / count
        rows.append(row)
    return rows
