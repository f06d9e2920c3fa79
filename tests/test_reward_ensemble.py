"""The conservative reward ensemble (Coste et al. 2023): its aggregates on known member scores, the gradient of the
worst case, its members from one reward or from several, its spec forms and their errors."""

import math

import pytest
import torch
import yaml
from studies import TINY_WORLD

from vaderbench.cli import main
from vaderbench.experiment.load import load_experiment
from vaderbench.registry import REWARDS
from vaderbench.rewards import Reward, build_reward
from vaderbench.rewards.ensemble import Ensemble
from vaderbench.rewards.pixel import Colourfulness, TemporalSmoothness

#: member m's score of video b on all-ones frames (3 members, 2 videos)
SCORES = torch.tensor([[1.0, 5.0], [3.0, 1.0], [2.0, 3.0]])


class KnownMembers(Reward):
    """Member m scores video b as SCORES[m, b] times pixel m of its first frame: known scores on all-ones frames,
    and each member reads a pixel of its own, so the frames' gradient shows which members it came from."""

    def members(self, frames, prompts):
        return SCORES.to(frames) * frames[:, 0, 0, 0, : len(SCORES)].T

    def forward(self, frames, prompts):
        return self.members(frames, prompts).mean(dim=0)


@pytest.fixture
def known_members(monkeypatch):
    REWARDS.names()  # the catalogue first: the copies below hold every shipped reward
    monkeypatch.setattr(REWARDS, "_entries", dict(REWARDS._entries))
    monkeypatch.setattr(REWARDS, "_summaries", dict(REWARDS._summaries))
    REWARDS.register("known_members", "three members with known scores")(KnownMembers)


def ones(requires_grad=False):
    return torch.ones(2, 1, 3, 1, len(SCORES), requires_grad=requires_grad)  # [B, F, C, H, W]


@pytest.mark.parametrize(
    "aggregate, expected",
    [
        ("mean", [2.0, 3.0]),
        ("min", [1.0, 1.0]),
        # unbiased variances 1 and 4, penalty 0.5
        ("mean_minus_var", [1.5, 1.0]),
        # population stds sqrt(2/3) and sqrt(8/3), penalty 0.5
        ("mean_minus_std", [2 - 0.5 * math.sqrt(2 / 3), 3 - 0.5 * math.sqrt(8 / 3)]),
    ],
)
def test_each_aggregate_of_known_member_scores(known_members, aggregate, expected):
    ensemble = build_reward({"ensemble": {"of": "known_members", "aggregate": aggregate, "penalty": 0.5}})
    assert isinstance(ensemble, Ensemble)
    torch.testing.assert_close(ensemble(ones(), ["a", "b"]), torch.tensor(expected))
    # its members are the reward's own: evaluation logs their spread
    torch.testing.assert_close(ensemble.members(ones(), ["a", "b"]), SCORES)


def test_the_worst_case_gradient_reaches_the_lowest_member_only(known_members):
    frames = ones(requires_grad=True)
    build_reward({"ensemble": {"of": "known_members", "aggregate": "min"}})(frames, ["a", "b"]).sum().backward()
    expected = torch.zeros_like(frames)
    expected[0, 0, 0, 0, 0] = SCORES[0, 0]  # video 0: member 0 is the lowest (1 < 2 < 3)
    expected[1, 0, 0, 0, 1] = SCORES[1, 1]  # video 1: member 1 (1 < 3 < 5)
    torch.testing.assert_close(frames.grad, expected)
    frames.grad = None
    build_reward({"ensemble": {"of": "known_members", "aggregate": "mean"}})(frames, ["a", "b"]).sum().backward()
    torch.testing.assert_close(frames.grad[:, 0, 0, 0], SCORES.T / 3)  # the mean's reaches every member


def test_a_list_of_rewards_makes_one_member_each():
    frames = torch.rand(3, 4, 3, 8, 8)
    prompts = ["a", "b", "c"]
    ensemble = build_reward({"ensemble": {"of": ["colourfulness", "temporal_smoothness"], "aggregate": "min"}})
    members = torch.stack([Colourfulness()(frames, prompts), TemporalSmoothness()(frames, prompts)])
    torch.testing.assert_close(ensemble.members(frames, prompts), members)
    torch.testing.assert_close(ensemble(frames, prompts), members.min(dim=0).values)
    assert ensemble.min_frames == 2  # temporal smoothness needs a clip
    # a member's weight scales it, as in any reward spec
    scaled = build_reward({"ensemble": {"of": ["colourfulness", {"colourfulness": 2.0}]}})
    torch.testing.assert_close(scaled(frames, prompts), 1.5 * members[0])


