"""Reward models, registered by the names experiment files use (installed as `vaderbench.rewards`)."""

from vaderbench.rewards import ensemble, pixel  # noqa: F401  (register)
from vaderbench.rewards.base import ImageReward, Reward, WeightedSum, build_reward

__all__ = ["ImageReward", "Reward", "WeightedSum", "build_reward"]
