"""GRPO for diffusion and flow models: Flow-GRPO (Liu et al., 2025) / DanceGRPO, following yifan123/flow_grpo
`scripts/train_sd3.py`.

    for each round:
        sample group_size videos per prompt with the SDE (noise level eta = Flow-GRPO's `a`), keeping
            log p_old of every stochastic step; with `sde_window`, only a window of steps is stochastic
            (and trained), the rest deterministic (Flow-GRPO-Fast, MixGRPO)
        r = R(decode(x_0), c);  A = (r - mean of its group) / (std of its group + 1e-4), clipped to +-adv_clip_max
        repeat inner_epochs times:
            shuffle the samples, split them into `minibatches` minibatches; for each, over the trained steps:
                ratio = exp(log p_theta(x_next | x) - log p_old)
                loss += mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))) + beta * KL(p_theta || p_ref)
            one optimiser step per minibatch (gradients accumulated over the trained steps)

KL(p_theta || p_ref) is that of the two Gaussian steps, the reference being the same network with its LoRA
adapters off: mean over elements of (mean_theta - mean_ref)^2 / (2 std^2) (`PpoAligner.step_loss`, shared with
DDPO). No value function. On a DDIM model the step is DDIM's with eta > 0, which is a stochastic sampler with
log-probabilities too.
Where this departs from the reference, it says so next to the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from vaderbench import distributed
from vaderbench.algorithms.ppo import PpoAligner, weighted_means
from vaderbench.aligner import AlignerConfig, reward_stats
from vaderbench.metrics import ADVANTAGE_ABS_MEAN, APPROX_KL, CLIPFRAC, KL, LOSS, POLICY_LOSS, RATIO_MEAN
from vaderbench.registry import ALIGNERS
from vaderbench.seeding import derive_seed


@dataclass
class GrpoConfig(AlignerConfig):
    """Defaults of flow_grpo `config/base.py` and `config/grpo.py` (its SD3.5 and Wan 2.1 recipes).

    The sampler settings (num_steps, eta, guidance_scale) apply when the aligner is built directly; from
    an experiment file every method samples with the file's `sampler:` unless its entry sets its own.
    """

    lr: float = 3e-4  # config/base.py: train.learning_rate
    num_steps: int = 10  # config/grpo.py (SD3.5 recipes): sample.num_steps
    eta: float = 0.7  # config/base.py: sample.noise_level (the SDE's `a`)
    guidance_scale: float = 4.5  # config/grpo.py: sample.guidance_scale
    batch_size: int = 8  # config/grpo.py general_ocr_wan2_1: sample.train_batch_size
    group_size: int = 4  # config/grpo.py general_ocr_wan2_1: sample.num_image_per_prompt
    clip_range: float = 1e-4  # config/base.py: train.clip_range
    adv_clip_max: float = 5.0  # config/base.py: train.adv_clip_max
    # config/grpo.py: train.beta 0.04 (SD3.5), 0.004 (Wan 2.1). Departure: the reference divides the squared
    # mean difference by std_dev_t^2, the SDE's std before its sqrt(-dt), which makes its KL this one times
    # |dt|; with its 10 steps (|dt| ~ 0.1) its 0.04 is 0.004 here, the Wan value.
    kl_coef: float = 0.004
    #: config/grpo.py: train.timestep_fraction (the first int(T * f) steps are trained; not with sde_window)
    timestep_fraction: float = 0.99
    inner_epochs: int = 1  # config/grpo.py: train.num_inner_epochs
    # the reference steps the optimiser twice per epoch (gradient_accumulation_steps = num_batches_per_epoch / 2)
    minibatches: int = 2
    #: Flow-GRPO-Fast / MixGRPO: stochastic (and trained) steps per sample, None = all (flow_grpo README,
    #: Qwen-Image: sample.sde_window_size; Flow-GRPO-Fast trains 1-2 steps)
    sde_window: int | None = None
    #: first and last+1 step index the window may start in, drawn per round (sample.sde_window_range)
    sde_window_range: tuple[int, int] | None = None

    def validate(self) -> None:
        super().validate()
        if self.eta <= 0:
            raise ValueError("eta must be > 0 for grpo: the SDE's noise level gives the steps their log-probability")
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 for grpo (advantages are relative to a group), got {self.group_size}"
            )
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
        if self.sde_window is not None and not 1 <= self.sde_window <= self.num_steps:
            raise ValueError(f"sde_window must be between 1 and num_steps={self.num_steps}, got {self.sde_window}")
        if self.sde_window_range is not None:
            if self.sde_window is None:
                raise ValueError("sde_window_range needs sde_window")
            low, high = self.sde_window_range
            if not 0 <= low < high <= self.num_steps - self.sde_window + 1:
                raise ValueError(
                    f"sde_window_range must be [low, high) with 0 <= low < high <= num_steps - sde_window + 1 = "
                    f"{self.num_steps - self.sde_window + 1}, got {list(self.sde_window_range)}"
                )

    @classmethod
    def from_dict(cls, values):
        config = super().from_dict(values)
        if config.sde_window_range is not None:
            config.sde_window_range = tuple(config.sde_window_range)
        return config


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(r - group mean) / (group std + 1e-4) for consecutive groups of `group_size` rewards.

    Population std plus 1e-4, as flow_grpo `stat_tracking.py` (global_std False, its Wan recipe's choice).
    """
    groups = rewards.detach().double().reshape(-1, group_size)
    mean, std = groups.mean(dim=1, keepdim=True), groups.std(dim=1, unbiased=False, keepdim=True)
    return ((groups - mean) / (std + 1e-4)).flatten().float()


