"""Pretraining of the toy text-to-video model: epsilon-prediction on procedural videos at 16, 32 and 64 px.

One set of weights serves the whole resolution sweep because every batch is drawn at one of the three
sizes in turn (the denoiser is fully convolutional). Captions are dropped (replaced by the empty prompt,
the model's null condition) 10% of the time, so that classifier-free guidance works at sampling time.
"""

from __future__ import annotations

import torch

from vaderbench.models.toy import ToyVideoModel
from vaderbench.toyworld.data import video_batch
from vaderbench.toyworld.fit import fit
from vaderbench.toyworld.vocab import VOCAB

#: the shipped model's denoiser: patch 4 keeps the 64 px forward near 40 ms at batch 4 x 8 frames (bf16)
BASE_UNET = {"patch": 4, "channels": (64, 128), "text_dim": 64, "heads": 4, "emb_dim": 128}
#: (size, batch) cycled over steps: each costs about the same, so the three sizes get equal compute
SIZE_BATCHES = ((16, 32), (32, 16), (64, 8))
FRAMES = 8
CAPTION_DROPOUT = 0.1
NUM_TIMESTEPS = 1000
HIGH_NOISE_FROM = 600


def fit_denoising(model: ToyVideoModel, generator: torch.Generator, steps: int, t_range: tuple[int, int], desc: str):
    """Epsilon-prediction on fresh procedural videos, timesteps uniform in `t_range` (inclusive, exclusive)."""
    alphas = model.scheduler.alphas_cumprod

    def loss_at(step):
        size, batch = SIZE_BATCHES[step % len(SIZE_BATCHES)]
        videos, scenes = video_batch(batch, generator, frames=FRAMES, sizes=(size,), augment=False)
        clean = videos.transpose(1, 2) * 2 - 1  # [B, C, F, H, W] in [-1, 1]
        drop = torch.rand(batch, generator=generator) < CAPTION_DROPOUT
        captions = ["" if d else c for d, c in zip(drop.tolist(), scenes.captions())]
        t = torch.randint(*t_range, (batch,), generator=generator)
        noise = torch.randn(clean.shape, generator=generator)
        a = alphas[t].view(-1, 1, 1, 1, 1)
        text, mask = model.text_encoder(model.tokenizer(captions))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            eps = model.denoiser(a.sqrt() * clean + (1 - a).sqrt() * noise, t, text, mask)
        return ((eps.float() - noise) ** 2).mean()

    model.train()
    fit(model.parameters(), loss_at, steps, lr=1e-3, desc=desc, warmup=200)
    return model.requires_grad_(False).eval()


def train_base(generator: torch.Generator, steps: int, seed: int) -> ToyVideoModel:
    """Phase 1: all timesteps (the first `steps` optimiser steps)."""
    model = ToyVideoModel.random(VOCAB, seed=seed, **BASE_UNET)
    return fit_denoising(model, generator, steps, (0, NUM_TIMESTEPS), "base model (all noise levels)")


def focus_high_noise(model: ToyVideoModel, generator: torch.Generator, steps: int) -> ToyVideoModel:
    """Phase 2: only t >= HIGH_NOISE_FROM, where the caption decides the picture.

    With uniform timesteps the model learns to denoise but hardly to read the caption: below t = 600
    the noisy video itself shows colour, shape and motion, so the text barely lowers the loss there, and
    samples come out grey. Training the high-noise steps alone teaches the layout from the caption.
    """
    model.requires_grad_(True)
    return fit_denoising(model, generator, steps, (HIGH_NOISE_FROM, NUM_TIMESTEPS), "base model (high noise)")
