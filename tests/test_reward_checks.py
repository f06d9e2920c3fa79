"""The proxy checks of `toyworld eval` against reference computations, the corruptions, and the learned
aesthetic reward's ensemble, on synthetic scores and renders."""

import itertools

import pytest
import torch
from scipy.stats import spearmanr
from tiny_world import TINY_BUILD_SCALE, TINY_BUILD_SEED

from vaderbench.rewards.base import build_reward
from vaderbench.toyworld.corrupt import KINDS, corrupt
from vaderbench.toyworld.gold import gold_aesthetic
from vaderbench.toyworld.references import reference_videos
from vaderbench.toyworld.reward_checks import best_of_n, expected_best_of, ladder, pair_accuracy, spearman
from vaderbench.toyworld.vocab import caption

PROMPTS = [
    caption("red", "circle", "left", "blue"),
    caption("white", "square", "up", "black"),
    caption("yellow", "triangle", "still", "purple"),
    caption("green", "circle", "down", "orange"),
]


def synthetic(captions=6, samples=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    gold = torch.rand(captions, samples, generator=generator).round(decimals=1)  # rounded: ties in the gold
    scores = gold + 0.3 * torch.randn(captions, samples, generator=generator)
    return scores, gold


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_pair_accuracy_counts_same_caption_pairs_as_a_loop_does(margin):
    scores, gold = synthetic()
    right = pairs = 0
    for row in range(gold.shape[0]):
        for i, j in itertools.combinations(range(gold.shape[1]), 2):
            gap = float(gold[row, i] - gold[row, j])
            if gap == 0 or abs(gap) < margin:
                continue
            pairs += 1
            right += (gap > 0) == bool(scores[row, i] > scores[row, j])
    result = pair_accuracy(scores, gold, margin)
    assert result["pairs"] == pairs and result["value"] == pytest.approx(right / pairs)
    assert result["low"] <= result["value"] <= result["high"]
    assert pair_accuracy(gold, gold, margin)["value"] == 1 and pair_accuracy(-gold, gold, margin)["value"] == 0


def test_pair_accuracy_without_a_pair_says_so():
    flat = torch.ones(3, 4)
    assert pair_accuracy(flat, flat) == {"value": None, "low": None, "high": None, "pairs": 0}


def test_best_of_n_is_the_mean_over_every_subset_of_n():
    scores, gold = synthetic(captions=3, samples=6, seed=1)
    for n in (1, 2, 3, 6):
        by_hand = torch.tensor(
            [
                sum(float(gold[row, max(subset, key=lambda i: float(scores[row, i]))]) for subset in subsets)
                / len(subsets)
                for row in range(3)
                for subsets in [list(itertools.combinations(range(6), n))]
            ]
        )
        assert torch.allclose(expected_best_of(scores, gold, n), by_hand.double())
    assert expected_best_of(scores, gold, 1).tolist() == pytest.approx(gold.mean(dim=1).tolist())


def test_best_of_n_by_the_gold_is_the_ceiling_and_rises_with_n():
    scores, gold = synthetic(samples=16, seed=2)
    table = best_of_n(scores, gold)
    assert list(table) == ["1", "2", "4", "8", "16"]
    ceilings = [row["by_gold"] for row in table.values()]
    assert ceilings == sorted(ceilings) and ceilings[-1] == pytest.approx(float(gold.max(dim=1).values.mean()))
    assert all(row["by_reward"] <= row["by_gold"] + 1e-9 for row in table.values())
    worst = best_of_n(-gold, gold)["16"]["by_reward"]  # choosing by the opposite picks the worst video
    assert worst == pytest.approx(float(gold.min(dim=1).values.mean()))
    with pytest.raises(ValueError, match="best of n"):
        expected_best_of(scores, gold, 17)


def test_spearman_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (5, 7), generator=generator).double()
    y = torch.randn(5, 7, generator=generator).double()
    expected = [spearmanr(a, b).statistic for a, b in zip(x.numpy(), y.numpy())]
    assert spearman(x, y).tolist() == pytest.approx(expected)
    assert spearman(torch.ones(1, 4), y[:1, :4]).isnan().all()


class GoldAsReward(torch.nn.Module):
    """A reward that scores a video by its gold times `sign`: the ladder's best and worst cases."""

    def __init__(self, sign):
        super().__init__()
        self.sign = sign

    def forward(self, frames, prompts):
        return self.sign * gold_aesthetic(frames)

    def gold(self, frames, prompts):
        return gold_aesthetic(frames)