def test_an_ensemble_of_the_toy_aesthetic_keeps_its_value_gold_and_oracle():
    frames = torch.rand(2, 2, 3, 8, 8)
    prompts = ["a red circle moving left on a blue background"] * 2
    aesthetic = build_reward("toy_aesthetic")
    mean = build_reward({"ensemble": {"of": "toy_aesthetic"}})
    worst = build_reward({"ensemble": {"of": "toy_aesthetic", "aggregate": "min"}})
    torch.testing.assert_close(mean(frames, prompts), aesthetic(frames, prompts))
    assert bool((worst(frames, prompts) <= mean(frames, prompts)).all())
    # the toy world still judges it by the aesthetic's gold (`toyworld.judge`), its headroom by the same oracle
    torch.testing.assert_close(worst.gold(frames, prompts), aesthetic.gold(frames, prompts))
    assert (worst.oracle, worst.prompt_free) == (aesthetic.oracle, aesthetic.prompt_free)
    # differentiable in the frames (VADER backpropagates through it), its members frozen
    frames.requires_grad_(True)
    worst(frames, prompts).sum().backward()
    assert frames.grad.abs().sum() > 0 and not any(p.requires_grad for p in worst.parameters())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"of": "colourfulness"}, r"of: reward 'colourfulness' has no members .* list several rewards"),
        ({"of": ["colourfulness"]}, r"of: expected a reward with members .* or a list of two or more rewards"),
        ({"of": ["colourfulness", "nope"]}, r"of\[1\]: expected a reward spec: unknown reward 'nope'"),
        ({"of": "toy_aesthetic", "aggregate": "max"}, r"aggregate: unknown aggregate 'max'; expected one of mean, min"),
        ({"of": "toy_aesthetic", "penalty": -0.1}, r"penalty: expected a number >= 0, got -0.1"),
    ],
)
def test_a_bad_ensemble_names_its_key_and_what_was_expected(options, message):
    with pytest.raises(ValueError, match=message):
        build_reward({"ensemble": options})


def test_an_experiment_file_with_an_ensemble_validates(tmp_path, capsys):
    reward = {"ensemble": {"of": "toy_aesthetic", "aggregate": "mean_minus_std", "penalty": 1.0}}
    study = {**TINY_WORLD, "reward": reward, "methods": {"vader": {"batch_size": 2}}, "budget": {"steps": 2}}
    path = tmp_path / "ensemble.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    (trial,) = load_experiment(path)[1]
    assert trial.reward == reward
    # a worker imports the members' modules (not every registering module until it finds their names)
    listed = {**study, "reward": {"ensemble": {"of": ["toy_clip", {"colourfulness": 0.5}]}}}
    path.write_text(yaml.safe_dump(listed))
    (trial,) = load_experiment(path)[1]
    assert {"vaderbench.rewards.ensemble", "vaderbench.rewards.toy_clip", "vaderbench.rewards.pixel"} <= set(
        trial.modules
    )
    assert "vaderbench.rewards.toy_aesthetic" not in trial.modules


def test_two_aggregates_of_a_sweep_are_two_settings_in_the_params(tmp_path):
    ensembles = [{"ensemble": {"of": "toy_aesthetic", "aggregate": aggregate}} for aggregate in ("min", "mean")]
    study = {
        **TINY_WORLD,
        "methods": {"vader": {"batch_size": 2}},
        "budget": {"steps": 2},
        "sweep": {"reward": ensembles},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(study))
    labels = [trial.params()["reward"] for trial in load_experiment(path).trials]
    assert labels == ["1*ensemble(aggregate=min,of=toy_aesthetic)", "1*ensemble(aggregate=mean,of=toy_aesthetic)"]


def test_standardised_members_are_in_units_of_the_base_models_spread(known_members):
    ensemble = build_reward({"ensemble": {"of": "known_members", "aggregate": "min", "standardise": 2}})
    assert ensemble.base_videos == 2
    with pytest.raises(RuntimeError, match="must be fitted on the base model's videos"):
        ensemble(ones(), ["a", "b"])  # never silently unstandardised
    fit = ensemble.fit_to_base(ensemble.base_scores(ones(), ["a", "b"]))
    assert fit == {"mean": [3.0, 2.0, 2.5], "std": [2.0, 1.0, 0.5]}  # of SCORES' rows, population std
    # two base videos: each member's scores standardise to -1 and +1
    standardised = torch.tensor([[-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    torch.testing.assert_close(ensemble.members(ones(), ["a", "b"]), standardised)
    torch.testing.assert_close(ensemble(ones(), ["a", "b"]), torch.tensor([-1.0, -1.0]))
    # a fit loaded (from a checkpoint) standardises the same
    again = build_reward({"ensemble": {"of": "known_members", "aggregate": "mean", "standardise": 2}})
    again.load_base_fit(fit)
    torch.testing.assert_close(again(ones(), ["a", "b"]), standardised.mean(dim=0))


def test_a_member_without_spread_on_the_base_model_cannot_be_standardised(known_members):
    ensemble = build_reward({"ensemble": {"of": "known_members", "standardise": 2}})
    flat = SCORES.clone()
    flat[1] = 4.0
    with pytest.raises(ValueError, match="member 1 scores all 2 of the base model's videos alike"):
        ensemble.fit_to_base(flat)


@pytest.mark.parametrize("standardise", [1, True, 2.5, "32"])
def test_standardise_is_a_count_of_base_videos(standardise):
    with pytest.raises(ValueError, match=r"standardise: expected the number of base-model videos to standardise on"):
        build_reward({"ensemble": {"of": "toy_aesthetic", "standardise": standardise}})
