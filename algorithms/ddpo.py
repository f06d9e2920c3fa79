"""DDPO with PPO (Black et al., 2023), following kvablack/ddpo-pytorch `scripts/train.py`.

    for each round:
        sample trajectories x_T .. x_0 with DDIM (eta > 0), keeping log p_old of every step
        r = R(decode(x_0), c);  A = per-prompt normalised r, clipped to +-adv_clip_max
        repeat inner_epochs times:
            shuffle the samples, split them into `minibatches` minibatches
            for each minibatch, for a shuffled fraction of each sample's timesteps:
                ratio = exp(log p_theta(x_{t-1} | x_t) - log p_old)
                loss += mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))) + kl_coef * KL(p_theta || p_ref)
            one optimiser step per minibatch (gradients accumulated over the timesteps)

No value function and, by default, no KL penalty, as in the reference; kl_coef > 0 adds Flow-GRPO's KL of the
trained steps to the base model's (`PpoAligner.step_loss`, shared with GRPO). The update-to-data ratio (optimiser
updates per sampled batch) is inner_epochs x minibatches; 1 is the on-policy baseline of the paper's Figure 12.

The shuffles are drawn from the aligner's seed, the round and the inner epoch (a resumed run repeats
them). With several workers the global batch is shuffled (where the reference shuffles each worker's shard),
so N workers form the same minibatches as one process and train the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from vaderbench import distributed
from vaderbench.algorithms.ppo import PpoAligner, weighted_means
from vaderbench.algorithms.stat_tracker import PerPromptStatTracker
from vaderbench.aligner import AlignerConfig, reward_stats
from vaderbench.metrics import ADVANTAGE_ABS_MEAN, APPROX_KL, CLIPFRAC, KL, LOSS, POLICY_LOSS, RATIO_MEAN
from vaderbench.registry import ALIGNERS
from vaderbench.seeding import derive_seed


@dataclass
class DdpoConfig(AlignerConfig):
    """Defaults of ddpo-pytorch `config/base.py`.

    The sampler defaults (num_steps, eta, guidance_scale) are the reference's and apply when the aligner
    is built directly; from an experiment file every method samples with the file's `sampler:` (one
    sampler per study, a fair comparison), unless its method entry sets a sampler key for itself.
    """

    lr: float = 3e-4  # ddpo-pytorch config/base.py: train.learning_rate
    num_steps: int = 50  # sample.num_steps (an experiment file's `sampler:` replaces it)
    eta: float = 1.0  # sample.eta (idem)
    guidance_scale: float = 5.0  # sample.guidance_scale (idem)
    clip_range: float = 1e-4  # train.clip_range (small because log-probs are averaged over dimensions)
    adv_clip_max: float = 5.0  # train.adv_clip_max
    # not in ddpo-pytorch (0: none): the weight of the KL to the base model, as GRPO's (mean over elements);
    # DPOK's kl_weight is 0.01 (one prompt) to 0.1 (many), Flow-GRPO's beta 0.004 in this unit (see grpo.py)
    kl_coef: float = 0.0
    timestep_fraction: float = 1.0  # train.timestep_fraction
    inner_epochs: int = 1  # train.num_inner_epochs
    minibatches: int = 1  # optimiser updates per inner epoch
    per_prompt_stat_tracking: bool = True  # per_prompt_stat_tracking
    stat_buffer_size: int = 16  # per_prompt_stat_tracking.buffer_size
    stat_min_count: int = 16  # per_prompt_stat_tracking.min_count

    def validate(self) -> None:
        super().validate()
        if self.eta <= 0:
            raise ValueError("eta must be > 0 for ddpo: a deterministic DDIM step has no log-probability")
        if self.clip_range <= 0 or self.adv_clip_max <= 0:
            raise ValueError(
                f"clip_range and adv_clip_max must be positive, got {self.clip_range}, {self.adv_clip_max}"
            )
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if not 0 < self.timestep_fraction <= 1:
            raise ValueError(f"timestep_fraction must be in (0, 1], got {self.timestep_fraction}")
        if self.inner_epochs < 1 or self.minibatches < 1:
            raise ValueError(f"inner_epochs and minibatches must be >= 1, got {self.inner_epochs}, {self.minibatches}")


@ALIGNERS.register("ddpo", "policy gradients with PPO over the denoising steps (DDPO)")
class Ddpo(PpoAligner):
    name = "ddpo"
    title = "DDPO"
    family = "policy-gradient"
    Config = DdpoConfig
    shuffle_stream = "ddpo-minibatches"
    # a policy-gradient method needs larger steps and more rounds than VADER: that gap is the paper's point
    contract_settings: ClassVar[dict] = {
        "lr": 3e-2,
        "clip_range": 1.0,
        "per_prompt_stat_tracking": False,
        "batch_size": 8,
    }
    contract_rounds = 20

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tracker = PerPromptStatTracker(self.config.stat_buffer_size, self.config.stat_min_count)

    def advantages(self, prompts: list[str], rewards: torch.Tensor) -> torch.Tensor:
        if self.config.per_prompt_stat_tracking:
            advantages = self.tracker.advantages(prompts, rewards)
        else:
            advantages = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-6)
        return advantages.clamp(-self.config.adv_clip_max, self.config.adv_clip_max)

    def _round(self, prompts):
        config, num_steps = self.config, self.config.num_steps
        all_seeds = self.sample_seeds(config.batch_size)
        local_prompts, seeds = self.local(prompts), self.local(all_seeds)
        with torch.no_grad():
            trajectory = self.sample(local_prompts, seeds)
            rewards = self.score(trajectory.final, local_prompts, self.frame_index())
        advantages = self.local(self.advantages(prompts, distributed.gather(rewards))).to(rewards.device)
        trained_steps = max(1, int(num_steps * config.timestep_fraction))
        # each sample trains on its own shuffled timesteps, seeded by its global seed, in every inner epoch
        orders = [
            torch.stack(
                [
                    torch.randperm(num_steps, generator=torch.Generator().manual_seed(derive_seed(s, epoch)))
                    for s in seeds
                ]
            )
            for epoch in range(config.inner_epochs)
        ]
        # per (micro-batch, timestep): the logged values and the rows they cover, for means weighted by rows
        logged: list[tuple[int, torch.Tensor]] = []
        for epoch, rows, share in self.minibatch_rows(len(local_prompts)):
            for j in range(trained_steps):
                with self.clock.phase("loss"):
                    loss, values = self.step_loss(trajectory, orders[epoch][rows, j], rows, advantages[rows])
                # mean over the minibatch and its trained timesteps, accumulated micro-batch by micro-batch
                self.backward(loss * share / trained_steps)
                logged.append((len(rows), values))
        loss, policy_loss, kl, approx_kl, clipfrac, ratio_mean = weighted_means(logged)
        return reward_stats(rewards) | {
            LOSS: loss,
            POLICY_LOSS: policy_loss,
            KL: kl,
            APPROX_KL: approx_kl,
            CLIPFRAC: clipfrac,
            RATIO_MEAN: ratio_mean,
            ADVANTAGE_ABS_MEAN: float(advantages.abs().mean()),
        }

    def _method_state(self):
        return {"tracker": self.tracker.state_dict()}

    def _load_method_state(self, state):
        self.tracker.load_state_dict(state["tracker"])