def test_the_ladder_of_a_reward_that_is_its_gold_is_1_and_of_its_opposite_minus_1():
    up = ladder(GoldAsReward(1), PROMPTS, 16, 2, seed=4)
    down = ladder(GoldAsReward(-1), PROMPTS, 16, 2, seed=4)
    assert list(up) == [*KINDS, "mean"]
    assert up["mean"] == pytest.approx(1) and down["mean"] == pytest.approx(-1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_corruption_at_strength_0_changes_nothing_and_at_1_lowers_the_gold(kind):
    clean = reference_videos(PROMPTS, 2, 32, "caption", seed=5)
    same = corrupt(clean, kind, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(same, clean, atol=1e-6)
    worst = corrupt(clean, kind, 1.0, torch.Generator().manual_seed(0))
    assert worst.min() >= 0 and worst.max() <= 1
    assert (gold_aesthetic(worst) < gold_aesthetic(clean) - 0.02).all()


def test_corrupt_names_what_it_can_do():
    with pytest.raises(ValueError, match="noise, blur"):
        corrupt(torch.zeros(1, 1, 3, 8, 8), "smear", 0.5, torch.Generator())
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        corrupt(torch.zeros(1, 1, 3, 8, 8), "noise", 1.5, torch.Generator())


def test_the_aesthetic_reward_is_the_mean_of_its_members_and_ranks_a_ladder_as_the_gold_does():
    reward = build_reward("toy_aesthetic")
    clean = reference_videos(PROMPTS, 4, 32, "caption", seed=6)
    with torch.no_grad():
        members = reward.members(clean, PROMPTS)
        assert members.shape == (4, len(PROMPTS))
        assert torch.allclose(members.mean(dim=0), reward(clean, PROMPTS), atol=1e-5)
        for kind in ("noise", "grid", "flicker"):
            worse = corrupt(clean, kind, 0.5, torch.Generator().manual_seed(0))
            assert (reward(worse, PROMPTS) < reward(clean, PROMPTS)).all(), kind


@pytest.mark.slow  # one tiny build of the aesthetic stage: samples and aligns the base model at 3 sizes
def test_the_aesthetic_stage_rebuilds_the_same_loadable_ensemble_from_the_base_model(tiny_build, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from vaderbench.toyworld.build import BuildSteps, build

    # the stage alone, on the base model of the shared whole build (`tiny_build`), with its seed and steps: the
    # same ensemble as that build's own aesthetic stage, computed apart from the stages before it
    steps = BuildSteps().scaled(TINY_BUILD_SCALE)
    shutil.copytree(tiny_build / "base", tmp_path / "base")
    build(tmp_path, seed=TINY_BUILD_SEED, steps=steps, only=("aesthetic",))
    first, second = (load_file(folder / "aesthetic_ensemble.safetensors") for folder in (tiny_build, tmp_path))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    reward = build_reward({"toy_aesthetic": {"weights": str(tmp_path)}})
    videos = reference_videos(PROMPTS, 2, 16, "caption", seed=7)
    assert reward.members(videos, PROMPTS).shape == (steps.aesthetic.members, len(PROMPTS))


def test_the_preference_loss_is_bradley_terry_on_same_group_pairs_apart_in_gold_plus_the_regression():
    import math

    from vaderbench.toyworld.train_rewards import (
        PREFERENCE_MIN_GAP,
        PREFERENCE_TEMPERATURE,
        REGRESSION_WEIGHT,
        preference_loss,
    )

    scores = torch.tensor([0.50, 0.45, 0.90, 0.10, 0.30])
    gold = torch.tensor([0.60, 0.40, 0.20, 0.30, 0.60 + PREFERENCE_MIN_GAP / 2])
    # pairs: 0 over 1 and 4 over 1 (group 0), 3 over 2 (group 1); none across groups, and not 4 over 0, whose
    # gold is closer than the minimum gap
    group = torch.tensor([0, 0, 1, 1, 0])

    def softplus(x):
        return math.log1p(math.exp(x))

    margins = [0.50 - 0.45, 0.30 - 0.45, 0.10 - 0.90]
    pairwise = sum(softplus(-m / PREFERENCE_TEMPERATURE) for m in margins) / len(margins)
    regression = float(((scores - gold) ** 2).mean())
    expected = pairwise + REGRESSION_WEIGHT * regression
    assert float(preference_loss(scores, gold, group)) == pytest.approx(expected, rel=1e-6)
    # a wrongly ordered pair costs more than the same pair ordered right
    flipped = scores[[1, 0, 2, 3, 4]]
    assert float(preference_loss(flipped, gold, group)) > float(preference_loss(scores, gold, group))


def test_frames_are_labelled_with_their_own_gold_in_chunks(monkeypatch):
    from vaderbench.toyworld import preference_data

    videos = reference_videos(PROMPTS, 3, 16, "caption", seed=3)
    videos[1, 2] = corrupt(videos[1:2], "noise", 1.0, torch.Generator().manual_seed(0))[0, 2]
    monkeypatch.setattr(preference_data, "LABEL_CHUNK", 5)  # 12 frames: chunks of 5, 5 and 2
    labelled = preference_data.LabelledFrames.of_videos(videos, torch.tensor([7, 7, 8, 8]))
    frames = videos.flatten(0, 1)
    assert torch.equal(labelled.frames, frames)
    assert labelled.group.tolist() == [7] * 6 + [8] * 6
    assert torch.equal(labelled.gold, torch.stack([gold_aesthetic(frame[None, None])[0] for frame in frames]))
    assert labelled.gold[5] < labelled.gold[4] - 0.1  # the noisy frame has its own, lower gold
