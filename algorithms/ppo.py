"""What DDPO and GRPO share: PPO over the denoising steps of a batch of sampled trajectories.

    for each inner epoch:
        shuffle the global batch, split it into minibatches
        for each minibatch: accumulate the loss of this worker's micro-batches of it, then one optimiser update
    loss of a trained step = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))) + kl_coef * KL(p_theta || p_ref)

KL(p_theta || p_ref) is Flow-GRPO's: the KL of the step's Gaussian to the reference's (the same network with its
LoRA adapters off), averaged over latent elements as the log-probabilities are (`Policy.step_kl` divided by
the elements). Not registered: `PpoAligner` is the base of the registered policy-gradient aligners.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch

from vaderbench import distributed
from vaderbench.aligner import Aligner
from vaderbench.ddim import gaussian_kl, gaussian_log_prob
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
        if self.config.batch_size % self.config.minibatches:
            raise ValueError(
                f"minibatches={self.config.minibatches} must divide the batch_size of {self.config.batch_size}"
            )
        self.require_stochastic_steps(self.name)

    def minibatch_rows(self, size: int) -> Iterator[tuple[int, torch.Tensor, float]]:
        """(inner epoch, rows of one micro-batch, its share) over this worker's `size` samples.

        Before each epoch the *global* batch is shuffled (the same permutation on every worker) and split into
        minibatches; a worker trains on the rows of each minibatch it holds, so N workers form the same
        minibatches as one process (the reference shuffles each worker's shard on its own, which makes a
        minibatch hold one worker's samples only). `share` scales the micro-batch's mean loss to its part of
        the minibatch's mean, times the world size that the gradient average divides by. The optimiser steps
        after each minibatch, on every worker, including one that held none of its rows.
        """
        world, first = distributed.world_size(), distributed.rank() * size
        chunk = size * world // self.config.minibatches
        for epoch in range(self.config.inner_epochs):
            shuffle = derive_seed(self.seed, self.shuffle_stream, self.rounds, epoch)
            permutation = torch.randperm(size * world, generator=torch.Generator().manual_seed(shuffle))
            for start in range(0, size * world, chunk):
                minibatch = permutation[start : start + chunk]
                mine = minibatch[(minibatch >= first) & (minibatch < first + size)] - first
                for part in self.micro_batches(len(mine)):
                    yield epoch, mine[part], len(mine[part]) * world / chunk
                self.apply_gradients()

    def step_loss(self, trajectory, step_index: torch.Tensor, rows: torch.Tensor, advantages: torch.Tensor):
        """PPO's clipped loss of the stored steps `step_index` [B'] of samples `rows`, plus kl_coef times the KL to
        the reference; and the logged values (loss, policy loss, KL, approximate KL, clip fraction, mean ratio)."""
        mean, std = self.policy.step_distribution(trajectory, step_index, self.sampler, index=rows)
        log_prob = gaussian_log_prob(trajectory.latents[step_index + 1, rows], mean, std)
        old = trajectory.log_probs[step_index, rows]
        ratio = torch.exp(log_prob - old)
        policy_loss = ppo_clipped_loss(advantages, ratio, self.config.clip_range)
        kl = torch.zeros_like(policy_loss)
        if self.config.kl_coef > 0:
            reference_mean = self.policy.reference_mean(trajectory, step_index, self.sampler, index=rows)
            kl = gaussian_kl(mean, reference_mean, std).mean() / mean[0].numel()
        loss = policy_loss + self.config.kl_coef * kl
        with torch.no_grad():
            approx_kl = 0.5 * ((log_prob - old) ** 2).mean()
            clipfrac = ((ratio - 1).abs() > self.config.clip_range).float().mean()
            values = torch.stack([loss, policy_loss, kl, approx_kl, clipfrac, ratio.mean()]).double().cpu()
        return loss, values

    @staticmethod
    def memory_terms(config, footprint: Footprint, workers: int, frames: int) -> tuple[int, int]:
        """(activation bytes kept at the peak, bytes kept besides) on one worker: a micro-batch of a minibatch
        holds one guided denoiser call's graph (a reference call keeps none); the round keeps every sample's
        trajectory."""
        # a worker may hold a whole minibatch's rows (the global shuffle decides), up to its shard
        chunk = min(config.batch_size // workers, config.batch_size // config.minibatches)
        micro = min(config.micro_batch_size or chunk, chunk)
        kept = micro * denoiser_passes(config.guidance_scale) * footprint.denoiser_bytes
        trajectories = (config.num_steps + 1) * (config.batch_size // workers) * footprint.latent_elements * 4
        return kept, trajectories
