"""Diffusion-DPO (Wallace et al., 2023) fed online from a replay buffer, as in the VADER paper's baseline.

    for each round:
        sample videos (group_size per prompt), score them, add them to the replay buffer
        repeat updates_per_round times:
            draw pairs (x_w, x_l) of the same prompt from the buffer, winner = higher reward
            t ~ U{0..999}, eps ~ N(0, I), shared by winner and loser
            d_theta = ||eps_theta(x_w,t) - eps||^2 - ||eps_theta(x_l,t) - eps||^2
            d_ref   = the same with the LoRA adapters disabled (the reference model)
            loss = -log sigmoid(-beta/2 * (d_theta - d_ref))

Normalisation (SalesforceAIResearch/DiffusionDPO `train.py`): each squared error is a *mean* over the
latent's elements, and the 0.5 stays outside beta; so beta = 5000 here is that code's (and the paper's)
5000, and diffusers' research example's beta 2500 (0.5 folded in) is the same objective. With a *sum*
over elements instead, beta would have to shrink by the number of latent elements.
On a rectified flow (`model.sampling.prediction == "velocity"`) the squared errors are the flow-matching
loss's, ||v_theta - (eps - x0)||^2 (Flow-DPO), and beta defaults to 100: flow_grpo's `config/dpo.py`
(`train.beta`, with the same mean over elements and 0.5 outside beta in `scripts/train_sd3_dpo.py`). The
two scales differ: at level sigma the velocity error is the epsilon error over (1 - sigma), so the same
beta would weigh a flow pair more. Departure: that code draws sigma logit-normally; here every loss draws
its timestep uniformly from the model's training levels (`SamplingRule.training_timestep`).
At initialisation the policy is the reference, d_theta = d_ref, and the loss is -log sigmoid(0) = log 2.
The on-policy variant of the paper's Figure 12 keeps only the newest batch in the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from vaderbench import distributed
from vaderbench.algorithms.replay_buffer import ReplayBuffer
from vaderbench.aligner import Aligner, AlignerConfig, reward_stats
from vaderbench.metrics import IMPLICIT_ACC, LOSS, UPDATES
from vaderbench.models.base import Footprint, cat_conditions
from vaderbench.registry import ALIGNERS
from vaderbench.seeding import derive_seed


@dataclass
class DpoConfig(AlignerConfig):
    """Diffusion-DPO's settings. Its sampler is `AlignerConfig`'s when the aligner is built directly; from
    an experiment file every method samples with the file's `sampler:` (one sampler per study), unless
    its method entry sets a sampler key for itself."""

    lr: float = 2e-4  # the paper trains its baselines with VADER's LoRA setup (A.3)
    #: None: 5000 on an epsilon model (DiffusionDPO / the VADER paper), 100 on a flow (flow_grpo config/dpo.py)
    beta: float | None = None
    group_size: int = 2  # samples per prompt per round: pairs need two
    buffer_capacity: int = 256  # videos kept for replay
    eviction: Literal["fifo", "random"] = "fifo"
    pairs_per_update: int = 4  # global pair batch of one optimiser step
    updates_per_round: int = 1  # optimiser steps per sampled batch
    on_policy: bool = False  # buffer holds only the newest batch

    def validate(self) -> None:
        super().validate()
        if self.beta is not None and self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 for dpo (pairs are two samples of one prompt), got {self.group_size}"
            )
        if self.pairs_per_update < 1 or self.updates_per_round < 1:
            raise ValueError("pairs_per_update and updates_per_round must be >= 1")
        if self.buffer_capacity < self.batch_size and not self.on_policy:
            raise ValueError(f"buffer_capacity={self.buffer_capacity} is smaller than one batch ({self.batch_size})")


def dpo_loss(
    model_winner: torch.Tensor,
    model_loser: torch.Tensor,
    ref_winner: torch.Tensor,
    ref_loser: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair loss and the inside term -beta/2 ((mse_w - mse_l) - (ref_w - ref_l)) (> 0: the pair is ranked right)."""
    inside = -0.5 * beta * ((model_winner - model_loser) - (ref_winner - ref_loser))
    return -F.logsigmoid(inside), inside


