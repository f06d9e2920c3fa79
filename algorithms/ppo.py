"""What DDPO and GRPO share: PPO over the denoising steps of a batch of sampled trajectories.

    for each inner epoch:
        shuffle this worker's samples, split them into minibatches
        for each minibatch: accumulate the loss of its micro-batches, then one optimiser update

Not registered: `PpoAligner` is the base of the registered policy-gradient aligners.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch

from vaderbench import distributed
from vaderbench.aligner import Aligner
from vaderbench.models.base import Footprint
from vaderbench.policy import denoiser_passes
from vaderbench.seeding import derive_seed


def ppo_clipped_loss(advantages: torch.Tensor, ratio: torch.Tensor, clip_range: float) -> torch.Tensor:
    """PPO's clipped surrogate, as a loss to minimise: mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps)))."""
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    return torch.maximum(unclipped, clipped).mean()


def weighted_means(logged: list[tuple[int, torch.Tensor]]) -> list[float]:
    """Means of logged value vectors, each weighted by the rows it covers (micro-batches can be uneven)."""
    return (sum(rows * values for rows, values in logged) / sum(rows for rows, _ in logged)).tolist()


class PpoAligner(Aligner):
    """An aligner that trains on its own sampled trajectories with PPO's clipped ratio over their steps."""

    #: the seed stream of the minibatch shuffles (kept per method: their runs stay reproducible)
    shuffle_stream: ClassVar[str]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        local_batch = len(self.local(range(self.config.batch_size)))
        if local_batch % self.config.minibatches:
            raise ValueError(f"minibatches={self.config.minibatches} must divide the per-worker batch of {local_batch}")
        if not bool((self.policy.step_stds(self.sampler) > 0).all()):
            raise ValueError(
                f"{self.name} needs every sampling step to be stochastic, but a step of this schedule has zero "
                "variance (a DDIM scheduler with set_alpha_to_one=True? use False or another timestep spacing)"
            )

    def minibatch_rows(self, size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(inner epoch, rows of one micro-batch) over this worker's `size` samples, shuffled before each epoch's
        split into minibatches; the optimiser steps after each minibatch's last micro-batch has been yielded
        (and its loss backpropagated by the caller)."""
        chunk = size // self.config.minibatches
        for epoch in range(self.config.inner_epochs):
            shuffle = derive_seed(self.seed, self.shuffle_stream, self.rounds, epoch, distributed.rank())
            permutation = torch.randperm(size, generator=torch.Generator().manual_seed(shuffle))
            for start in range(0, size, chunk):
                minibatch = permutation[start : start + chunk]
                for part in self.micro_batches(chunk):
                    yield epoch, minibatch[part]
                self.apply_gradients()

    @staticmethod
    def memory_terms(config, footprint: Footprint, workers: int, frames: int) -> tuple[int, int]:
        """(activation bytes kept at the peak, bytes kept besides) on one worker: a micro-batch of a minibatch
        holds one guided denoiser call's graph (a reference call keeps none); the round keeps every sample's
        trajectory."""
        chunk = config.batch_size // workers // config.minibatches
        micro = min(config.micro_batch_size or chunk, chunk)
        kept = micro * denoiser_passes(config.guidance_scale) * footprint.denoiser_bytes
        trajectories = (config.num_steps + 1) * (config.batch_size // workers) * footprint.latent_elements * 4
        return kept, trajectories
