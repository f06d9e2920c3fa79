"""DiffusionNFT against its math: the implicit policies and the optimality probability on constructed cases, the
gradient where positive and negative coincide, the sign of the update, the old policy's and the EMA's decays."""

from __future__ import annotations

import pytest
import torch
from contract import first_update_gradient
from tiny_world import PROMPTS, tiny_model

from vaderbench.algorithms.nft import group_mean_advantages, implicit_policies, nft_loss, optimality_probability
from vaderbench.aligner import build_aligner
from vaderbench.models.toy import ToyFlowModel
from vaderbench.policy import Policy
from vaderbench.rewards import build_reward

GEOMETRY = {"frames": 4, "height": 16, "width": 16}
COMMON = {"num_steps": 6, "guidance_scale": 1.0, "eta": 0.0}


def make(settings=None):
    model = tiny_model()
    policy = Policy(ToyFlowModel(model.denoiser, model.text_encoder, model.scheduler), lora_rank=4)
    return build_aligner("nft", policy, build_reward("colourfulness"), {**COMMON, **(settings or {})}, **GEOMETRY)


def prompts_for(aligner):
    return (PROMPTS * 4)[: aligner.prompts_per_step]


def trained(aligner):
    return [p.detach().clone() for p in aligner.policy.trainable_parameters()]


