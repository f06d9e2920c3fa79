"""A replay buffer of the model's own samples, and pairs of them ranked by the reward (Diffusion-DPO).

Every entry is a clean sample (final latents), its prompt and its reward. Pairs are always two samples
of the same prompt with different rewards; the higher-reward sample is the winner.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

import torch


class ReplayBuffer:
    def __init__(self, capacity: int, eviction: Literal["fifo", "random"] = "fifo"):
        if capacity < 2:
            raise ValueError(f"buffer capacity must be >= 2 (a pair), got {capacity}")
        if eviction not in ("fifo", "random"):
            raise ValueError(f"eviction must be 'fifo' or 'random', got {eviction!r}")
        self.capacity, self.eviction = capacity, eviction
        self.latents: list[torch.Tensor] = []
        self.prompts: list[str] = []
        self.rewards: list[float] = []

    def __len__(self) -> int:
        return len(self.prompts)

    def clear(self) -> None:
        self.latents, self.prompts, self.rewards = [], [], []

    def add(self, latents: torch.Tensor, prompts: Sequence[str], rewards: torch.Tensor, rng: random.Random) -> None:
        for latent, prompt, reward in zip(latents.detach().cpu(), prompts, rewards.tolist()):
            if len(self) >= self.capacity:
                victim = 0 if self.eviction == "fifo" else rng.randrange(len(self))
                del self.latents[victim], self.prompts[victim], self.rewards[victim]
            self.latents.append(latent)
            self.prompts.append(prompt)
            self.rewards.append(reward)

    def sample_pairs(self, count: int, rng: random.Random) -> list[tuple[int, int]]:
        """`count` (winner, loser) index pairs: a prompt uniformly among those that can form a pair, then two of
        its samples with different rewards. Empty when no prompt has two samples with different rewards."""
        by_prompt: dict[str, list[int]] = {}
        for i, prompt in enumerate(self.prompts):
            by_prompt.setdefault(prompt, []).append(i)
        candidates = [rows for rows in by_prompt.values() if len({self.rewards[i] for i in rows}) > 1]
        pairs = []
        while candidates and len(pairs) < count:
            rows = rng.choice(candidates)
            a, b = rng.sample(rows, 2)
            if self.rewards[a] == self.rewards[b]:
                continue
            pairs.append((a, b) if self.rewards[a] > self.rewards[b] else (b, a))
        return pairs

    def state_dict(self) -> dict:
        stacked = torch.stack(self.latents) if self.latents else torch.empty(0)
        return {"latents": stacked, "prompts": list(self.prompts), "rewards": list(self.rewards)}

    def load_state_dict(self, state: dict) -> None:
        self.latents = list(state["latents"].unbind(0)) if len(state["prompts"]) else []
        self.prompts, self.rewards = list(state["prompts"]), list(state["rewards"])
