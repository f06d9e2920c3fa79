"""The reward seam: frame averaging, weighted sums, the YAML forms of a reward, gradients to the frames."""

import pytest
import torch

from vaderbench.rewards import ImageReward, WeightedSum, build_reward
from vaderbench.rewards.pixel import Colourfulness, TemporalSmoothness


def test_colourfulness_is_channel_spread_and_image_rewards_average_over_frames():
    frames = torch.zeros(2, 3, 3, 4, 4)  # [B, F, C, H, W]
    frames[0, :, 0] = 1.0  # a pure red video: spread 1 in every frame
    frames[1, 0] = torch.tensor([0.2, 0.6, 0.0])[:, None, None]  # spread 0.6 in the first frame, then black
    torch.testing.assert_close(Colourfulness()(frames, ["", ""]), torch.tensor([1.0, 0.2]))


def test_temporal_smoothness_penalises_change_between_frames():
    still = torch.full((1, 4, 3, 8, 8), 0.5)
    flicker = still.clone()
    flicker[:, 1::2] = 0.0
    scores = TemporalSmoothness()(torch.cat([still, flicker]), ["", ""])
    assert scores[0] == 0 and scores[1] == pytest.approx(-0.25 * 3 / 3)


def test_rewards_are_differentiable_in_the_frames():
    frames = torch.rand(2, 3, 3, 8, 8, requires_grad=True)
    reward = build_reward({"colourfulness": 1.0, "temporal_smoothness": 2.0})
    reward(frames, ["a", "b"]).sum().backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0


def test_weighted_sum_from_yaml_forms():
    frames = torch.rand(2, 3, 3, 8, 8)
    prompts = ["a", "b"]
    combined = build_reward({"colourfulness": 1.5, "temporal_smoothness": {"weight": -2.0}})
    assert isinstance(combined, WeightedSum) and combined.min_frames == 2
    expected = 1.5 * Colourfulness()(frames, prompts) - 2.0 * TemporalSmoothness()(frames, prompts)
    torch.testing.assert_close(combined(frames, prompts), expected)
    assert isinstance(build_reward("colourfulness"), ImageReward)


def test_unknown_reward_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown reward 'aesthetics'.*colourfulness"):
        build_reward("aesthetics")
