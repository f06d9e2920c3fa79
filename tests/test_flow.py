"""The rectified-flow sampling rule against its math, and toy-flow against the DDIM toy model it is derived from."""

from __future__ import annotations

import torch
from tiny_world import PROMPTS, tiny_model

from vaderbench.ddim import gaussian_log_prob
from vaderbench.flow import flow_sde_step
from vaderbench.models.toy import ToyFlowModel, ToyVideoModel
from vaderbench.policy import Policy, SamplerSettings

GEOMETRY = {"frames": 3, "height": 16, "width": 16}


def tiny_flow_model() -> ToyFlowModel:
    model = tiny_model()
    return ToyFlowModel(model.denoiser, model.text_encoder, model.scheduler)


def test_sde_step_is_flow_grpos_formula_and_its_log_prob_the_gaussian_density():
    generator = torch.Generator().manual_seed(0)
    x, v, x_next = (torch.randn(2, 3, 2, 4, 4, generator=generator) for _ in range(3))
    sigma, sigma_next, a = torch.tensor([0.8, 0.4]), torch.tensor([0.7, 0.3]), 0.7
    mean, std = flow_sde_step(v, sigma, sigma_next, x, a)
    for i in range(2):
        s, dt = float(sigma[i]), float(sigma_next[i] - sigma[i])
        std_t = a * (s / (1 - s)) ** 0.5
        expected = x[i] * (1 + std_t**2 / (2 * s) * dt) + v[i] * (1 + std_t**2 * (1 - s) / (2 * s)) * dt
        torch.testing.assert_close(mean[i], expected)
        torch.testing.assert_close(std[i].flatten(), torch.tensor([std_t * (-dt) ** 0.5]))
    density = torch.distributions.Normal(mean, std.expand_as(mean)).log_prob(x_next).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(gaussian_log_prob(x_next, mean, std), density)


def test_at_sigma_one_the_std_takes_the_next_level_in_its_denominator():
    x, v = torch.zeros(1, 2), torch.ones(1, 2)
    _, std = flow_sde_step(v, torch.tensor(1.0), torch.tensor(0.9), x, 0.7)
    torch.testing.assert_close(std.flatten(), torch.tensor([0.7 * (1 / 0.1) ** 0.5 * 0.1**0.5]))


def test_noise_level_zero_is_the_euler_step():
    generator = torch.Generator().manual_seed(1)
    x, v = torch.randn(3, 5, generator=generator), torch.randn(3, 5, generator=generator)
    mean, std = flow_sde_step(v, torch.tensor(0.6), torch.tensor(0.45), x, 0.0)
    torch.testing.assert_close(mean, x + v * (0.45 - 0.6))
    assert float(std.abs().max()) == 0.0


def test_toy_flow_is_the_ddim_models_change_of_variables():
    """On a noised clean video, its velocity is noise - clean, its noise estimate the noise, when the DDIM
    model's are: both read one network; checked where the network is exact by construction (v of a v-target)."""
    model = tiny_flow_model()
    rule = model.sampling
    clean = torch.rand(2, 3, 2, 8, 8) * 2 - 1
    noise = torch.randn(2, 3, 2, 8, 8)
    t_ddim = torch.tensor([300, 800])
    sigma = model.level_sigmas[t_ddim]
    timesteps = sigma * rule.timestep_scale
    x_flow = rule.noisy(clean, noise, timesteps)
    a = model.scheduler.alphas_cumprod[t_ddim].sqrt().view(-1, 1, 1, 1, 1)
    s = (1 - model.scheduler.alphas_cumprod[t_ddim]).sqrt().view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(x_flow * (a + s), a * clean + s * noise)  # the same point of both processes
    condition = model.encode_prompts(PROMPTS[:2])
    with torch.no_grad():
        eps_ddim = ToyVideoModel.predict_noise(model, x_flow * (a + s), t_ddim, condition)
        torch.testing.assert_close(model.predict_noise(x_flow, timesteps, condition), eps_ddim, rtol=1e-4, atol=1e-4)
        velocity = model.predict(x_flow, timesteps, condition)
        # the clean estimate the velocity implies is the DDIM model's (x_vp - s eps) / a
        ddim_clean = (x_flow * (a + s) - s * eps_ddim) / a
        torch.testing.assert_close(rule.clean_estimate(velocity, timesteps, x_flow), ddim_clean, rtol=1e-4, atol=1e-4)


