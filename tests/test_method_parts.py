"""The method-specific pieces: DPO loss, replay buffer pairing and eviction, DDPO's per-prompt statistics and PPO
loss, VADER's truncation."""

import math
import random

import numpy as np
import pytest
import torch

from vaderbench.algorithms.dpo import dpo_loss
from vaderbench.algorithms.ppo import ppo_clipped_loss
from vaderbench.algorithms.replay_buffer import ReplayBuffer
from vaderbench.algorithms.stat_tracker import PerPromptStatTracker
from vaderbench.algorithms.vader import Truncation


def test_dpo_loss_is_log_two_when_policy_equals_reference():
    mse = torch.tensor([0.3, 0.7, 1.1])
    loss, inside = dpo_loss(mse, mse.flip(0), mse, mse.flip(0), beta=5000)
    torch.testing.assert_close(loss, torch.full((3,), math.log(2)))
    assert torch.all(inside == 0)


def test_swapping_winner_and_loser_flips_the_inner_term():
    model_w, model_l = torch.tensor([0.20, 0.5]), torch.tensor([0.25, 0.4])
    ref_w, ref_l = torch.tensor([0.22, 0.45]), torch.tensor([0.21, 0.47])
    _, inside = dpo_loss(model_w, model_l, ref_w, ref_l, beta=100)
    _, swapped = dpo_loss(model_l, model_w, ref_l, ref_w, beta=100)
    torch.testing.assert_close(swapped, -inside)
    # the formula itself: -beta/2 ((mse_w - mse_l) - (ref_w - ref_l))
    torch.testing.assert_close(inside, -50 * ((model_w - model_l) - (ref_w - ref_l)))


def test_buffer_pairs_only_samples_of_the_same_prompt_with_the_winner_first():
    rng = random.Random(0)
    buffer = ReplayBuffer(capacity=40, eviction="random")
    prompts = ["cat", "dog", "bird", "fish"]
    for _ in range(30):
        batch = [rng.choice(prompts) for _ in range(6)]
        buffer.add(torch.randn(6, 2), batch, torch.randn(6), rng)
    pairs = buffer.sample_pairs(500, rng)
    assert len(pairs) == 500
    for winner, loser in pairs:
        assert winner != loser
        assert buffer.prompts[winner] == buffer.prompts[loser]
        assert buffer.rewards[winner] > buffer.rewards[loser]


def test_buffer_without_a_possible_pair_returns_none():
    rng = random.Random(0)
    buffer = ReplayBuffer(capacity=8)
    buffer.add(torch.zeros(3, 2), ["a", "b", "c"], torch.tensor([1.0, 2.0, 3.0]), rng)
    buffer.add(torch.zeros(1, 2), ["a"], torch.tensor([1.0]), rng)  # a tie is no preference
    assert buffer.sample_pairs(4, rng) == []


def test_fifo_buffer_keeps_the_newest_samples():
    rng = random.Random(0)
    buffer = ReplayBuffer(capacity=3, eviction="fifo")
    buffer.add(torch.arange(5.0)[:, None], list("abcde"), torch.arange(5.0), rng)
    assert buffer.prompts == ["c", "d", "e"]
    restored = ReplayBuffer(capacity=3)
    restored.load_state_dict(buffer.state_dict())
    assert restored.prompts == buffer.prompts and torch.equal(
        torch.stack(restored.latents), torch.stack(buffer.latents)
    )


@pytest.mark.parametrize("capacity, eviction", [(1, "fifo"), (4, "oldest")])
def test_buffer_rejects_bad_settings(capacity, eviction):
    with pytest.raises(ValueError):
        ReplayBuffer(capacity, eviction)


