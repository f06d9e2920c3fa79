"""Headroom of the toy rewards: where the base model sits between chance and the best procedural videos.

For one reward and one set of toy captions, the mean reward of three kinds of video (one per caption):
- "chance": shuffled captions (each caption scored on another's render) for a reward that reads the prompt,
  frames of random scenes for one that does not (the reward's `prompt_free`);
- "oracle": the reference video the reward declares best (its `oracle`: the caption's render, the
  aesthetic rule's best scene, or the caption's background alone);
- "base": the base model's videos of the same captions, when given.
Beside each, the reward's gold (`gold_chance`, ...), and `base_position` (`gold_base_position`): where the
base model sits from chance (0) to the oracle (1). A study can only tell methods apart on a reward where
the base model leaves room: at most halfway (a position <= 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vaderbench.rewards.base import Reward, build_reward
from vaderbench.toyworld.evaluate import heldout_prompts, on_base_videos
from vaderbench.toyworld.references import reference_videos
from vaderbench.toyworld.weights import WEIGHTS_DIR

#: the default study's clip (experiments/efficiency.yaml: 4 frames at 16, 32 and 64 px)
STUDY_FRAMES = 4
STUDY_SIZES = (16, 32, 64)
SCORING_BATCH = 32


def chance_kind(reward: Reward) -> str:
    return "random" if reward.prompt_free else "shuffled"


@torch.no_grad()
def scores(reward: Reward, videos: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward ("proxy") and its gold of each video: [N] each, scored in batches."""
    proxy, gold = [], []
    for start in range(0, len(prompts), SCORING_BATCH):
        chunk, batch = prompts[start : start + SCORING_BATCH], videos[start : start + SCORING_BATCH]
        proxy.append(reward(batch, chunk))
        gold.append(reward.gold(batch, chunk))
    return torch.cat(proxy), torch.cat(gold)


def mean_scores(reward: Reward, videos: torch.Tensor, prompts: Sequence[str]) -> dict[str, float]:
    """The reward's mean over the videos ("proxy") and its gold's ("gold")."""
    proxy, gold = scores(reward, videos, prompts)
    return {"proxy": float(proxy.sum()) / len(prompts), "gold": float(gold.sum()) / len(prompts)}


def position(chance: float, base: float, oracle: float) -> float | None:
    return round((base - chance) / (oracle - chance), 4) if oracle != chance else None


def headroom(
    reward: str | Reward,
    prompts: Sequence[str],
    frames: int,
    size: int,
    seed: int,
    base_videos: torch.Tensor | None = None,
) -> dict[str, float | None]:
    """{"chance", "oracle"[, "base", "base_position"]} of a toy reward (by name or built), and the same of its
    gold prefixed "gold_"; chance and oracle videos from `seed` (`references.reference_videos`)."""
    reward = build_reward(reward) if isinstance(reward, str) else reward
    if not all(hasattr(reward, key) for key in ("prompt_free", "oracle", "gold")):
        raise ValueError(f"headroom needs a toy reward (prompt_free, oracle, gold), got {type(reward).__name__}")
    kinds = {"chance": chance_kind(reward), "oracle": reward.oracle}
    scores = {
        name: mean_scores(reward, reference_videos(prompts, frames, size, kind, seed), prompts)
        for name, kind in kinds.items()
    }
    if base_videos is not None:
        scores["base"] = mean_scores(reward, base_videos, prompts)
    out = {}
    for measure, prefix in (("proxy", ""), ("gold", "gold_")):
        out.update({prefix + name: round(values[measure], 4) for name, values in scores.items()})
        if base_videos is not None:
            out[prefix + "base_position"] = position(*(scores[k][measure] for k in ("chance", "base", "oracle")))
    return out


def evaluate_headroom(
    weights: Path = WEIGHTS_DIR, count: int = 60, seed: int = 4321, sizes=STUDY_SIZES, frames: int = STUDY_FRAMES
) -> dict:
    """{reward: {size: headroom}} for every toy reward on `count` held-out captions; one set of base videos
    per size (sampled as `evaluate.base_accuracy` samples, at the study's clip length) serves every reward."""
    prompts = heldout_prompts(count, seed)
    return on_base_videos(
        weights,
        prompts,
        sizes,
        frames,
        seed,
        lambda reward, base, size: headroom(reward, prompts, frames, size, seed, base),
    )