def test_rescoring_a_flow_trajectory_gives_its_log_probs_exactly():
    policy = Policy(tiny_flow_model(), lora_rank=4)
    sampler = SamplerSettings(num_steps=4, eta=0.7, guidance_scale=2.0)
    with torch.no_grad():
        trajectory = policy.sample(PROMPTS, [3, 4, 5, 6], sampler, **GEOMETRY)
        for step in range(sampler.num_steps):
            rescored = policy.step_log_prob(trajectory, torch.full((4,), step), sampler)
            assert torch.equal(torch.exp(rescored - trajectory.log_probs[step]), torch.ones(4))


def test_toy_flow_euler_samples_match_ddim_eta_zero_samples():
    """Euler on the flow levels is DDIM with eta 0 on the same timesteps; what remains is DDIM's last step,
    which ends at alphas_cumprod[0] (a little noise left) where the flow ends at sigma 0."""
    ddim = Policy(tiny_model(), lora_rank=1)
    flow = Policy(tiny_flow_model(), lora_rank=1)
    differences = []
    with torch.no_grad():
        for steps in (5, 10, 20, 50):
            sampler = SamplerSettings(num_steps=steps, eta=0.0, guidance_scale=2.0)
            a = ddim.sample(PROMPTS, [1, 2, 3, 4], sampler, **GEOMETRY).final
            b = flow.sample(PROMPTS, [1, 2, 3, 4], sampler, **GEOMETRY).final
            differences.append(float((a - b).abs().max()))
    final_noise = (1 - ddim.model.scheduler.final_alpha_cumprod).sqrt()
    assert max(differences) < 10 * final_noise + 1e-3, differences
    # and the flow sampler is not trivially close to anything: few and many steps differ by far more
    with torch.no_grad():
        coarse = flow.sample(PROMPTS, [1, 2, 3, 4], SamplerSettings(2, 0.0, 2.0), **GEOMETRY).final
        fine = flow.sample(PROMPTS, [1, 2, 3, 4], SamplerSettings(50, 0.0, 2.0), **GEOMETRY).final
    assert float((coarse - fine).abs().max()) > 10 * max(differences)


def test_flow_denoising_loss_is_the_flow_matching_loss_and_dpo_takes_its_beta():
    from vaderbench.aligner import build_aligner
    from vaderbench.rewards import build_reward

    policy = Policy(tiny_flow_model(), lora_rank=4)
    model, rule = policy.model, policy.model.sampling
    generator = torch.Generator().manual_seed(3)
    clean = torch.rand(2, 3, 2, 8, 8, generator=generator) * 2 - 1
    noise = torch.randn(2, 3, 2, 8, 8, generator=generator)
    timesteps = model.level_sigmas[[100, 600]] * rule.timestep_scale
    condition = model.encode_prompts(PROMPTS[:2])
    sigma = (timesteps / 1000).view(-1, 1, 1, 1, 1)
    with torch.no_grad():
        velocity = model.predict((1 - sigma) * clean + sigma * noise, timesteps, condition)
        expected = ((velocity - (noise - clean)) ** 2).mean(dim=(1, 2, 3, 4))
        torch.testing.assert_close(policy.denoising_loss(clean, timesteps, noise, condition), expected)
    # the loss draws its levels from those the network was trained on
    drawn = rule.training_timestep(torch.Generator().manual_seed(0)) / rule.timestep_scale
    assert float((model.level_sigmas - drawn).abs().min()) < 1e-6
    dpo = build_aligner("dpo", policy, build_reward("colourfulness"), {"batch_size": 4}, **GEOMETRY)
    assert dpo.config.beta == 100.0
    ddim_dpo = build_aligner("dpo", Policy(tiny_model()), build_reward("colourfulness"), {"batch_size": 4}, **GEOMETRY)
    assert ddim_dpo.config.beta == 5000.0
