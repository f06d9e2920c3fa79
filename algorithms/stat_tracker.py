"""Per-prompt reward normalisation for DDPO (kvablack/ddpo-pytorch, `stat_tracking.py`).

Each prompt keeps its last `buffer_size` rewards; once it has `min_count` of them its advantages are
normalised by its own mean and std, before that by the whole batch's. Std is the population std, as
there (numpy's default).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch


class PerPromptStatTracker:
    def __init__(self, buffer_size: int = 16, min_count: int = 16):
        if buffer_size < 1 or min_count < 1:
            raise ValueError(f"buffer_size and min_count must be >= 1, got {buffer_size} and {min_count}")
        self.buffer_size, self.min_count = buffer_size, min_count
        self.history: dict[str, deque] = {}

    def advantages(self, prompts: Sequence[str], rewards: torch.Tensor) -> torch.Tensor:
        rewards = rewards.detach().double().cpu()
        advantages = torch.empty_like(rewards)
        for prompt in dict.fromkeys(prompts):
            rows = torch.tensor([i for i, p in enumerate(prompts) if p == prompt])
            history = self.history.setdefault(prompt, deque(maxlen=self.buffer_size))
            history.extend(rewards[rows].tolist())
            reference = torch.tensor(list(history)) if len(history) >= self.min_count else rewards
            advantages[rows] = (rewards[rows] - reference.mean()) / (reference.std(unbiased=False) + 1e-6)
        return advantages.float()

    def state_dict(self) -> dict:
        return {prompt: list(values) for prompt, values in self.history.items()}

    def load_state_dict(self, state: dict) -> None:
        self.history = {p: deque(v, maxlen=self.buffer_size) for p, v in state.items()}