@ALIGNERS.register("grpo", "group-relative policy optimisation over SDE steps, KL to the base (Flow-GRPO / DanceGRPO)")
class Grpo(PpoAligner):
    name = "grpo"
    title = "GRPO"
    family = "policy-gradient"
    Config = GrpoConfig
    shuffle_stream = "grpo-minibatches"
    # like DDPO, a policy gradient needs large steps to move the tiny contract model within a few rounds
    contract_settings: ClassVar[dict] = {"lr": 1e-1, "clip_range": 1.0, "batch_size": 8, "group_size": 2}
    contract_rounds = 12

    def sde_steps(self) -> range:
        """This round's stochastic steps: all of them, or a window drawn from the seed and the round."""
        config = self.config
        if config.sde_window is None:
            return range(config.num_steps)
        low, high = config.sde_window_range or (0, config.num_steps - config.sde_window + 1)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "grpo-window", self.rounds))
        start = int(torch.randint(low, high, (), generator=generator))
        return range(start, start + config.sde_window)

    def _round(self, prompts):
        config = self.config
        local_prompts, seeds = self.local(prompts), self.local(self.sample_seeds(config.batch_size))
        window = self.sde_steps()
        with torch.no_grad():
            trajectory = self.sample(local_prompts, seeds, stochastic_steps=window)
            rewards = self.score(trajectory.final, local_prompts, self.frame_index())
        # groups are consecutive in the global batch (Aligner.step repeats each prompt group_size times)
        advantages = group_advantages(distributed.gather(rewards), config.group_size)
        advantages = self.local(advantages.clamp(-config.adv_clip_max, config.adv_clip_max)).to(rewards.device)
        # Flow-GRPO trains the first int(T * timestep_fraction) steps; a window's steps are all trained
        trained = list(window)
        if config.sde_window is None:
            trained = trained[: max(1, int(len(trained) * config.timestep_fraction))]
        logged: list[tuple[int, torch.Tensor]] = []
        for _, rows, share in self.minibatch_rows(len(local_prompts)):
            for j in trained:
                with self.clock.phase("loss"):
                    loss, values = self.step_loss(trajectory, torch.full((len(rows),), j), rows, advantages[rows])
                # mean over the minibatch and the trained steps, accumulated micro-batch by micro-batch
                self.backward(loss * share / len(trained))
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
