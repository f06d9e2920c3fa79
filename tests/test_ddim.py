"""The DDIM step against diffusers' scheduler and its log-probability against torch's Normal density."""

import torch
from diffusers import DDIMScheduler

from vaderbench.ddim import ddim_step, gaussian_log_prob


def scheduler(**kwargs):
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **kwargs)


def test_step_mean_matches_diffusers_scheduler():
    sched = scheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    sched.set_timesteps(10)
    torch.manual_seed(0)
    x, eps = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 4, 3, 8, 8)
    for t in sched.timesteps:
        prev = t - sched.config.num_train_timesteps // 10
        for eta in (0.0, 1.0):
            expected = sched.step(eps, t, x, eta=eta, variance_noise=torch.zeros_like(x)).prev_sample
            mean, std = ddim_step(eps, t, prev, x, sched.alphas_cumprod, sched.final_alpha_cumprod, eta)
            torch.testing.assert_close(mean, expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(std.squeeze(), eta * sched._get_variance(t, prev).sqrt(), rtol=1e-6, atol=0)


def test_clipped_step_matches_diffusers_clip_sample():
    sched = scheduler(clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=False)
    sched.set_timesteps(5)
    torch.manual_seed(1)
    x, eps = 3 * torch.randn(1, 3, 2, 4, 4), torch.randn(1, 3, 2, 4, 4)
    t = sched.timesteps[1]
    prev = t - sched.config.num_train_timesteps // 5
    # eps is re-derived from the clipped x0 (diffusers' `use_clipped_model_output=True`)
    zeros = torch.zeros_like(x)
    expected = sched.step(eps, t, x, eta=1.0, variance_noise=zeros, use_clipped_model_output=True).prev_sample
    mean, _ = ddim_step(eps, t, prev, x, sched.alphas_cumprod, sched.final_alpha_cumprod, 1.0, clip_sample_range=1.0)
    torch.testing.assert_close(mean, expected, rtol=1e-5, atol=1e-5)


def test_log_prob_is_the_gaussian_density_averaged_over_dimensions():
    torch.manual_seed(2)
    mean, x = torch.randn(3, 4, 2, 5, 5), torch.randn(3, 4, 2, 5, 5)
    std = torch.tensor(0.37).reshape(1, 1, 1, 1, 1)
    expected = torch.distributions.Normal(mean, 0.37).log_prob(x).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(gaussian_log_prob(x, mean, std), expected)


def test_log_prob_gradient_flows_to_the_mean_only():
    mean = torch.zeros(2, 3, requires_grad=True)
    x = torch.ones(2, 3, requires_grad=True)
    gaussian_log_prob(x, mean, torch.tensor(1.0)).sum().backward()
    assert x.grad is None
    torch.testing.assert_close(mean.grad, torch.full((2, 3), 1 / 3))


def test_step_stays_finite_where_diffusers_takes_the_root_of_a_rounding_below_zero():
    # At eta 1 from t = 999 of squaredcos_cap_v2 (a_t ~ 2e-9), 1 - a_prev - sigma^2 is ~1e-8, below float32's
    # resolution near 1; diffusers takes its root unclamped and returns NaN for some a_prev (which ones depends
    # on the CPU's rounding), the project clamps at 0. Reference: diffusers' own step in float64.
    sched = DDIMScheduler(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing", set_alpha_to_one=False)
    sched.set_timesteps(5)
    t, prev = sched.timesteps[0], sched.timesteps[1]
    torch.manual_seed(3)
    x, eps = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 4, 3, 8, 8)
    zeros = torch.zeros_like(x)
    schedule = sched.alphas_cumprod
    # the direction's coefficient is the root of a float32 difference of numbers near 1, so it is known to
    # within sqrt(a few float32 eps); eps re-derived from the clipped x0 is about x
    tolerance = (4 * torch.finfo(torch.float32).eps) ** 0.5 * x.abs() + 1e-6
    undefined = 0
    for a_prev in torch.linspace(0.05, 0.95, 64):
        alphas = schedule.clone()
        alphas[prev] = a_prev
        mean, _ = ddim_step(eps, t, prev, x, alphas, sched.final_alpha_cumprod, 1.0, clip_sample_range=1.0)
        sched.alphas_cumprod = alphas
        in_float32 = sched.step(eps, t, x, eta=1.0, variance_noise=zeros, use_clipped_model_output=True).prev_sample
        sched.alphas_cumprod = alphas.double()
        in_float64 = sched.step(
            eps.double(), t, x.double(), eta=1.0, variance_noise=zeros.double(), use_clipped_model_output=True
        ).prev_sample
        undefined += int(in_float32.isnan().any())
        assert mean.isfinite().all()
        assert ((mean.double() - in_float64).abs() <= tolerance).all()
    assert undefined, "diffusers' float32 step was finite for every a_prev: the case this test guards is not shown"
