"""The build of the learned aesthetic reward (`toy_aesthetic`), in two rounds, as SEIKO refreshes its proxy:

1. labelled caption groups at every study size (`preference_data`): the base model's videos, perturbed
   policies' videos and corrupted renders; an ensemble trained on them;
2. hardening: VADER aligns the base model against that first ensemble for a few steps at a few learning
   rates; the aligned policies' videos join their captions' groups beside the base model's, labelled by
   the gold, and the ensemble is trained again on everything. The first ensemble's blind spots are where
   optimising it leads; the second has seen what lies there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vaderbench.policy import Policy
from vaderbench.toyworld.evaluate import sample_videos
from vaderbench.toyworld.nets import CriticEnsemble
from vaderbench.toyworld.preference_data import FRAMES, SAMPLERS, LabelledFrames, caption_groups
from vaderbench.toyworld.prompts import train_prompts
from vaderbench.toyworld.train_rewards import train_aesthetic_ensemble

SIZES = (16, 32, 64)  # the study's resolutions


@dataclass(frozen=True)
class AestheticRecipe:
    #: training captions per size, each a group of 16 videos (`preference_data.caption_groups`): all of toy-train
    captions: int = 560
    #: optimiser steps per ensemble member in the second round (the first, which only guides the hardening
    #: runs, takes a quarter). Held-out pair accuracy still climbs at several thousand steps a size
    steps: int = 8000
    #: the size each step trains on, in turn: the small sizes converge slowest and cost least, and what the
    #: network learns at 16 and 32 px carries to 64 px better than the reverse
    cycle: tuple[int, ...] = (16, 32, 16, 32, 64)
    members: int = 4
    width: int = 16
    #: VADER's learning rates in the hardening round: where its reward rises slowly, fast, and past the truth
    hardening_lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    hardening_steps: int = 15
    #: captions per size whose groups gain the hardened policies' videos (4 from each, 4 from the base model)
    hardening_captions: int = 48

    def scaled(self, factor: float) -> AestheticRecipe:
        """The recipe with its data and steps scaled (a quick check of the pipeline); members and width kept."""
        return replace(
            self,
            captions=max(2, int(self.captions * factor)),
            steps=max(1, int(self.steps * factor)),
            hardening_steps=max(1, int(self.hardening_steps * factor)),
            hardening_captions=max(2, int(self.hardening_captions * factor)),
        )


def pick(captions: list[str], count: int, generator: torch.Generator) -> list[str]:
    return [captions[i] for i in torch.randperm(len(captions), generator=generator)[:count].tolist()]


def aligned_groups(
    policy: Policy, reward, captions: list[str], size: int, seed: int, recipe: AestheticRecipe, first_group: int
) -> LabelledFrames:
    """Per caption: 4 base-model videos and 4 from each policy aligned by VADER against `reward`."""
    from vaderbench.algorithms.vader import Vader, VaderConfig

    sampler = SAMPLERS[0]
    start = policy.lora_state_dict()
    prompts = [c for c in captions for _ in range(4)]
    group = torch.arange(len(captions)).repeat_interleave(4) + first_group
    parts = [LabelledFrames.of_videos(sample_videos(policy, prompts, FRAMES, size, seed), group)]
    for number, lr in enumerate(recipe.hardening_lrs):
        config = VaderConfig(
            lr=lr, batch_size=4, num_steps=sampler.num_steps, eta=sampler.eta, guidance_scale=sampler.guidance_scale
        )
        aligner = Vader(policy, reward, config, frames=FRAMES, height=size, width=size, seed=seed + number)
        train = train_prompts()
        for step in range(recipe.hardening_steps):
            aligner.step([train[(seed + 4 * step + i) % len(train)] for i in range(4)])
        videos = sample_videos(policy, prompts, FRAMES, size, seed + 1000 * (number + 1))
        parts.append(LabelledFrames.of_videos(videos, group))
        policy.load_lora_state_dict(start)
    return LabelledFrames.cat(parts)


def build_aesthetic(base, generator: torch.Generator, recipe: AestheticRecipe = AestheticRecipe()) -> CriticEnsemble:
    """Train the learned aesthetic reward on the base model in folder `base` (see the module's doc)."""
    from vaderbench.models.toy import load_toy_model
    from vaderbench.rewards.toy_aesthetic import ToyAestheticReward

    policy = Policy(load_toy_model(str(base)), lora_rank=8)
    captions = train_prompts()
    data = {}
    for size in SIZES:
        data[size] = caption_groups(policy, pick(captions, recipe.captions, generator), size, 10_000 * size, generator)

    def ensemble(steps: int) -> CriticEnsemble:
        return train_aesthetic_ensemble(data, generator, steps, recipe.cycle, recipe.members, width=recipe.width)

    first = ensemble(recipe.steps // 4)
    reward = ToyAestheticReward(ensemble=first)
    for size in SIZES:
        groups = int(data[size].group.max()) + 1
        chosen = pick(captions, recipe.hardening_captions, generator)
        hardened = aligned_groups(policy, reward, chosen, size, 20_000 * size, recipe, first_group=groups)
        data[size] = LabelledFrames.cat([data[size], hardened])
    return ensemble(recipe.steps)
