"""What the toy world says of a trial's evaluation videos beyond the reward being optimised.

A trial whose reward is a toy reward (it has a `gold`) logs, at every evaluation, the gold of the same
videos next to the learned reward, and their caption fidelity: whether the colour, shape and direction
the toy detector and direction classifier see, and the background the pixels show, are the caption's.
Before any update it also logs where the reward's headroom lies on its evaluation prompts: the reward and
gold of chance videos and of the oracle videos (`toyworld.headroom`, the numbers `toyworld eval` reports).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaderbench.toyworld.gold import caption_fidelity
from vaderbench.toyworld.headroom import headroom
from vaderbench.toyworld.references import reference_videos
from vaderbench.toyworld.vocab import parse_caption

FIDELITY = ("colour", "shape", "direction", "background")


def toy_captions(prompts: Sequence[str]) -> bool:
    try:
        for prompt in prompts:
            parse_caption(prompt)
    except ValueError:
        return False
    return True


class ToyJudge:
    """Gold, caption fidelity and headroom of a toy reward's evaluation videos."""

    def __init__(self, reward):
        from vaderbench.rewards.toy_action import ToyActionReward
        from vaderbench.rewards.toy_object_removal import ToyObjectRemovalReward

        self.reward = reward
        device = next(reward.parameters()).device
        self.detector = ToyObjectRemovalReward().freeze().detector.to(device)
        self.classifier = ToyActionReward().freeze().classifier.to(device)

    @classmethod
    def of(cls, reward, prompts: Sequence[str]) -> ToyJudge | None:
        """A judge when the reward has a gold and the prompts are toy captions; None otherwise."""
        return cls(reward) if hasattr(reward, "gold") and toy_captions(prompts) else None

    @torch.no_grad()
    def measure(self, videos: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Per video: `gold` and `fidelity_<attribute>` (0/1; direction needs two frames)."""
        classifier = self.classifier if videos.shape[1] >= 2 else None
        fidelity = caption_fidelity(videos, prompts, self.detector, classifier)
        return {
            "gold": self.reward.gold(videos, list(prompts)),
            **{f"fidelity_{key}": fidelity[key] for key in FIDELITY if key in fidelity},
        }

    def headroom(self, prompts: Sequence[str], frames: int, size: int, seed: int) -> dict[str, float]:
        """`toyworld.headroom` of these prompts (chance and oracle, reward and gold); {} for a reward without
        an oracle (a weighted sum of rewards)."""
        if not all(hasattr(self.reward, key) for key in ("prompt_free", "oracle")):
            return {}
        return headroom(self.reward, prompts, frames, size, seed)

    def oracle_videos(self, prompts: Sequence[str], frames: int, size: int, seed: int) -> torch.Tensor:
        return reference_videos(prompts, frames, size, self.reward.oracle, seed)
