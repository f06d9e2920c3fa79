"""VADER: video diffusion alignment via reward gradients (Prabhudesai et al., Algorithm 1).

    for each round:
        sample x_T -> x_0 with DDIM; the prediction is stop_grad for all but the last K steps
        g = grad_theta R(decode(x_0), c)        (only the subsampled frames are decoded and scored)
        theta <- AdamW(theta, -g)               (accumulated over micro-batches, clipped)

Defaults follow the VADER code (mihirp1998/VADER, ModelScope/VideoCrafter configs): AdamW lr 2e-4,
gradient clip 1.0, DDIM eta 1.0, truncated backprop through the last step (`backprop_mode: last`, K = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vaderbench.aligner import Aligner, AlignerConfig, reward_stats
from vaderbench.policy import Truncation
from vaderbench.registry import ALIGNERS


@dataclass
class VaderConfig(AlignerConfig):
    """VADER's settings. The sampler (num_steps 25, eta 1.0, guidance 7.5: `AlignerConfig`'s, from VADER's
    ModelScope config) applies when the aligner is built directly; from an experiment file every method
    samples with the file's `sampler:` (one sampler per study), unless its method entry sets a sampler
    key for itself."""

    lr: float = 2e-4  # VADER: AdamW lr 2e-4
    #: which denoising steps keep gradient: {"mode": last|rand|specific, "k": K, "step": index}
    truncation: Truncation = field(default_factory=Truncation)

    def __post_init__(self):
        if isinstance(self.truncation, dict):  # the YAML form
            self.truncation = Truncation(**self.truncation)

    def validate(self) -> None:
        super().validate()
        self.truncation.validate(self.num_steps)


@ALIGNERS.register("vader", "reward-gradient backprop through the last K denoising steps (VADER / DRaFT-K / AlignProp)")
class Vader(Aligner):
    name = "vader"
    Config = VaderConfig

    def _round(self, prompts):
        prompts = self.local(prompts)
        seeds = self.local(self.sample_seeds(self.config.batch_size))
        rewards, loss_total = [], 0.0
        for part in self.micro_batches(len(prompts)):
            grad_from = self.config.truncation.first_grad_step(self.config.num_steps, self.rng)
            trajectory = self.sample(prompts[part], seeds[part], grad_from=grad_from)
            reward = self.score(trajectory.final, prompts[part], self.frame_index())
            # mean over the local shard, so that averaging over workers gives the global mean
            loss = -reward.sum() / len(prompts)
            loss.backward()
            rewards.append(reward.detach())
            loss_total += float(loss.detach())
        grad_norm = self.apply_gradients()
        return reward_stats(torch.cat(rewards)) | {"loss": loss_total, "grad_norm": grad_norm}
