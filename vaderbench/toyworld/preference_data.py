"""The learned aesthetic reward's training data: what it will judge, labelled by the gold.

Real preference models (HPSv2, PickScore, ImageReward) are trained on generated samples with their
defects, compared among samples of the same prompt. So is this one. For each training caption, at each
study size, a *group* of videos:
- the base model's own videos (the study's sampler, and Euler-like DDIM at eta 0);
- videos of the base model under a small random LoRA perturbation (where a policy goes once it moves);
- the caption's clean render and the render under random corruptions (`corrupt`): what "cleaner" and
  "worse" look like beyond the base model's samples;
- in the hardening round, videos of policies aligned for a few steps against the first version of the
  reward (where optimising *this* reward leads; SEIKO refreshes its proxy the same way).
Every frame is labelled with its gold (`gold.gold_aesthetic` of the frame alone); the reward is trained on
pairs of frames from the same group (Bradley-Terry on the gold's order) and to the gold itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaderbench.policy import Policy, SamplerSettings
from vaderbench.toyworld.corrupt import KINDS, corrupt
from vaderbench.toyworld.evaluate import TOY_SAMPLER, sample_videos
from vaderbench.toyworld.gold import gold_aesthetic
from vaderbench.toyworld.references import reference_videos

#: the study's clip length; the reward scores frames, so the clip only sets how many frames a video gives
FRAMES = 4
#: the study sampler and deterministic DDIM: a user samples both ways
SAMPLERS = (TOY_SAMPLER, SamplerSettings(num_steps=10, eta=0.0, guidance_scale=3.0))
#: frames labelled at once: reading a frame holds a few [frames, colours, pixels] tensors, so 20k frames at 64 px
#: in one call would need tens of GiB
LABEL_CHUNK = 2048
#: scale of the random LoRA-B entries of a perturbed policy, drawn log-uniformly: at 0.03 the gold barely
#: moves, at 0.1 it falls by a quarter, at 0.3 by half (32 px, rank 8)
PERTURBATION = (0.02, 0.15)


@dataclass
class LabelledFrames:
    """Frames of one size with their caption group and gold."""

    frames: torch.Tensor  # [N, 3, S, S]
    group: torch.Tensor  # [N] caption group id
    gold: torch.Tensor  # [N]

    @staticmethod
    def of_videos(videos: torch.Tensor, group: torch.Tensor) -> LabelledFrames:
        """Every frame of videos [B, F, 3, S, S], each labelled with its own gold; `group` [B] per video."""
        frames = videos.flatten(0, 1)
        gold = torch.cat([gold_aesthetic(chunk[:, None]) for chunk in frames.split(LABEL_CHUNK)])
        return LabelledFrames(frames, group.repeat_interleave(videos.shape[1]), gold)

    @staticmethod
    def cat(parts: list[LabelledFrames]) -> LabelledFrames:
        return LabelledFrames(*(torch.cat([getattr(p, k) for p in parts]) for k in ("frames", "group", "gold")))


def lora_b(policy: Policy) -> list[torch.nn.Parameter]:
    return [p for name, p in policy.model.denoiser.named_parameters() if "lora_B" in name]


def perturb(policy: Policy, generator: torch.Generator) -> None:
    """Random LoRA-B weights at a log-uniform scale (the adapters' A are peft's random init)."""
    low, high = (math.log(x) for x in PERTURBATION)
    scale = math.exp(low + (high - low) * float(torch.rand(1, generator=generator)))
    for parameter in lora_b(policy):
        parameter.data = scale * torch.randn(parameter.shape, generator=generator)


def model_videos(
    policy: Policy,
    captions: list[str],
    size: int,
    seed: int,
    generator: torch.Generator,
    samples: int = 8,
    perturbed: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Videos of each caption: `samples` with the study's sampler and one deterministic from the policy as it
    is, `perturbed` from perturbed copies of it. Returns the videos and each one's caption index."""
    runs = [SAMPLERS[0]] * samples + [SAMPLERS[1]] + [None] * perturbed
    start = policy.lora_state_dict()
    videos = []
    for number, sampler in enumerate(runs):
        if sampler is None:
            perturb(policy, generator)
        run_seed = seed + 100_000 * number  # every video of the set has its own noise
        videos.append(sample_videos(policy, captions, FRAMES, size, run_seed, sampler=sampler or SAMPLERS[0]))
    policy.load_lora_state_dict(start)
    return torch.cat(videos), torch.arange(len(captions)).repeat(len(runs))


def render_videos(
    captions: list[str], size: int, seed: int, generator: torch.Generator, corrupted: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each caption's clean render and `corrupted` copies, each under a random corruption and strength."""
    clean = reference_videos(captions, FRAMES, size, "caption", seed)
    videos = [clean]
    for _ in range(corrupted):
        kinds = torch.randint(0, len(KINDS), (len(captions),), generator=generator)
        strengths = torch.rand(len(captions), generator=generator)
        copy = torch.stack(
            [
                corrupt(clean[i : i + 1], KINDS[k], float(s), generator)[0]
                for i, (k, s) in enumerate(zip(kinds, strengths))
            ]
        )
        videos.append(copy)
    return torch.cat(videos), torch.arange(len(captions)).repeat(len(videos))


def caption_groups(
    policy: Policy,
    captions: list[str],
    size: int,
    seed: int,
    generator: torch.Generator,
    corrupted: int = 3,
) -> LabelledFrames:
    """One group per caption (its index in `captions`): the model's videos and the renders (see the module)."""
    model, model_index = model_videos(policy, captions, size, seed, generator)
    renders, render_index = render_videos(captions, size, seed, generator, corrupted)
    return LabelledFrames.cat(
        [
            LabelledFrames.of_videos(model, model_index),
            LabelledFrames.of_videos(renders, render_index),
        ]
    )
