"""A reward ensemble aggregated conservatively: a defence against reward hacking.

Coste et al. 2023, "Reward model ensembles help mitigate overoptimization" (arXiv 2310.02743; code:
tlc4418/llm_optimization `src/reward_modeling/scoring/ppo_reward_functions.py`): optimise an aggregate of
several reward models' scores [M, B] that is low where they disagree, so that a policy gains little from what
only one member likes. Aggregates (`AGGREGATES`), over the members m of each video:

- `mean`: mean_m r_m (the plain ensemble; `toy_aesthetic`'s own value);
- `min`: min_m r_m, worst-case optimisation (the reference's `WCO`); its gradient reaches the lowest member only;
- `mean_minus_var`: mean_m r_m - penalty * var_m r_m, uncertainty-weighted optimisation as the reference
  writes it (`UWO`: `torch.var`, the unbiased variance);
- `mean_minus_std`: mean_m r_m - penalty * std_m r_m, the same in the reward's own units (the population std:
  the spread evaluation logs as `eval_reward_std_members`).

The members are those of one reward that has `members` (`of: toy_aesthetic`), or a list of reward specs, each
one member (`of: [hpsv2, pickscore, aesthetic]`, the real-model counterpart). The aggregates compare scores
across members, so members must share a scale, as Coste's (one architecture, several seeds) do. Real rewards do
not (HPSv2 about 0.3, PickScore about 20, the LAION aesthetic about 5): `standardise: N` puts each member in
units of its own spread on the base model, (r_m - mu_m) / sigma_m with the mean and population std of its
scores of N videos the base model samples before training (`Reward.base_videos`; the trial loop samples them,
the same N in every trial of a study). The base model then scores about 0 on every member, and one unit is
as far on each: a member that ranks a video one spread above the base is worth what another's one spread is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vaderbench.registry import REWARDS
from vaderbench.rewards.base import Reward, RewardOptionError, build_reward, spec_class

#: aggregate name -> f(member scores [M, B], penalty) -> [B]
AGGREGATES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "mean": lambda scores, penalty: scores.mean(dim=0),
    "min": lambda scores, penalty: scores.min(dim=0).values,
    "mean_minus_var": lambda scores, penalty: scores.mean(dim=0) - penalty * scores.var(dim=0),
    "mean_minus_std": lambda scores, penalty: scores.mean(dim=0) - penalty * scores.std(dim=0, unbiased=False),
}
#: what the toy world reads of a reward besides its value (`toyworld.judge`): an ensemble of one reward's members
#: keeps that reward's gold and oracle, so that a trial still logs the gold of what it optimises
TOY_WORLD_ATTRIBUTES = ("gold", "prompt_free", "oracle")


def member_specs(of: Any) -> list[tuple[str, Any]]:
    """(key, spec) of each listed member reward: `of[0]`, `of[1]`, ... (`of` itself for one reward)."""
    if isinstance(of, (str, Mapping)):
        return [("of", of)]
    if isinstance(of, Sequence) and len(of) >= 2:
        return [(f"of[{i}]", spec) for i, spec in enumerate(of)]
    raise RewardOptionError(
        "of", f"expected a reward with members (of: toy_aesthetic) or a list of two or more rewards, got {of!r}"
    )


@REWARDS.register(
    "ensemble",
    "defence: a conservative aggregate (mean, min, mean_minus_var, mean_minus_std) of a reward's ensemble members "
    "or of several rewards (Coste et al. 2023)",
)
class Ensemble(Reward):
    def __init__(
        self,
        of: str | Mapping[str, Any] | Sequence[Any],
        aggregate: str = "mean",
        penalty: float = 1.0,
        standardise: int | None = None,
    ):
        """`of`: one reward spec whose reward has `members`, or a list of reward specs (one member each);
        `aggregate`: one of AGGREGATES; `penalty`: lambda of `mean_minus_var` and `mean_minus_std`; `standardise`:
        the base model's videos each member is standardised on (None: members as they score)."""
        super().__init__()
        self.check_options(of, aggregate, penalty, standardise)
        self.aggregate, self.penalty = aggregate, float(penalty)
        self.base_videos = standardise or 0
        #: each member's mean and population std on the base model's videos, once fitted (`fit_to_base`)
        self.base_mean: torch.Tensor | None = None
        self.base_std: torch.Tensor | None = None
        #: one reward whose own members are aggregated (else each reward is a member)
        self.of_one = isinstance(of, (str, Mapping))
        self.rewards = nn.ModuleList([build_reward(spec) for _, spec in member_specs(of)])
        if self.of_one:
            for name in TOY_WORLD_ATTRIBUTES:
                if hasattr(self.rewards[0], name):
                    setattr(self, name, getattr(self.rewards[0], name))
        self.min_frames = max(reward.min_frames for reward in self.rewards)

    @classmethod
    def check_options(cls, of: Any, aggregate: str = "mean", penalty: float = 1.0, standardise: Any = None) -> None:
        """RewardOptionError for a bad option, loading nothing (`vaderbench validate` calls it)."""
        if aggregate not in AGGREGATES:
            raise RewardOptionError(
                "aggregate", f"unknown aggregate {aggregate!r}; expected one of {', '.join(AGGREGATES)}"
            )
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty < 0:
            raise RewardOptionError("penalty", f"expected a number >= 0, got {penalty!r}")
        if standardise is not None and (
            isinstance(standardise, bool) or not isinstance(standardise, int) or standardise < 2
        ):
            raise RewardOptionError(
                "standardise", f"expected the number of base-model videos to standardise on (>= 2), got {standardise!r}"
            )
        for key, spec in member_specs(of):
            try:
                reward_class = spec_class(spec)
            except (ValueError, TypeError, AttributeError) as error:
                raise RewardOptionError(key, f"expected a reward spec: {error}") from None
            if key == "of" and not hasattr(reward_class, "members"):
                raise RewardOptionError(
                    "of",
                    f"reward {spec!r} has no members to aggregate (an ensemble of one reward needs one with "
                    "`members`, like toy_aesthetic); list several rewards instead: of: [a, b, ...]",
                )

    @classmethod
    def base_videos_of(cls, of: Any, standardise: int | None = None, **settings: Any) -> int:
        """`base_videos` of the ensemble these options build (`rewards.base.base_videos_of` asks, loading nothing)."""
        return standardise or 0

    @classmethod
    def nested_specs(cls, of: Any, **settings: Any) -> list[Any]:
        """The member rewards' specs (`rewards.base.spec_names` follows them)."""
        return [spec for _, spec in member_specs(of)]

    def member_scores(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Every member's own score [M, B], before standardising."""
        if self.of_one:
            return self.rewards[0].members(frames, prompts)
        return torch.stack([reward(frames, prompts) for reward in self.rewards])

    def members(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """The scores [M, B] the aggregate compares (evaluation logs their spread): standardised on the base
        model's videos with `standardise`."""
        scores = self.member_scores(frames, prompts)
        if not self.base_videos:
            return scores
        if self.base_mean is None:
            raise RuntimeError(
                "an ensemble with `standardise` must be fitted on the base model's videos before it scores "
                "(`fit_to_base`; the trial loop fits it at a trial's start)"
            )
        return (scores - self.base_mean.to(scores)[:, None]) / self.base_std.to(scores)[:, None]

    def base_scores(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.member_scores(frames, prompts)

    @torch.no_grad()
    def fit_to_base(self, scores: torch.Tensor) -> dict[str, list[float]]:
        """Each member's mean and population std over the base model's videos, from their scores [M, N]."""
        std = scores.std(dim=1, unbiased=False)
        for member, spread in enumerate(std.tolist()):
            if not spread > 0:
                raise ValueError(
                    f"reward ensemble: member {member} scores all {scores.shape[1]} of the base model's videos "
                    "alike, so it has no spread to standardise by; leave it out of `of`, or drop `standardise`"
                )
        fit = {"mean": scores.mean(dim=1).tolist(), "std": std.tolist()}
        self.load_base_fit(fit)
        return fit

    def load_base_fit(self, fit: dict[str, list[float]]) -> None:
        self.base_mean, self.base_std = torch.tensor(fit["mean"]), torch.tensor(fit["std"])

    def forward(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return AGGREGATES[self.aggregate](self.members(frames, prompts), self.penalty)
