"""One step of a rectified-flow sampler as a Gaussian policy: Flow-GRPO's SDE, which at noise level 0 is Euler's.

A rectified flow interpolates x_sigma = (1 - sigma) x0 + sigma eps (sigma from 1, pure noise, down to 0) and
its denoiser predicts the velocity v = eps - x0, so the ODE step to the next level is x + v dt, dt < 0.
Flow-GRPO (Liu et al., 2025, eq. 9; yifan123/flow_grpo `diffusers_patch/sd3_sde_with_logprob.py`) replaces
it by an SDE with the same marginals, so that each step is Gaussian and has a log-probability:
    std_t  = a * sqrt(sigma / (1 - sigma))
    mean   = x * (1 + std_t^2 / (2 sigma) * dt) + v * (1 + std_t^2 (1 - sigma) / (2 sigma)) * dt
    x_next = mean + std_t * sqrt(-dt) * z,  z ~ N(0, I)
with `a` the noise level (0.7 in Flow-GRPO's configs). At sigma = 1, sigma / (1 - sigma) is infinite; the
reference takes the second level of the schedule in the denominator there, which is the step's own next
level. With a = 0 the step is the Euler step. With `clip_sample_range`, the clean estimate x - sigma v is
clipped and v re-derived from it, as `vaderbench.ddim` does for pixel-space DDIM. Log-probabilities use
`vaderbench.ddim.gaussian_log_prob` (averaged over dimensions, as in both references).
"""

from __future__ import annotations

import torch

from vaderbench.ddim import broadcast


def flow_sde_step(
    velocity: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    sample: torch.Tensor,
    noise_level: float,
    clip_sample_range: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of p(x_next | x_sigma); sigmas are scalars or [B] tensors."""
    sigma, sigma_next = broadcast(torch.as_tensor(sigma), sample), broadcast(torch.as_tensor(sigma_next), sample)
    if clip_sample_range is not None:
        clean = flow_clean_estimate(velocity, sigma, sample).clamp(-clip_sample_range, clip_sample_range)
        velocity = (sample - clean) / sigma
    dt = sigma_next - sigma
    std_t = noise_level * (sigma / (1 - torch.where(sigma == 1, sigma_next, sigma))).sqrt()
    mean = sample * (1 + std_t**2 / (2 * sigma) * dt) + velocity * (1 + std_t**2 * (1 - sigma) / (2 * sigma)) * dt
    return mean, std_t * (-dt).sqrt()


def flow_clean_estimate(velocity: torch.Tensor, sigma: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """x0 = x_sigma - sigma v."""
    return sample - broadcast(torch.as_tensor(sigma), sample) * velocity


def flow_noise_estimate(velocity: torch.Tensor, sigma: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """eps = x_sigma + (1 - sigma) v (from x_sigma = (1 - sigma) x0 + sigma eps and v = eps - x0)."""
    return sample + (1 - broadcast(torch.as_tensor(sigma), sample)) * velocity
