"""Early stopping that keeps the best checkpoint: the experiment file's `stopping:` rule, read at every evaluation.

Gao et al. 2022 find that a KL penalty buys about what stopping early does; Coste et al. 2023 stop when a reward
ensemble's members start to disagree. Two rules, each naming the evaluation it keeps:

- `on: member_spread`: the spread of the reward ensemble's members on the evaluation videos
  (`eval_reward_std_members`) against `rise` times its step-0 value. An evaluation within it is kept; the trial
  stops after `patience` evaluations in a row above it, keeping the last one within.
- `on: <metric>` (one of `BEST_OF`): the evaluation with the highest value is kept; the trial stops after
  `patience` evaluations in a row without a new highest.

Plain data and arithmetic (no torch): the schema reads the rule's names from here, the trial loop runs it and a
checkpoint carries its state (`asdict`), so that a resumed trial judges on from where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaderbench.metrics import EVAL_FIDELITY, EVAL_GOLD_MEAN, EVAL_REWARD_MEAN, EVAL_REWARD_STD_MEMBERS, TUNING_SCORE

#: `on:` for the ensemble-spread rule (the reward must have `members`)
MEMBER_SPREAD = "member_spread"
#: the evaluation metrics a rule may keep the highest of; the gold and the fidelity exist in the toy world only,
#: where a rule on them is an oracle's stopping (a bound), not a defence: a real study has no gold to read
BEST_OF = (EVAL_REWARD_MEAN, TUNING_SCORE, EVAL_GOLD_MEAN, EVAL_FIDELITY)


@dataclass
class StoppingRule:
    on: str
    #: evaluations in a row that break the rule before the trial stops
    patience: int = 1
    #: member_spread only: an evaluation's spread above `rise` times the step-0 spread breaks the rule
    rise: float | None = None
    # -- its state: what it has seen so far --
    #: the step of the kept evaluation (step 0, the base model, until a later one is kept)
    best_step: int = 0
    #: the kept evaluation's value of `metric`
    best: float | None = None
    #: the step-0 spread (member_spread)
    reference: float | None = None
    #: evaluations since the kept one, all of which broke the rule
    misses: int = 0

    @property
    def metric(self) -> str:
        """The evaluation metric the rule reads."""
        return EVAL_REWARD_STD_MEMBERS if self.on == MEMBER_SPREAD else self.on

    def keeps(self, step: int, value: float) -> bool:
        """Whether the evaluation of `step`, whose `metric` is `value`, becomes the kept one (else it is a miss)."""
        if self.on == MEMBER_SPREAD:
            if self.reference is None:
                self.reference = value
            kept = value <= self.rise * self.reference
        else:
            kept = self.best is None or value > self.best
        if kept:
            self.best_step, self.best, self.misses = step, value, 0
        else:
            self.misses += 1
        return kept

    @property
    def stop(self) -> bool:
        return self.misses >= self.patience
