"""DiffusionNFT: online RL on the forward process (Zheng et al., 2025, arXiv 2509.16117), following NVlabs/DiffusionNFT
`scripts/train_nft_sd3.py` and `config/nft.py`.

    for each round:
        sample group_size videos per prompt with the old policy v_old and any solver (by default the deterministic
            ODE the evaluation uses); keep only the clean videos x0 and their rewards: no trajectories, no likelihoods
        A = (R - mean of its group) / (std of the batch + 1e-4), clipped to +-adv_clip_max
        r = 0.5 + 0.5 * A / adv_clip_max                  the optimality probability, in [0, 1]
        for int(T * timestep_fraction) of the sampler's T levels t per sample, each with fresh noise eps:
            x_t = (1 - t) x0 + t eps                       (the model's forward process)
            v+ = (1 - beta) v_old + beta v_theta           the implicit positive policy
            v- = (1 + beta) v_old - beta v_theta           the implicit negative policy
            L = adv_clip_max / beta * (r ||x0(v+) - x0||^2 / w+ + (1 - r) ||x0(v-) - x0||^2 / w-)
                + kl_coef * ||v_theta - v_ref||^2
            x0(v) = x_t - t v is the clean estimate under velocity v; w = stop_grad(mean |x0(v) - x0|) is the
            adaptive loss weight; v_ref is the base model (adapters off)
        one optimiser step on the mean of L
        v_old <- d v_old + (1 - d) v_theta,  d = min(old_decay_rate * optimiser steps, old_decay_max)
        ema   <- the EMA of theta, decay min((1 + n) / (10 + n), ema_decay) after n optimiser steps: evaluated

Where positive and negative coincide (v_theta = v_old, as at the start of a round whose old policy has caught up),
the gradient of L is (2r - 1) times that of the adaptively weighted flow-matching loss of the samples: a sample
with r > 1/2 pulls the velocity towards itself, one with r < 1/2 pushes it away, and beta cancels.

Choices, and where they depart from the reference:
- the trained levels are the sampler's own (the reference trains on its trajectory's timesteps, a permutation per
  sample); the levels and their noise come from each sample's seed, so N workers train on what one process would;
- the network's output is the guided one at the method's `guidance_scale`: at the reference's 1.0 (no CFG) the
  conditional velocity; with CFG, the guided velocity that generated the samples is the policy trained;
- one optimiser step per round (`config/nft.py`: gradient_step_per_epoch 1 for GenEval, PickScore, HPSv2);
- on an epsilon (DDIM) model the same loss holds with its own forward process and clean estimate, both linear in
  the output (the paper's setting is a rectified flow);
- the trial's saved LoRA weights are the trained ones (the reference saves its EMA).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from vaderbench import distributed
from vaderbench.aligner import Aligner, AlignerConfig, reward_stats
from vaderbench.metrics import GRAD_NORM, KL, LOSS, POLICY_LOSS
from vaderbench.models.base import Footprint
from vaderbench.policy import denoiser_passes
from vaderbench.registry import ALIGNERS
from vaderbench.seeding import derive_seed


@dataclass
class NftConfig(AlignerConfig):
    """Defaults of NVlabs/DiffusionNFT `config/base.py` and `config/nft.py` (its SD3.5-M recipes).

    The sampler settings (num_steps, eta, guidance_scale) apply when the aligner is built directly; from an
    experiment file every method samples with the file's `sampler:` unless its entry sets its own.
    """

    lr: float = 3e-4  # config/base.py: train.learning_rate
    num_steps: int = 10  # config/nft.py: sample.num_steps
    eta: float = 0.0  # config/nft.py: sample.deterministic = True (an ODE solver, dpm2 there)
    guidance_scale: float = 1.0  # config/nft.py: sample.guidance_scale (CFG-free)
    group_size: int = 24  # config/nft.py: sample.num_image_per_prompt
    batch_size: int = 48 * 24  # config/nft.py: num_groups = 48 prompts of a group each per epoch
    #: the mixing of the trained policy with the old one in v+ and v- (config/nft.py: beta; 0.1 in sd3_ocr)
    beta: float = 1.0
    adv_clip_max: float = 5.0  # config/base.py: train.adv_clip_max
    kl_coef: float = 1e-4  # config/nft.py: train.beta (the squared velocity difference to the base model)
    #: the share of the sampler's levels trained per sample (config/base.py: train.timestep_fraction)
    timestep_fraction: float = 0.99
    # the old policy's decay d (scripts/train_nft_sd3.py: return_decay, config/nft.py decay_type 1: flat 0,
    # uprate 0.001, uphold 0.5; sd3_ocr takes decay_type 2: 75, 0.0075, 0.999)
    old_decay_after: int = 0  # optimiser steps before d leaves 0 (flat)
    old_decay_rate: float = 0.001  # d's rise per optimiser step (uprate)
    old_decay_max: float = 0.5  # d's ceiling (uphold)
    ema: bool = True  # evaluate with the EMA of the weights (config/base.py: train.ema)
    ema_decay: float = 0.9  # its ceiling (scripts/train_nft_sd3.py: EMAModuleWrapper(decay=0.9))

    def validate(self) -> None:
        super().validate()
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 for nft (advantages are relative to a group), got {self.group_size}"
            )
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.adv_clip_max <= 0:
            raise ValueError(f"adv_clip_max must be positive, got {self.adv_clip_max}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if not 0 < self.timestep_fraction <= 1:
            raise ValueError(f"timestep_fraction must be in (0, 1], got {self.timestep_fraction}")
        if self.old_decay_after < 0 or self.old_decay_rate < 0:
            raise ValueError(
                f"old_decay_after and old_decay_rate must be >= 0, got {self.old_decay_after}, {self.old_decay_rate}"
            )
        if not 0 <= self.old_decay_max < 1:
            raise ValueError(f"old_decay_max must be in [0, 1), got {self.old_decay_max}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def group_mean_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(r - its group's mean) / (the whole batch's std + 1e-4), groups of `group_size` consecutive rewards.

    flow_grpo `stat_tracking.py` with global_std (config/base.py: sample.global_std True), population std.
    """
    rewards = rewards.detach().double()
    groups = rewards.reshape(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred.flatten() / (rewards.std(unbiased=False) + 1e-4)).float()