def test_stat_tracker_uses_batch_statistics_until_min_count_then_the_prompts_own():
    tracker = PerPromptStatTracker(buffer_size=4, min_count=3)
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0])
    first = tracker.advantages(["a", "a", "b", "b"], rewards)
    batch = rewards.numpy()
    np.testing.assert_allclose(first.numpy(), (batch - batch.mean()) / (batch.std() + 1e-6), rtol=1e-5)
    second = tracker.advantages(["a", "b"], torch.tensor([4.0, 5.0]))
    history_a = np.array([1.0, 2.0, 4.0])  # three rewards of "a": its own statistics now
    expected_a = (4.0 - history_a.mean()) / (history_a.std() + 1e-6)
    np.testing.assert_allclose(second[0].item(), expected_a, rtol=1e-5)
    # "b" has three too (3, 10, 5)
    history_b = np.array([3.0, 10.0, 5.0])
    np.testing.assert_allclose(second[1].item(), (5.0 - history_b.mean()) / (history_b.std() + 1e-6), rtol=1e-5)
    # the buffer keeps only the last `buffer_size` rewards
    tracker.advantages(["a"] * 3, torch.tensor([7.0, 8.0, 9.0]))
    assert list(tracker.history["a"]) == [4.0, 7.0, 8.0, 9.0]


def test_stat_tracker_gives_zero_advantages_not_nan_to_rewards_that_are_all_equal():
    tracker = PerPromptStatTracker(buffer_size=4, min_count=2)
    # below min_count: the batch's statistics, of a batch that scored alike
    assert torch.equal(tracker.advantages(["a", "a"], torch.tensor([0.5, 0.5])), torch.zeros(2))
    # at min_count: each prompt's own, "a" still alike beside a "b" whose rewards differ
    advantages = tracker.advantages(["a", "a", "b", "b"], torch.tensor([0.5, 0.5, 1.0, 3.0]))
    assert torch.equal(advantages[:2], torch.zeros(2))
    assert advantages[2] < 0 < advantages[3]


def test_random_and_specific_truncation_choose_cutoffs_in_range():
    rng = random.Random(0)
    cutoffs = {Truncation("rand").first_grad_step(10, rng) for _ in range(200)}
    assert cutoffs == set(range(10))
    assert Truncation("specific", step=7).first_grad_step(10, rng) == 7
    assert Truncation("last", 3).first_grad_step(10, rng) == 7  # the last 3 of 10 steps: indices 7, 8, 9


@pytest.mark.parametrize(
    "truncation, message",
    [(Truncation("last", 6), "k must be between 0 and num_steps=5"), (Truncation("specific", step=5), "step")],
)
def test_truncation_outside_the_schedule_is_rejected(truncation, message):
    with pytest.raises(ValueError, match=message):
        truncation.first_grad_step(5, random.Random(0))


def test_ppo_clipped_loss_is_the_clipped_surrogate_on_both_sides_of_the_clip():
    # eps = 0.2: the clip range is [0.8, 1.2]; each row is one case of the surrogate's four regions
    eps = 0.2
    advantages = torch.tensor([2.0, 2.0, 2.0, -3.0, -3.0, -3.0])
    ratio = torch.tensor([1.1, 1.5, 0.5, 1.1, 1.5, 0.5])
    expected_per_sample = torch.tensor(
        [
            -2.0 * 1.1,  # inside the range: -A r
            -2.0 * 1.2,  # A > 0, r above the range: the clipped -A (1 + eps) is larger, no incentive beyond it
            -2.0 * 0.5,  # A > 0, r below the range: max(-A r, -A (1 - eps)) = -A r, unclipped (pessimistic)
            3.0 * 1.1,  # inside the range, negative advantage
            3.0 * 1.5,  # A < 0, r above the range: -A r is larger, unclipped (pessimistic)
            3.0 * 0.8,  # A < 0, r below the range: the clipped -A (1 - eps)
        ]
    )
    torch.testing.assert_close(ppo_clipped_loss(advantages, ratio, eps), expected_per_sample.mean())
    for i in range(len(ratio)):
        one = slice(i, i + 1)
        torch.testing.assert_close(ppo_clipped_loss(advantages[one], ratio[one], eps), expected_per_sample[i])


def test_ppo_clipped_loss_gradient_vanishes_only_where_clipping_binds():
    eps = 0.2
    advantages = torch.tensor([2.0, 2.0, -3.0, -3.0])
    ratio = torch.tensor([1.5, 0.5, 0.5, 1.5], requires_grad=True)
    ppo_clipped_loss(advantages, ratio, eps).backward()
    # d/dr of mean(-A r) is -A / n where the unclipped term is the max, 0 where the clipped constant is
    torch.testing.assert_close(ratio.grad, torch.tensor([0.0, -2.0, 0.0, 3.0]) / 4)
