"""The sampler seam: how a model's denoiser output becomes a sampling step, a clean estimate and a loss target.

Each `VideoModel` supplies its `SamplingRule` (`model.sampling`) and predicts what the rule takes
(`model.predict`): epsilon for DDIM over `alphas_cumprod` (every diffusers DDIM-family model: the toy model,
ModelScope, SVD through its DDIM view, CogVideoX), velocity for rectified flows (Wan, `toy-flow`). The
policy builds sampling, truncated backprop, log-probabilities and the denoising loss on these methods only,
so both families run through the same aligners.

Timesteps are what the denoiser takes as its time input (DDIM: integer t; flow: 1000 sigma, as diffusers'
flow schedulers pass them); a step goes from `timestep` to `prev_timestep` in those units.
`noise_level` scales each step's noise: DDIM's eta, Flow-GRPO's `a`; 0 is the deterministic sampler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from vaderbench.ddim import alpha_at, clean_estimate, ddim_step
from vaderbench.flow import flow_clean_estimate, flow_sde_step


class SamplingRule(ABC):
    #: what the denoiser predicts for this rule: "epsilon" or "velocity"
    prediction: str

    @abstractmethod
    def schedule(self, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps [T] of a `num_steps` sampler in sampling order, and where each step lands [T]."""

    @abstractmethod
    def step(
        self, output: torch.Tensor, timestep, prev_timestep, sample: torch.Tensor, noise_level: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the step from `sample` at `timestep` to `prev_timestep` (scalars or [B])."""

    @abstractmethod
    def clean_estimate(self, output: torch.Tensor, timestep, sample: torch.Tensor) -> torch.Tensor:
        """The x0 the prediction implies."""

    @abstractmethod
    def noisy(self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The forward process: `clean` noised to `timesteps` [B] with `noise`."""

    @abstractmethod
    def target(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What `model.predict` should output on `noisy(clean, noise, t)`: the denoising loss's target."""

    @abstractmethod
    def training_timestep(self, generator: torch.Generator) -> int | float:
        """One timestep of the denoising loss, drawn uniformly from those the model was trained on."""


class DdimRule(SamplingRule):
    """DDIM over a diffusers scheduler's `alphas_cumprod` (`vaderbench.ddim`), epsilon prediction."""

    prediction = "epsilon"

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def schedule(self, num_steps):
        scheduler = self.scheduler
        scheduler.set_timesteps(num_steps)
        timesteps = scheduler.timesteps.to(torch.long).cpu()
        # diffusers' DDIMScheduler.step: prev = t - num_train_timesteps // num_inference_steps
        return timesteps, timesteps - scheduler.config.num_train_timesteps // num_steps

    def _alphas(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scheduler.alphas_cumprod.to(device), torch.as_tensor(self.scheduler.final_alpha_cumprod).to(device)

    def step(self, output, timestep, prev_timestep, sample, noise_level):
        config = self.scheduler.config
        clip = config.clip_sample_range if config.get("clip_sample", False) else None
        return ddim_step(output, timestep, prev_timestep, sample, *self._alphas(sample.device), noise_level, clip)

    def clean_estimate(self, output, timestep, sample):
        return clean_estimate(output, alpha_at(*self._alphas(sample.device), timestep, sample), sample)

    def noisy(self, clean, noise, timesteps):
        alphas = self.scheduler.alphas_cumprod.to(clean.device)[timesteps]
        alphas = alphas.reshape(-1, *([1] * (clean.dim() - 1)))
        return alphas.sqrt() * clean + (1 - alphas).sqrt() * noise

    def target(self, clean, noise):
        return noise

    def training_timestep(self, generator):
        return int(torch.randint(self.scheduler.config.num_train_timesteps, (), generator=generator))


class FlowMatchRule(SamplingRule):
    """A rectified flow, velocity prediction: Euler / Flow-GRPO's SDE steps (`vaderbench.flow`).

    `sigmas(num_steps)` gives the model's sampling levels [num_steps + 1] from 1 (or below) down to 0;
    `train_sigmas` the levels the denoising loss draws from. The denoiser's time input is 1000 sigma.
    `clip_sample_range` clips the clean estimate of every step (pixel-space models; `vaderbench.flow`).
    """

    prediction = "velocity"
    timestep_scale = 1000.0

    def __init__(
        self, sigmas: Callable[[int], torch.Tensor], train_sigmas: torch.Tensor, clip_sample_range: float | None = None
    ):
        self.sigmas, self.train_sigmas, self.clip_sample_range = sigmas, train_sigmas, clip_sample_range

    def _sigma(self, timestep) -> torch.Tensor:
        return torch.as_tensor(timestep, dtype=torch.float32) / self.timestep_scale

    def schedule(self, num_steps):
        timesteps = self.sigmas(num_steps).to(torch.float32).cpu() * self.timestep_scale
        return timesteps[:-1], timesteps[1:]

    def step(self, output, timestep, prev_timestep, sample, noise_level):
        sigma, sigma_next = self._sigma(timestep).to(sample.device), self._sigma(prev_timestep).to(sample.device)
        return flow_sde_step(output, sigma, sigma_next, sample, noise_level, self.clip_sample_range)

    def clean_estimate(self, output, timestep, sample):
        return flow_clean_estimate(output, self._sigma(timestep).to(sample.device), sample)

    def noisy(self, clean, noise, timesteps):
        sigma = self._sigma(timesteps).to(clean.device).reshape(-1, *([1] * (clean.dim() - 1)))
        return (1 - sigma) * clean + sigma * noise

    def target(self, clean, noise):
        return noise - clean

    def training_timestep(self, generator):
        index = int(torch.randint(len(self.train_sigmas), (), generator=generator))
        return float(self.train_sigmas[index]) * self.timestep_scale