@ALIGNERS.register(
    "dpo", "Diffusion-DPO on pairs of the model's own samples ranked by the reward, from a replay buffer"
)
class Dpo(Aligner):
    name = "dpo"
    title = "DPO"
    family = "preference"
    Config = DpoConfig
    contract_settings: ClassVar[dict] = {"lr": 1e-1, "batch_size": 8, "pairs_per_update": 8, "updates_per_round": 4}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.pairs_per_update % distributed.world_size():
            raise ValueError(f"pairs_per_update={self.config.pairs_per_update} must split evenly over the workers")
        capacity = self.config.batch_size if self.config.on_policy else self.config.buffer_capacity
        self.buffer = ReplayBuffer(capacity, self.config.eviction)
        if self.config.beta is None:  # the reference value for this model's loss (module docstring)
            self.config.beta = 5000.0 if self.policy.model.sampling.prediction == "epsilon" else 100.0

    def _round(self, prompts):
        local_prompts = self.local(prompts)
        with torch.no_grad():
            trajectory = self.sample(local_prompts, self.local(self.sample_seeds(self.config.batch_size)))
            rewards = self.score(trajectory.final, local_prompts, self.frame_index())
        if self.config.on_policy:
            self.buffer.clear()
        # every worker keeps the same buffer: the global batch, gathered
        self.buffer.add(distributed.gather(trajectory.final), prompts, distributed.gather(rewards), self.rng)
        metrics = reward_stats(rewards)
        losses, accuracies = [], []
        for update in range(self.config.updates_per_round):
            pairs = self.buffer.sample_pairs(self.config.pairs_per_update, self.rng)
            if len(pairs) < self.config.pairs_per_update:
                continue  # every sample of every prompt scored the same: nothing to prefer yet
            loss, inside = self.update(self.local(pairs), update)
            losses.append(float(loss))
            accuracies.append(float((distributed.gather(inside) > 0).float().mean()))
        metrics[UPDATES] = float(len(losses))
        if losses:
            metrics |= {LOSS: sum(losses) / len(losses), IMPLICIT_ACC: sum(accuracies) / len(accuracies)}
        return metrics

    def update(self, pairs: list[tuple[int, int]], update: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on this worker's pairs (accumulated over micro-batches of pairs)."""
        losses, insides = [], []
        for part in self.micro_batches(len(pairs)):
            with self.clock.phase("loss"):
                loss, inside = self.pair_loss(pairs[part], update)
            self.backward(loss.sum() / len(pairs))
            losses.append(loss.detach())
            insides.append(inside.detach())
        self.apply_gradients()
        return torch.cat(losses).mean(), torch.cat(insides)

    def pair_loss(self, pairs: list[tuple[int, int]], update: int) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.policy.model.device
        winners = torch.stack([self.buffer.latents[w] for w, _ in pairs]).to(device)
        losers = torch.stack([self.buffer.latents[loser] for _, loser in pairs]).to(device)
        condition, _ = self.policy.encode([self.buffer.prompts[w] for w, _ in pairs])
        rule = self.policy.model.sampling
        timesteps, noise = [], []
        for winner, loser in pairs:  # the same timestep and noise for winner and loser, seeded by the pair
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "dpo", self.rounds, update, winner, loser))
            timesteps.append(rule.training_timestep(generator))
            noise.append(torch.randn(winners.shape[1:], generator=generator))
        timesteps = torch.tensor(timesteps, device=device).repeat(2)
        noise = torch.stack(noise).to(device).repeat(2, *([1] * (winners.dim() - 1)))
        both = torch.cat([winners, losers])
        both_condition = cat_conditions([condition, condition])
        model_w, model_l = self.policy.denoising_loss(both, timesteps, noise, both_condition).chunk(2)
        with torch.no_grad(), self.policy.reference():
            ref_w, ref_l = self.policy.denoising_loss(both, timesteps, noise, both_condition).chunk(2)
        return dpo_loss(model_w, model_l, ref_w, ref_l, self.config.beta)

    @staticmethod
    def memory_terms(config: DpoConfig, footprint: Footprint, workers: int, frames: int) -> tuple[int, int]:
        """(activation bytes kept at the peak, bytes kept besides) on one worker: a micro-batch of pairs holds
        one denoiser call on winners and losers (unguided); every worker keeps the whole replay buffer, and
        the round's trajectories."""
        pairs = config.pairs_per_update // workers
        micro = min(config.micro_batch_size or pairs, pairs)
        capacity = config.batch_size if config.on_policy else config.buffer_capacity
        latents = capacity + (config.num_steps + 1) * (config.batch_size // workers)
        return 2 * micro * footprint.denoiser_bytes, latents * footprint.latent_elements * 4

    def _method_state(self):
        return {"buffer": self.buffer.state_dict()}

    def _load_method_state(self, state):
        self.buffer.load_state_dict(state["buffer"])
