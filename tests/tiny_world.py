"""A tiny toy model quickly fitted to a trivial video distribution, for tests of the core mechanics; and the
options of a whole toy-world build (`vaderbench toyworld build`) small enough for a test.

Random weights make DDIM produce saturated videos whose clamped pixels carry no gradient; a few hundred
denoising steps on videos of one random colour each give a real (if simple) diffusion model in seconds.
"""

from __future__ import annotations

import copy
import functools

import torch

from vaderbench.models.toy import ToyVideoModel
from vaderbench.toyworld.vocab import VOCAB

#: 5 steps of the base model (each size its recipe trains at, both frame counts); 1 step of every other model
TINY_BUILD_SCALE, TINY_BUILD_SEED = 0.0003, 7
TINY_BUILD = ["--scale", str(TINY_BUILD_SCALE), "--seed", str(TINY_BUILD_SEED)]

TINY_UNET = {"channels": (16, 32), "emb_dim": 32, "text_dim": 64, "heads": 2}
PROMPTS = [
    "a red circle moving left on a blue background",
    "a green square moving up on a black background",
    "a blue triangle standing still on a white background",
    "a yellow circle moving down on a purple background",
]


def solid_colour_videos(count: int, frames: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Videos in [-1, 1] of one random colour each, [B, 3, F, H, W]."""
    colours = torch.rand(count, 3, 1, 1, 1, generator=generator) * 1.6 - 0.8
    return colours.expand(count, 3, frames, size, size).contiguous()


def fitted_tiny_model(steps: int = 150, seed: int = 0) -> ToyVideoModel:
    model = ToyVideoModel.random(VOCAB, seed=seed, **TINY_UNET)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.denoiser.parameters(), lr=3e-3)
    alphas = model.scheduler.alphas_cumprod
    for _ in range(steps):
        clean = solid_colour_videos(16, 4, 16, generator)
        t = torch.randint(0, 1000, (16,), generator=generator)
        noise = torch.randn(clean.shape, generator=generator)
        a = alphas[t].view(-1, 1, 1, 1, 1)
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(16)]
        eps = model.predict_noise(a.sqrt() * clean + (1 - a).sqrt() * noise, t, model.encode_prompts(prompts))
        loss = ((eps - noise) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=1)
def _shared_fitted_model() -> ToyVideoModel:
    return fitted_tiny_model()


def tiny_model() -> ToyVideoModel:
    """A fresh copy of the fitted tiny model (fitted once per test session)."""
    return copy.deepcopy(_shared_fitted_model())
