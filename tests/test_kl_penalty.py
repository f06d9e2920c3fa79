"""The KL to the base model that every aligner's `kl_coef` weights: the per-step Gaussian KL against its closed
form; kl_coef 0 leaves VADER and DDPO as they were, bit for bit; kl_coef > 0 pulls the adapters back to the
reference; VADER's KL covers only its steps with gradient; DDPO's is 0 before its first update."""

from __future__ import annotations

import pytest
import torch
from direction import record_calls
from tiny_world import PROMPTS, tiny_model

from vaderbench.algorithms.ppo import ppo_clipped_loss
from vaderbench.aligner import build_aligner
from vaderbench.ddim import gaussian_kl
from vaderbench.policy import Policy
from vaderbench.rewards import build_reward

GEOMETRY = {"frames": 4, "height": 16, "width": 16}
COMMON = {"num_steps": 6, "guidance_scale": 1.0}


def make(method, settings=None):
    policy = Policy(tiny_model(), lora_rank=4)
    return build_aligner(method, policy, build_reward("colourfulness"), {**COMMON, **(settings or {})}, **GEOMETRY)


def prompts_for(aligner):
    return (PROMPTS * 4)[: aligner.prompts_per_step]


def move_adapters(policy, seed=0):
    """Adapters away from zero (A and B both): the policy differs from the reference and every weight has a gradient."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)


def gradients(policy):
    return [p.grad.clone() for p in policy.trainable_parameters()]


def recording_gradients(aligner) -> list[list[torch.Tensor]]:
    """Record the accumulated gradients each time the aligner takes an optimiser step."""
    recorded, apply = [], aligner.apply_gradients

    def recording():
        recorded.append(gradients(aligner.policy))
        return apply()

    aligner.apply_gradients = recording
    return recorded


def window_kl(policy, sampler, trajectory, steps) -> float:
    """The KL of the stored `steps` to the reference, summed over steps, mean over samples (VADER's `kl`)."""
    with torch.no_grad():
        index = [torch.full((trajectory.batch_size,), step) for step in steps]
        return float(sum(policy.step_kl(trajectory, i, sampler).mean() for i in index))


def test_gaussian_kl_is_the_closed_form_summed_over_elements():
    # std 0.5: KL = sum |mu - mu_ref|^2 / (2 * 0.25); sample 0: (1 + 4) / 0.5 = 10, sample 1: (0.25 + 0.25) / 0.5 = 1
    mean = torch.tensor([[1.0, 2.0], [0.5, -0.5]])
    kl = gaussian_kl(mean, torch.zeros(2, 2), torch.tensor(0.5))
    torch.testing.assert_close(kl, torch.tensor([10.0, 1.0]))
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(mean, 0.5), normal(torch.zeros(2, 2), 0.5)).sum(dim=1)
    torch.testing.assert_close(kl, expected)


def test_vader_without_kl_coef_follows_the_reward_gradient_alone_bit_for_bit():
    """kl_coef 0 (the default): the reference never runs and the gradient is that of -mean reward, as before."""
    aligner = make("vader", {"batch_size": 2})
    move_adapters(aligner.policy)
    references = record_calls(aligner.policy, "reference_mean")
    recorded = recording_gradients(aligner)
    prompts, seeds = prompts_for(aligner), aligner.sample_seeds(2)
    metrics = aligner.step(prompts)
    assert references == [] and metrics["kl"] == 0.0

    policy = Policy(tiny_model(), lora_rank=4)
    move_adapters(policy)
    trajectory = policy.sample(prompts, seeds, aligner.sampler, grad_from=COMMON["num_steps"] - 1, **GEOMETRY)
    reward = aligner.reward(policy.decode(trajectory.final), prompts)
    (-reward.sum() / len(prompts)).backward()
    assert all(torch.equal(a, b) for a, b in zip(recorded[0], gradients(policy), strict=True))
    assert metrics["loss"] == float(-reward.detach().sum() / len(prompts))


def test_vader_kl_covers_only_the_steps_with_gradient_and_enters_the_loss():
    settings = {"batch_size": 2, "kl_coef": 0.5, "truncation": {"k": 2}, "lr": 1e-3}
    aligner = make("vader", settings)
    move_adapters(aligner.policy)
    before = aligner.policy.lora_state_dict()
    trajectories, scores = record_calls(aligner, "sample"), record_calls(aligner, "score")
    kl_steps = record_calls(aligner.policy, "step_kl")
    metrics = aligner.step(prompts_for(aligner))
    assert sorted({int(args[1][0]) for args, _ in kl_steps}) == [4, 5]  # the last K = 2 of 6 steps

    aligner.policy.load_lora_state_dict(before)  # the weights the step's KL was computed with
    trajectory, rewards = trajectories[0][1], scores[0][1]
    inside = window_kl(aligner.policy, aligner.sampler, trajectory, [4, 5])
    outside = window_kl(aligner.policy, aligner.sampler, trajectory, [3])
    assert outside > 1e-4 * inside  # a step outside the window would show at the tolerance below
    assert metrics["kl"] == pytest.approx(inside, rel=1e-5)
    expected_loss = -float(rewards.detach().mean()) + settings["kl_coef"] * metrics["kl"]
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)


