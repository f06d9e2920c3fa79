"""Is a learned toy reward a faithful proxy of its gold? Checks on the base model's own videos, before any study.

A proxy is only worth optimising if, on the videos the model makes, it orders them as the truth does:
- `pair_accuracy`: same-caption pairs ordered as the gold orders them (all pairs whose gold differs, and
  those at least `margin` apart), with a bootstrap 95% interval over captions;
- `best_of_n`: the gold of the best of n videos of a caption chosen by the reward, beside the best of n
  chosen by the gold itself (the ceiling): selecting by a useful proxy raises the truth, with no training;
- `ladder`: along a caption's clean render and the render under a corruption of rising strength, the
  Spearman correlation of the reward with the gold: does it know "cleaner" beyond the model's samples?
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from vaderbench.toyworld import headroom
from vaderbench.toyworld.corrupt import KINDS, corrupt
from vaderbench.toyworld.evaluate import heldout_prompts, on_base_videos
from vaderbench.toyworld.references import reference_videos

BEST_OF = (1, 2, 4, 8, 16)
LADDER_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: a gold difference that matters: about 2 within-caption standard deviations of the base model's videos
MARGIN = 0.05


def ordered_pairs(scores: torch.Tensor, gold: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per caption (rows of [C, n]): how many same-caption pairs have gold at least `margin` apart (and not
    equal), and how many of those the scores order as the gold does (a score tie counts half)."""
    upper = torch.triu(torch.ones(scores.shape[1], scores.shape[1], dtype=torch.bool), diagonal=1)
    gold_gap = gold[:, :, None] - gold[:, None, :]
    score_gap = scores[:, :, None] - scores[:, None, :]
    counted = upper & (gold_gap.abs() >= margin) & (gold_gap != 0)
    agree = torch.where(score_gap == 0, 0.5, ((gold_gap > 0) == (score_gap > 0)).double())
    return counted.sum(dim=(1, 2)).double(), (agree * counted).sum(dim=(1, 2))


def pair_accuracy(
    scores: torch.Tensor, gold: torch.Tensor, margin: float = 0.0, resamples: int = 1000, seed: int = 0
) -> dict[str, float | int | None]:
    """{"value", "low", "high", "pairs"}: the share of same-caption pairs ordered right, and its bootstrap 95%
    interval over captions (scores and gold [C, n], one row per caption); None where no pair counts."""
    pairs, right = ordered_pairs(scores, gold, margin)
    total = int(pairs.sum())
    if total == 0:
        return {"value": None, "low": None, "high": None, "pairs": 0}
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, len(pairs), (resamples, len(pairs)), generator=generator)
    shares = right[draws].sum(dim=1) / pairs[draws].sum(dim=1).clamp(min=1)
    low, high = torch.quantile(shares, torch.tensor([0.025, 0.975], dtype=shares.dtype)).tolist()
    return {"value": float(right.sum()) / total, "low": low, "high": high, "pairs": total}


def expected_best_of(scores: torch.Tensor, gold: torch.Tensor, n: int) -> torch.Tensor:
    """Per caption: the expected gold of the video with the highest score among n drawn without replacement
    from the caption's videos (rows of [C, N]). The video ranked r-th lowest (0-based) is the best of a
    random n-subset with probability C(r, n-1) / C(N, n)."""
    count = scores.shape[1]
    if not 1 <= n <= count:
        raise ValueError(f"best of n needs 1 <= n <= {count}, got {n}")
    order = scores.argsort(dim=1)
    chance = torch.tensor([math.comb(r, n - 1) / math.comb(count, n) for r in range(count)], dtype=torch.float64)
    return (gold.gather(1, order).double() * chance).sum(dim=1)


def best_of_n(scores: torch.Tensor, gold: torch.Tensor, ns: Sequence[int] = BEST_OF) -> dict[str, dict[str, float]]:
    """{n: {"by_reward", "by_gold"}}: the mean over captions of the expected gold of the best of n, chosen by
    the reward and by the gold itself (the ceiling)."""
    return {
        str(n): {
            "by_reward": float(expected_best_of(scores, gold, n).mean()),
            "by_gold": float(expected_best_of(gold, gold, n).mean()),
        }
        for n in ns
    }


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation along the last dimension (average ranks for ties); NaN where either is constant."""

    def ranks(values: torch.Tensor) -> torch.Tensor:
        less = (values[..., :, None] > values[..., None, :]).double().sum(dim=-1)
        same = (values[..., :, None] == values[..., None, :]).double().sum(dim=-1)
        return less + (same + 1) / 2

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(dim=-1, keepdim=True), ry - ry.mean(dim=-1, keepdim=True)
    return (rx * ry).sum(dim=-1) / (rx.norm(dim=-1) * ry.norm(dim=-1))


@torch.no_grad()
def ladder(reward, prompts: list[str], size: int, frames: int, seed: int) -> dict[str, float | None]:
    """{corruption: mean Spearman of reward and gold along each caption's ladder, "mean": over corruptions}.
    Ladders along which the gold does not change are left out (None where every one is)."""
    clean = reference_videos(prompts, frames, size, "caption", seed)
    out = {}
    for kind in KINDS:
        # one draw of the corruption's randomness for every rung: the rungs differ in strength alone
        rungs = [corrupt(clean, kind, s, torch.Generator().manual_seed(seed)) for s in LADDER_STRENGTHS]
        scores = torch.stack([reward(rung, prompts) for rung in rungs], dim=1)
        gold = torch.stack([reward.gold(rung, prompts) for rung in rungs], dim=1)
        rho = spearman(scores.double(), gold.double())
        rho = rho[~rho.isnan()]
        out[kind] = float(rho.mean()) if len(rho) else None
    measured = [value for value in out.values() if value is not None]
    out["mean"] = sum(measured) / len(measured) if measured else None
    return out


def proxy_checks(reward, videos: torch.Tensor, prompts: list[str], samples: int, size: int, seed: int) -> dict:
    """The three checks of one reward on base-model videos [C * samples, F, ...] of `prompts` (C captions,
    each repeated `samples` times in a row)."""
    scores, gold = (values.view(-1, samples) for values in headroom.scores(reward, videos, prompts))
    captions = prompts[::samples]
    return {
        "pair_accuracy": {"all": pair_accuracy(scores, gold), f"gap_{MARGIN}": pair_accuracy(scores, gold, MARGIN)},
        "best_of_n": best_of_n(scores, gold, [n for n in BEST_OF if n <= samples]),
        "ladder": ladder(reward, captions, size, videos.shape[1], seed),
    }


def evaluate_proxies(weights, captions: int, samples: int = 16, seed: int = 2468, sizes=headroom.STUDY_SIZES) -> dict:
    """{reward: {size: checks}} for every toy reward with a gold, on `samples` base-model videos of each of
    `captions` held-out captions per size (the study's clip and sampler)."""
    prompts = [p for p in heldout_prompts(captions, seed) for _ in range(samples)]
    return on_base_videos(
        weights, prompts, sizes, headroom.STUDY_FRAMES, seed,
        lambda reward, videos, size: proxy_checks(reward, videos, prompts, samples, size, seed),
    )  # fmt: skip