def optimality_probability(advantages: torch.Tensor, adv_clip_max: float) -> torch.Tensor:
    """r = 0.5 + 0.5 clip(A / adv_clip_max, -1, 1): the probability that a sample is optimal, in [0, 1]."""
    return 0.5 + 0.5 * (advantages / adv_clip_max).clamp(-1, 1)


def implicit_policies(
    velocity: torch.Tensor, old_velocity: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The implicit positive and negative policies: v+ = (1 - beta) v_old + beta v, v- = (1 + beta) v_old - beta v."""
    return (1 - beta) * old_velocity + beta * velocity, (1 + beta) * old_velocity - beta * velocity


def adaptive_error(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """||estimate - clean||^2 / stop_grad(mean |estimate - clean|), each a mean over all but the batch dim: [B]."""
    dims = tuple(range(1, clean.dim()))
    error = estimate - clean
    weight = error.detach().double().abs().mean(dim=dims, keepdim=True).clamp(min=1e-5)
    return (error**2 / weight.to(error.dtype)).mean(dim=dims)


def nft_loss(
    velocity: torch.Tensor,
    old_velocity: torch.Tensor,
    clean: torch.Tensor,
    clean_estimate: Callable[[torch.Tensor], torch.Tensor],
    r: torch.Tensor,
    beta: float,
    adv_clip_max: float,
) -> torch.Tensor:
    """The policy loss per sample [B]: adv_clip_max / beta * (r e(v+) + (1 - r) e(v-)), e the adaptive error of
    the clean estimate `clean_estimate(v)` (linear in v) against the sample `clean`."""
    positive, negative = implicit_policies(velocity, old_velocity.detach(), beta)
    positive_error = adaptive_error(clean_estimate(positive), clean)
    negative_error = adaptive_error(clean_estimate(negative), clean)
    return adv_clip_max / beta * (r * positive_error + (1 - r) * negative_error)


@ALIGNERS.register(
    "nft", "DiffusionNFT: flow matching on the model's own samples, contrasting positive and negative (forward process)"
)
class Nft(Aligner):
    name = "nft"
    title = "NFT"
    family = "policy-gradient"
    Config = NftConfig
    contract_settings: ClassVar[dict] = {"lr": 3e-2, "batch_size": 8, "group_size": 2}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        trained = self.policy.trainable_parameters()
        self.old = [parameter.detach().clone() for parameter in trained]  # v_old: the sampling policy
        self.ema = [parameter.detach().clone() for parameter in trained] if self.config.ema else None

    def _round(self, prompts):
        config = self.config
        local_prompts, seeds = self.local(prompts), self.local(self.sample_seeds(config.batch_size))
        with torch.no_grad():
            with self.policy.using(self.old):
                clean = self.sample(local_prompts, seeds).final  # the old policy samples; only x0 is kept
            rewards = self.score(clean, local_prompts, self.frame_index())
        # groups are consecutive in the global batch (Aligner.step repeats each prompt group_size times)
        advantages = group_mean_advantages(distributed.gather(rewards), config.group_size)
        advantages = advantages.clamp(-config.adv_clip_max, config.adv_clip_max)
        r = self.local(optimality_probability(advantages, config.adv_clip_max)).to(clean.device)
        timesteps, noise = self.forward_points(seeds, clean.shape[1:])
        logged = []
        for part in self.micro_batches(len(local_prompts)):
            for j in range(timesteps.shape[1]):
                with self.clock.phase("loss"):
                    loss, values = self.point_loss(
                        clean[part], timesteps[part, j], noise[part, j].to(clean.device), local_prompts[part], r[part]
                    )
                # a mean over the global batch and the trained levels (the all-reduce averages the workers)
                self.backward(loss.sum() / (len(local_prompts) * timesteps.shape[1]))
                logged.append(values)
        grad_norm = self.apply_gradients()
        self.follow(self.old, self.old_decay())
        if self.ema is not None:
            steps = self.ledger.optimizer_steps
            self.follow(self.ema, min((1 + steps) / (10 + steps), config.ema_decay))
        loss, policy_loss, kl = torch.cat(logged).mean(dim=0).tolist()
        return reward_stats(rewards) | {
            LOSS: loss,
            POLICY_LOSS: policy_loss,
            KL: kl,
            GRAD_NORM: grad_norm,
            "optimality_mean": float(r.mean()),
            "old_decay": self.old_decay(),
        }

    def forward_points(self, seeds: Sequence[int], shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's trained levels [B, J] (J = int(T * timestep_fraction) of the sampler's T, in a random order)
        and their noise [B, J, ...], from the sample's own seed."""
        levels, _ = self.policy.model.sampling.schedule(self.config.num_steps)
        count = max(1, int(len(levels) * self.config.timestep_fraction))
        timesteps, noise = [], []
        for seed in seeds:
            generator = torch.Generator().manual_seed(derive_seed(seed, "nft"))
            timesteps.append(levels[torch.randperm(len(levels), generator=generator)[:count]])
            noise.append(torch.randn((count, *shape), generator=generator))
        return torch.stack(timesteps), torch.stack(noise)

    def point_loss(
        self, clean: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor, prompts: list[str], r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss [B] of samples `clean` at one level each, and its logged parts [B, 3] (loss, policy loss, KL)."""
        config, policy, rule = self.config, self.policy, self.policy.model.sampling
        timesteps = timesteps.to(clean.device)
        condition, null = policy.encode(prompts)
        noisy = rule.noisy(clean, noise, timesteps)  # the forward process: no sampling trajectory needed
        guidance = config.guidance_scale
        with torch.no_grad():
            with policy.using(self.old):
                old = policy.prediction(noisy, timesteps, condition, null, guidance)
            if config.kl_coef > 0:
                with policy.reference():
                    reference = policy.prediction(noisy, timesteps, condition, null, guidance)
        prediction = policy.prediction(noisy, timesteps, condition, null, guidance)
        policy_loss = nft_loss(
            prediction,
            old,
            clean,
            lambda velocity: rule.clean_estimate(velocity, timesteps, noisy),
            r,
            config.beta,
            config.adv_clip_max,
        )
        kl = torch.zeros_like(policy_loss)
        if config.kl_coef > 0:
            kl = ((prediction - reference) ** 2).mean(dim=tuple(range(1, clean.dim())))
        loss = policy_loss + config.kl_coef * kl
        return loss, torch.stack([loss, policy_loss, kl], dim=1).detach().double().cpu()

    def old_decay(self) -> float:
        """d of the old policy's update after this many optimiser steps (return_decay in the reference)."""
        config, steps = self.config, self.ledger.optimizer_steps
        if steps < config.old_decay_after:
            return 0.0
        return min((steps - config.old_decay_after) * config.old_decay_rate, config.old_decay_max)

    @torch.no_grad()
    def follow(self, weights: list[torch.Tensor], decay: float) -> None:
        """weights <- decay * weights + (1 - decay) * the trained weights."""
        for weight, parameter in zip(weights, self.policy.trainable_parameters(), strict=True):
            weight.copy_(decay * weight + (1 - decay) * parameter.detach())

    def evaluate_videos(self, prompts, seeds, sampler=None):
        """Evaluation samples with the EMA of the weights, as the reference evaluates (train.ema)."""
        if self.ema is None:
            return super().evaluate_videos(prompts, seeds, sampler)
        with self.policy.using(self.ema):
            return super().evaluate_videos(prompts, seeds, sampler)

    def _method_state(self):
        return {
            "old": [w.clone() for w in self.old],
            "ema": None if self.ema is None else [w.clone() for w in self.ema],
        }

    def _load_method_state(self, state):
        for weights, saved in ((self.old, state["old"]), (self.ema, state["ema"])):
            for weight, value in zip(weights or [], saved or [], strict=True):
                weight.copy_(value)

    @staticmethod
    def memory_terms(config, footprint: Footprint, workers: int, frames: int) -> tuple[int, int]:
        """(activation bytes kept at the peak, bytes kept besides) on one worker: a micro-batch holds one guided
        denoiser call's graph (the old policy's and the reference's calls keep none); the round keeps the clean
        samples and the old and EMA copies of the adapters (not counted: adapter-sized)."""
        local = config.batch_size // workers
        micro = min(config.micro_batch_size or local, local)
        kept = micro * denoiser_passes(config.guidance_scale) * footprint.denoiser_bytes
        return kept, local * footprint.latent_elements * 4