def zero_reward_gradient(aligner):
    """A reward that is the same for every video but still in the graph: only the KL term has a gradient."""
    aligner.reward = lambda frames, prompts: 0.5 + 0.0 * frames.flatten(1).mean(dim=1)


@pytest.mark.parametrize("k", [1, 3])
def test_vader_kl_term_alone_pulls_the_adapters_back_to_the_reference(k):
    aligner = make("vader", {"batch_size": 2, "kl_coef": 1.0, "truncation": {"k": k}, "lr": 1e-3})
    move_adapters(aligner.policy)
    zero_reward_gradient(aligner)
    trajectories = record_calls(aligner, "sample")
    metrics = aligner.step(prompts_for(aligner))
    steps = range(COMMON["num_steps"] - k, COMMON["num_steps"])
    after = window_kl(aligner.policy, aligner.sampler, trajectories[0][1], steps)
    # one step moves the adapters back by a margin (about 0.7 of the KL is left): weight decay and rounding alone
    # leave it within a millionth
    assert 0 < after < 0.95 * metrics["kl"]


def test_vader_refuses_kl_coef_with_a_deterministic_sampler():
    with pytest.raises(ValueError, match="kl_coef > 0 needs a stochastic sampler"):
        make("vader", {"kl_coef": 0.1, "eta": 0.0})
    make("vader", {"kl_coef": 0.0, "eta": 0.0})  # without the penalty, DDIM's ODE is VADER's to use


def test_ppo_step_loss_without_kl_coef_is_the_clipped_loss_bit_for_bit():
    """DDPO's loss as it was before the KL: the clipped surrogate of the step's log-probability ratio."""
    aligner = make("ddpo", {"batch_size": 2, "clip_range": 0.1})
    move_adapters(aligner.policy)
    with torch.no_grad():
        trajectory = aligner.policy.sample(PROMPTS[:2], [0, 1], aligner.sampler, **GEOMETRY)
    move_adapters(aligner.policy, seed=1)  # the policy has moved since it sampled: ratios away from 1
    rows, step_index, advantages = torch.tensor([1, 0]), torch.tensor([2, 4]), torch.tensor([0.7, -1.3])
    loss, values = aligner.step_loss(trajectory, step_index, rows, advantages)
    loss.backward()
    new = gradients(aligner.policy)
    aligner.optimizer.zero_grad()
    log_prob = aligner.policy.step_log_prob(trajectory, step_index, aligner.sampler, index=rows)
    old = ppo_clipped_loss(advantages, torch.exp(log_prob - trajectory.log_probs[step_index, rows]), 0.1)
    old.backward()
    assert torch.equal(loss, old) and values[2] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(new, gradients(aligner.policy), strict=True))


def test_ddpo_kl_is_zero_before_the_first_update_and_enters_the_loss_after():
    settings = {"batch_size": 4, "minibatches": 1, "kl_coef": 0.1, "per_prompt_stat_tracking": False}
    first = make("ddpo", settings).step(prompts_for(make("ddpo", settings)))
    assert first["kl"] == 0.0  # LoRA B starts at zero: the policy is the reference
    assert first["loss"] == first["policy_loss"]

    settings = settings | {"lr": 3e-2, "minibatches": 2, "kl_coef": 0.5}  # the second minibatch sees an update
    metrics = make("ddpo", settings).step(prompts_for(make("ddpo", settings)))
    kl_term = settings["kl_coef"] * metrics["kl"]
    assert kl_term > 1e-3 * abs(metrics["loss"])
    assert metrics["loss"] == pytest.approx(metrics["policy_loss"] + kl_term, rel=1e-6, abs=1e-9)


def test_ddpo_kl_term_alone_pulls_the_adapters_back_to_the_reference():
    settings = {"batch_size": 4, "minibatches": 1, "kl_coef": 1.0, "lr": 1e-3, "per_prompt_stat_tracking": False}
    aligner = make("ddpo", settings)
    move_adapters(aligner.policy)
    aligner.reward = lambda frames, prompts: torch.full((len(prompts),), 0.5)  # zero advantages: no policy term
    trajectories = record_calls(aligner, "sample")
    metrics = aligner.step(prompts_for(aligner))
    assert metrics["kl"] > 0 and metrics["advantage_abs_mean"] == 0
    trajectory = trajectories[0][1]
    elements = trajectory.latents[0, 0].numel()
    after = window_kl(aligner.policy, aligner.sampler, trajectory, range(COMMON["num_steps"])) / elements
    # DDPO's kl: mean over elements and trained steps; about 0.7 of it is left after the step (weight decay and
    # rounding alone leave it within a millionth)
    assert after / COMMON["num_steps"] < 0.95 * metrics["kl"]