def test_implicit_policies_are_the_papers_on_a_constructed_case():
    velocity, old = torch.tensor([3.0, 0.0]), torch.tensor([1.0, 2.0])
    positive, negative = implicit_policies(velocity, old, beta=0.5)
    # v+ = (1 - b) v_old + b v = 0.5 [1, 2] + 0.5 [3, 0]; v- = (1 + b) v_old - b v = 1.5 [1, 2] - 0.5 [3, 0]
    torch.testing.assert_close(positive, torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(negative, torch.tensor([0.0, 3.0]))
    positive, negative = implicit_policies(velocity, old, beta=1.0)  # the reference's beta: v+ is the policy
    torch.testing.assert_close(positive, velocity)
    torch.testing.assert_close(negative, torch.tensor([-1.0, 4.0]))


def test_rewards_map_to_an_optimality_probability_through_group_advantages():
    rewards = torch.tensor([1.0, 0.0, 3.0, 3.0])
    # the group's mean, the whole batch's population std: mean 1.75, variance (0.75^2 + 1.75^2 + 2 * 1.25^2) / 4
    std = ((0.75**2 + 1.75**2 + 2 * 1.25**2) / 4) ** 0.5
    expected = torch.tensor([0.5, -0.5, 0.0, 0.0]) / (std + 1e-4)
    torch.testing.assert_close(group_mean_advantages(rewards, 2), expected)
    advantages = torch.tensor([-10.0, -5.0, -2.5, 0.0, 2.5, 5.0, 10.0])
    torch.testing.assert_close(
        optimality_probability(advantages, 5.0), torch.tensor([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    )


@pytest.mark.parametrize("r, closer", [(1.0, True), (0.7, True), (0.3, False), (0.0, False)])
def test_a_high_reward_sample_pulls_the_velocity_towards_itself_and_a_low_one_pushes_it_away(r, closer):
    generator = torch.Generator().manual_seed(0)
    clean, noise = torch.randn(1, 3, 4, generator=generator), torch.randn(1, 3, 4, generator=generator)
    sigma = 0.6
    noisy = (1 - sigma) * clean + sigma * noise

    def estimate(velocity):  # the rectified flow's clean estimate x_t - sigma v
        return noisy - sigma * velocity

    velocity = torch.nn.Parameter(torch.randn(1, 3, 4, generator=generator))  # v_theta = v_old: a round's start
    loss = nft_loss(velocity, velocity.detach().clone(), clean, estimate, torch.tensor([r]), 0.5, 5.0).sum()
    loss.backward()
    before = float((estimate(velocity.detach()) - clean).norm())
    torch.optim.SGD([velocity], lr=1e-3).step()
    after = float((estimate(velocity.detach()) - clean).norm())
    assert (after < before) == closer, (before, after)


def test_where_positive_and_negative_coincide_the_gradient_is_flow_matching_on_the_samples():
    """At v_theta = v_old the NFT gradient is sum_i (2 r_i - 1) w_i grad ||v_theta - (eps - x0_i)||^2: plain flow
    matching on the samples, weighted by the optimality and the adaptive weight w = 5 sigma / mean |v - (eps - x0)|
    (the x0-space error is sigma times the velocity error); beta cancels."""
    # no clipping: the gradient is compared as computed
    aligner = make({"batch_size": 4, "group_size": 2, "beta": 0.3, "kl_coef": 0.0, "max_grad_norm": 1e9})
    rewards = torch.tensor([0.9, 0.1, 0.2, 0.6])
    aligner.score = lambda latents, prompts, frame_index=None: rewards.clone()
    clean = []
    sample = aligner.sample

    def recording(*args, **kwargs):
        trajectory = sample(*args, **kwargs)
        clean.append(trajectory.final)
        return trajectory

    aligner.sample = recording
    gradients = []
    aligner.optimizer.step = lambda: gradients.append([p.grad.clone() for p in aligner.policy.trainable_parameters()])
    seeds, prompts = aligner.sample_seeds(4), [p for p in prompts_for(aligner) for _ in range(2)]
    aligner.step(prompts_for(aligner))

    advantages = (rewards - rewards.reshape(2, 2).mean(dim=1).repeat_interleave(2)) / (
        rewards.std(unbiased=False) + 1e-4
    )
    r = 0.5 + 0.5 * (advantages / 5.0).clamp(-1, 1)
    x0 = clean[0]
    timesteps, noise = aligner.forward_points(seeds, x0.shape[1:])
    policy = aligner.policy
    policy.zero_grad(set_to_none=True)
    condition, _ = policy.encode(prompts)
    levels = timesteps.shape[1]
    for j in range(levels):
        t, eps = timesteps[:, j], noise[:, j]
        sigma = t / 1000
        with torch.no_grad():
            noisy = (1 - sigma.view(-1, 1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1, 1) * eps
            error = (policy.model.predict(noisy, t, condition) - (eps - x0)).abs().mean(dim=(1, 2, 3, 4))
        weight = 5.0 * (2 * r - 1) * sigma / error
        (weight * policy.denoising_loss(x0, t, eps, condition)).sum().div(4 * levels).backward()
    expected = [p.grad for p in policy.trainable_parameters()]
    assert max(float(g.abs().max()) for g in expected) > 0
    for got, want in zip(gradients[0], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-8)


def test_the_old_policy_samples_the_ema_evaluates_and_both_follow_the_weights_at_their_decays():
    aligner = make({"batch_size": 4, "group_size": 2, "lr": 1e-2, "old_decay_rate": 0.3, "old_decay_max": 0.5})
    sampled_with = []
    sample = aligner.policy.sample
    aligner.policy.sample = lambda *a, **k: sampled_with.append(trained(aligner)) or sample(*a, **k)
    start = trained(aligner)
    aligner.step(prompts_for(aligner))
    first = trained(aligner)
    # after 1 optimiser step: d = 0.3 * 1; the EMA's decay min((1 + 1) / (10 + 1), 0.9)
    for initial, old, ema, now in zip(start, aligner.old, aligner.ema, first, strict=True):
        torch.testing.assert_close(old, 0.3 * initial + 0.7 * now)
        torch.testing.assert_close(ema, 2 / 11 * initial + 9 / 11 * now)
    assert any(not torch.equal(a, b) for a, b in zip(start, first))  # it trained
    old, ema = [w.clone() for w in aligner.old], [w.clone() for w in aligner.ema]
    aligner.step(prompts_for(aligner))  # sampled with the old policy, then d = min(0.3 * 2, 0.5)
    second = trained(aligner)
    for before, after, now in zip(old, aligner.old, second, strict=True):
        torch.testing.assert_close(after, 0.5 * before + 0.5 * now)
    aligner.evaluate(PROMPTS[:2], [0, 1])
    assert all(torch.equal(a, b) for a, b in zip(sampled_with[0], start))
    assert all(torch.equal(a, b) for a, b in zip(sampled_with[1], old))
    ema_now = [3 / 12 * e + 9 / 12 * now for e, now in zip(ema, second)]  # min(3 / 12, 0.9)
    for used, expected in zip(sampled_with[2], ema_now, strict=True):
        torch.testing.assert_close(used, expected)
    assert all(torch.equal(a, b) for a, b in zip(trained(aligner), second))  # the trained weights are back


def test_micro_batches_accumulate_the_same_gradient():
    gradients = []
    for micro in (None, 1):
        aligner = make({"batch_size": 4, "group_size": 2, "micro_batch_size": micro})
        gradients.append(first_update_gradient(aligner, prompts_for(aligner)))
    assert gradients[0].abs().max() > 0
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"beta": 0.0}, "beta must be positive"),
        ({"group_size": 1, "batch_size": 4}, "group_size must be >= 2"),
        ({"old_decay_max": 1.0}, "old_decay_max"),
        ({"timestep_fraction": 0.0}, "timestep_fraction"),
    ],
)
def test_bad_settings_raise_naming_the_setting(settings, message):
    with pytest.raises(ValueError, match=message):
        make({"batch_size": 4, "group_size": 2, **settings})
