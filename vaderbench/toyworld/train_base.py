"""Pretraining of the toy text-to-video model: v-prediction on procedural videos at 16, 32 and 64 px.

One set of weights serves the whole resolution sweep because every batch is drawn at one of the three
sizes in turn (the denoiser is convolutional, with positions coded in frame units), and both frame
counts the studies use (4 and 8). Captions are dropped (replaced by the empty prompt, the model's null
condition) 10% of the time, so that classifier-free guidance works at sampling time, and a share of
them (`COLOUR_CAPTION_NOISE`) name a wrong object colour.

Training runs in fp32: on some machines of this kind torch 2.14's CPU build runs bf16 Conv3d through
`slow_conv3d_forward`, 12 to 60 times slower than fp32 for these shapes (measured at batch 32 x 16 px to
batch 8 x 64 px); one whose CPU reports avx512_bf16 ran it as fast as fp32. fp32 is fast on both.
"""

from __future__ import annotations

import dataclasses

import torch

from vaderbench.models.toy import ToyVideoModel
from vaderbench.toyworld.data import video_batch
from vaderbench.toyworld.fit import fit
from vaderbench.toyworld.render import Scenes
from vaderbench.toyworld.vocab import COLOURS, VOCAB

#: the shipped model's denoiser: patch 4 keeps the 64 px forward near 40 ms at batch 4 x 8 frames
BASE_UNET = {"patch": 4, "channels": (64, 128), "text_dim": 64, "heads": 4, "emb_dim": 128}
#: (size, batch) cycled over steps: each costs about the same, so the three sizes get equal compute
SIZE_BATCHES = ((16, 32), (32, 16), (64, 8))
FRAME_COUNTS = (8, 4)
CAPTION_DROPOUT = 0.1
#: share of training captions whose object colour is wrong, as in noisy web captions. With right captions
#: only, the model drew the named colour for 98-100% of held-out captions (all three sizes) and alignment had
#: nothing to fix there; guidance 3 sharpens the lie only partly away (docs/toy-world.md)
COLOUR_CAPTION_NOISE = 0.3
NUM_TIMESTEPS = 1000
#: timesteps are drawn uniformly from [start, NUM_TIMESTEPS) for one of these starts, with these odds
TIMESTEP_MIXTURE = ((0, 0.4), (600, 0.3), (900, 0.3))
#: objects start in the middle fifth of the range that keeps them in frame, so a caption's direction says
#: where the object is in each frame (moving left: right of centre early, left of it late). With starts
#: anywhere, the videos one caption stands for average out to a blur that barely depends on the direction
#: word: knowing it lowers the best clean-video MSE from pure noise by 0.014 (0.184 -> 0.170), against
#: 0.075 (0.100 -> 0.025) with centred starts (white on black, 16 px, 4 frames). The reward models see every start.
START_SPREAD = 0.2


def sample_timesteps(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Timesteps from TIMESTEP_MIXTURE: uniform ones, and more of them where the caption decides the picture.

    With uniform timesteps alone the model learns to denoise but hardly to read the caption: below
    t = 600 the noisy video itself shows colour, shape and motion, so the text barely lowers the loss
    there, and samples come out grey. Training the high-noise steps alone instead makes the model forget
    the last denoising steps, and its samples keep their noise. Which way an object moves is decided in
    the first steps from pure noise (t >= 900): with t >= 600 as the only extra range (17.5% of draws at
    t >= 900), the model's estimate at t = 999 knew the axis of the motion but not its sign (the object
    split in two at the first and last frames) and its videos moved the named way 27-42% of the time.
    """
    starts = torch.tensor([start for start, _ in TIMESTEP_MIXTURE])
    odds = torch.tensor([share for _, share in TIMESTEP_MIXTURE])
    start = starts[torch.multinomial(odds, batch, replacement=True, generator=generator)]
    return start + (torch.rand(batch, generator=generator) * (NUM_TIMESTEPS - start)).long()


def miscaption_colours(scenes: Scenes, share: float, generator: torch.Generator) -> Scenes:
    """`scenes` with the first object's colour label, in `share` of them, swapped for one it is not.

    The wrong colour is uniform over those that are neither the object's nor the background's (a caption
    never puts an object on a background of its own colour). Only the labels change, so rendering the
    returned scenes would not give the same videos: caption them, don't render them.
    """
    n = len(scenes)
    rows = torch.arange(n)
    allowed = torch.ones(n, len(COLOURS))
    allowed[rows, scenes.colour[:, 0]] = 0
    allowed[rows, scenes.background] = 0
    wrong = torch.multinomial(allowed, 1, generator=generator).squeeze(1)
    lie = torch.rand(n, generator=generator) < share
    colour = scenes.colour.clone()
    colour[:, 0] = torch.where(lie, wrong, colour[:, 0])
    return dataclasses.replace(scenes, colour=colour)


def fit_denoising(model: ToyVideoModel, generator: torch.Generator, steps: int) -> ToyVideoModel:
    """v-prediction on fresh procedural videos; returns the model frozen, in eval mode."""

    def loss_at(step):
        size, batch = SIZE_BATCHES[step % len(SIZE_BATCHES)]
        frames = FRAME_COUNTS[(step // len(SIZE_BATCHES)) % len(FRAME_COUNTS)]
        videos, scenes = video_batch(batch, generator, frames=frames, sizes=(size,), augment=False, spread=START_SPREAD)
        clean = videos.transpose(1, 2) * 2 - 1  # [B, C, F, H, W] in [-1, 1]
        told = miscaption_colours(scenes, COLOUR_CAPTION_NOISE, generator).captions()
        drop = torch.rand(batch, generator=generator) < CAPTION_DROPOUT
        captions = ["" if d else c for d, c in zip(drop.tolist(), told)]
        t = sample_timesteps(batch, generator)
        noise = torch.randn(clean.shape, generator=generator)
        text, mask = model.text_encoder(model.tokenizer(captions))
        v = model.denoiser(model.scheduler.add_noise(clean, noise, t), t, text, mask)
        return ((v - model.scheduler.get_velocity(clean, noise, t)) ** 2).mean()

    model.train()
    fit(model.parameters(), loss_at, steps, lr=1e-3, desc="base model", warmup=200)
    return model.requires_grad_(False).eval()


def train_base(generator: torch.Generator, steps: int, seed: int) -> ToyVideoModel:
    model = ToyVideoModel.random(VOCAB, seed=seed, **BASE_UNET)
    return fit_denoising(model, generator, steps)
