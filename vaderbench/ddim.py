"""One DDIM step as a Gaussian policy: its mean, its standard deviation, and the log-probability of a step.

Song et al. (2021), eq. 12, with eta scaling the noise:
    x0_hat    = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)
    sigma_t   = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    mean      = sqrt(a_prev) * x0_hat + sqrt(1 - a_prev - sigma_t^2) * eps
    x_{t-1}   = mean + sigma_t * z,  z ~ N(0, I)
where a = alphas_cumprod of the scheduler and a_prev at the last step is the scheduler's
`final_alpha_cumprod`. With `clip_sample_range`, x0_hat is clipped and eps re-derived from it, as in the
scheduler's `clip_sample` option (pixel-space models need it: where a_t is tiny, x0_hat amplifies any error
of eps by 1/sqrt(a_t)); diffusers does the same with `use_clipped_model_output=True`. This is diffusers'
`DDIMScheduler.step`, written out so that DDPO can score a step (kvablack/ddpo-pytorch, `ddim_with_logprob.py`,
does the same).

The log-probability is *averaged* over all non-batch dimensions, as in ddpo-pytorch: it keeps the
PPO ratio near 1 whatever the video size, which is why DDPO's clip range is as small as 1e-4. The KL of a step
to the reference model's step is *summed* (it is a KL); the PPO aligners divide it by the elements, as Flow-GRPO.
"""

from __future__ import annotations

import math

import torch


def _alpha(alphas_cumprod: torch.Tensor, final_alpha_cumprod: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    timestep = torch.as_tensor(timestep, device=alphas_cumprod.device)
    return torch.where(timestep >= 0, alphas_cumprod[timestep.clamp(min=0)], final_alpha_cumprod)


def broadcast(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-sample [B] value shaped to multiply `like` [B, ...]."""
    value = value.to(device=like.device, dtype=like.dtype)
    return value.reshape(value.shape + (1,) * (like.dim() - value.dim()))


def ddim_step(
    eps: torch.Tensor,
    timestep: torch.Tensor,
    prev_timestep: torch.Tensor,
    sample: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    final_alpha_cumprod: torch.Tensor,
    eta: float,
    clip_sample_range: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of p(x_{t-1} | x_t); timesteps are scalars or [B] tensors."""
    a_t = alpha_at(alphas_cumprod, final_alpha_cumprod, timestep, sample)
    a_prev = alpha_at(alphas_cumprod, final_alpha_cumprod, prev_timestep, sample)
    x0_hat = clean_estimate(eps, a_t, sample)
    if clip_sample_range is not None:
        x0_hat = x0_hat.clamp(-clip_sample_range, clip_sample_range)
        eps = (sample - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance.clamp(min=0).sqrt()
    mean = a_prev.sqrt() * x0_hat + (1 - a_prev - std**2).clamp(min=0).sqrt() * eps
    return mean, std


def clean_estimate(eps: torch.Tensor, alpha: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), `alpha` shaped like the sample."""
    return (sample - (1 - alpha).sqrt() * eps) / alpha.sqrt()


def alpha_at(
    alphas_cumprod: torch.Tensor, final_alpha_cumprod: torch.Tensor, timestep: torch.Tensor, like: torch.Tensor
) -> torch.Tensor:
    """a_t of scalar or [B] timesteps (-1: the final one) shaped to multiply `like`."""
    return broadcast(_alpha(alphas_cumprod, final_alpha_cumprod, timestep), like)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, std^2 I) per element, averaged over every dimension but the first: shape [B]."""
    std = std.expand_as(mean)
    log_prob = -((x.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return log_prob.mean(dim=tuple(range(1, log_prob.dim())))


def gaussian_kl(mean: torch.Tensor, reference_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2 I) || N(reference_mean, std^2 I)) of each sample, summed over every dimension but the
    first: shape [B]. Both steps share the sampler's std, so the KL is |mean - reference_mean|^2 / (2 std^2)."""
    kl = (mean - reference_mean) ** 2 / (2 * std.expand_as(mean) ** 2)
    return kl.flatten(1).sum(dim=1)
