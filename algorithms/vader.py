"""VADER: video diffusion alignment via reward gradients (Prabhudesai et al., Algorithm 1).

    for each round:
        sample x_T -> x_0 with DDIM; the prediction is stop_grad for all but the last K steps
        g = grad_theta R(decode(x_0), c)        (only the subsampled frames are decoded and scored)
        g -= kl_coef * grad_theta sum over the K steps with gradient of KL(p_theta(. | x_t) || p_ref(. | x_t))
        theta <- AdamW(theta, -g)               (accumulated over micro-batches, clipped)

Defaults follow the VADER code (mihirp1998/VADER, ModelScope/VideoCrafter configs): AdamW lr 2e-4,
gradient clip 1.0, DDIM eta 1.0, truncated backprop through the last step (`backprop_mode: last`, K = 1), and
no KL penalty (kl_coef 0).

The KL penalty is not VADER's: it is the defence every aligner shares under the name `kl_coef` (DPOK's
`kl_weight`, Flow-GRPO's beta). Its steps are the K steps with gradient, those whose reward gradient VADER
follows; each is the KL of the step's Gaussian to the reference's (adapters off) given the step's sampled input,
summed over latent elements (`Policy.step_kl`: DPOK's per-step bound on the path's KL, in the units of the
`eval_kl` metric, which sums it over all the steps).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from vaderbench.aligner import Aligner, AlignerConfig, reward_stats
from vaderbench.metrics import GRAD_NORM, KL, LOSS
from vaderbench.models.base import Footprint
from vaderbench.policy import denoiser_passes
from vaderbench.registry import ALIGNERS


@dataclass(frozen=True)
class Truncation:
    """Which denoising steps keep their gradient (truncated backprop, the paper's K).

    Steps are indexed 0..T-1 in sampling order; gradient flows through every step from a cutoff index to
    the end, so K = T - cutoff steps are in the graph (as in VADER/AlignProp's `backprop_mode`):
    - `last`: the last `k` steps (k = 1 is the paper's default; k = 0 no gradient; k = T full backprop);
    - `rand`: the cutoff is drawn uniformly from 0..T-1 at every sample;
    - `specific`: the cutoff is the step index `step`.
    """

    mode: Literal["last", "rand", "specific"] = "last"
    k: int = 1
    step: int | None = None

    def validate(self, num_steps: int) -> None:
        if self.mode == "last" and not 0 <= self.k <= num_steps:
            raise ValueError(f"truncation k must be between 0 and num_steps={num_steps}, got k={self.k}")
        if self.mode == "specific" and (self.step is None or not 0 <= self.step < num_steps):
            raise ValueError(f"truncation step must be in 0..{num_steps - 1} for mode 'specific', got {self.step}")
        if self.mode not in ("last", "rand", "specific"):
            raise ValueError(f"truncation mode must be last, rand or specific, got {self.mode!r}")

    def most_kept_steps(self, num_steps: int) -> int:
        """The most steps one sample keeps in the graph (`rand` may keep them all)."""
        if self.mode == "last":
            return self.k
        return num_steps if self.mode == "rand" else num_steps - int(self.step)

    def first_grad_step(self, num_steps: int, rng: random.Random) -> int:
        self.validate(num_steps)
        if self.mode == "last":
            return num_steps - self.k
        if self.mode == "rand":
            return rng.randrange(num_steps)
        return int(self.step)


@dataclass
class VaderConfig(AlignerConfig):
    """VADER's settings. The sampler (num_steps 25, eta 1.0, guidance 7.5: `AlignerConfig`'s, from VADER's
    ModelScope config) applies when the aligner is built directly; from an experiment file every method
    samples with the file's `sampler:` (one sampler per study), unless its method entry sets a sampler
    key for itself."""

    lr: float = 2e-4  # VADER: AdamW lr 2e-4
    # not in VADER (0: none): the weight of the summed KL of the steps with gradient to the base model's; DPOK's
    # kl_weight is 0.01 (one prompt) to 0.1 (many prompts), on its own per-step KL (google-research/dpok)
    kl_coef: float = 0.0
    #: which denoising steps keep gradient: {"mode": last|rand|specific, "k": K, "step": index}
    truncation: Truncation = field(default_factory=Truncation)

    def __post_init__(self):
        if isinstance(self.truncation, dict):  # the YAML form
            self.truncation = Truncation(**self.truncation)

    def validate(self) -> None:
        super().validate()
        self.truncation.validate(self.num_steps)
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.kl_coef > 0 and self.eta == 0:
            raise ValueError(
                "kl_coef > 0 needs a stochastic sampler (eta > 0): a deterministic step (eta 0) is no Gaussian, "
                "so it has no KL to the base model's"
            )


@ALIGNERS.register("vader", "reward-gradient backprop through the last K denoising steps (VADER / DRaFT-K / AlignProp)")
class Vader(Aligner):
    name = "vader"
    title = "VADER"
    family = "reward-gradient"
    Config = VaderConfig
    contract_settings: ClassVar[dict] = {"lr": 1e-2}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.kl_coef > 0:
            self.require_stochastic_steps(f"{self.name} with kl_coef > 0")

    def _round(self, prompts):
        prompts = self.local(prompts)
        seeds = self.local(self.sample_seeds(self.config.batch_size))
        rewards, loss_total, kl_total = [], 0.0, 0.0
        for part in self.micro_batches(len(prompts)):
            grad_from = self.config.truncation.first_grad_step(self.config.num_steps, self.rng)
            trajectory = self.sample(prompts[part], seeds[part], grad_from=grad_from)
            reward = self.score(trajectory.final, prompts[part], self.frame_index())
            # mean over the local shard, so that averaging over workers gives the global mean
            loss = -reward.sum() / len(prompts)
            self.backward(loss)
            rewards.append(reward.detach())
            loss_total += float(loss.detach())
            if self.config.kl_coef > 0:
                kl = self.backward_kl(trajectory, range(grad_from, self.config.num_steps), len(prompts))
                kl_total += kl
                loss_total += self.config.kl_coef * kl
        grad_norm = self.apply_gradients()
        return reward_stats(torch.cat(rewards)) | {LOSS: loss_total, KL: kl_total, GRAD_NORM: grad_norm}

    def backward_kl(self, trajectory, steps: range, shard: int) -> float:
        """Accumulate the gradient of kl_coef x the KL of `steps` to the reference, summed over the steps and
        averaged over the `shard`'s samples as the reward is; return that KL. One step at a time, after the
        reward's graph is freed: it keeps one denoiser call's graph, fewer than the reward's K plus the decoder, for
        two more guided calls per step (the policy's with gradient, the reference's without)."""
        total = 0.0
        for step in steps:
            with self.clock.phase("loss"):
                kl = self.policy.step_kl(trajectory, torch.full((trajectory.batch_size,), step), self.sampler)
                kl = kl.sum() / shard
            self.backward(self.config.kl_coef * kl)
            total += float(kl.detach())
        return total

    @staticmethod
    def memory_terms(config: VaderConfig, footprint: Footprint, workers: int, frames: int) -> tuple[int, int]:
        """(activation bytes kept at the peak, bytes kept besides) on one worker: a micro-batch holds the graph
        of its K guided denoiser calls and of decoding its frames (all of them: an upper bound), and its
        trajectory's latents. The KL penalty's steps come after that graph is freed and keep one call's graph."""
        local = config.batch_size // workers
        micro = min(config.micro_batch_size or local, local)
        steps = config.truncation.most_kept_steps(config.num_steps)
        calls = denoiser_passes(config.guidance_scale) * steps
        trajectory = (config.num_steps + 1) * micro * footprint.latent_elements * 4
        return micro * (calls * footprint.denoiser_bytes + footprint.decoder_bytes), trajectory
