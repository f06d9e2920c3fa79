"""A reward ensemble standardised on the base model (`standardise: N`) inside a trial: fitted on the same base-model
videos in every trial of a study, logged at step 0, kept across a resume, and a fit that cannot be made ends the
trial with the reason."""

import copy
import dataclasses
import re

import pytest
import torch
import yaml
from studies import TINY_WORLD, trial_loop

from vaderbench.experiment.cost import base_fit_videos, describe_evaluations, evaluations_per_trial
from vaderbench.experiment.load import load_experiment
from vaderbench.metrics import EVAL_REWARD_MEAN, base_fit_metrics
from vaderbench.rewards.ensemble import Ensemble
from vaderbench.rewards.pixel import Colourfulness, TemporalSmoothness
from vaderbench.runner.trial import TRIAL_ERROR, TrialLoop, base_set

STANDARDISED = {"ensemble": {"of": ["colourfulness", "temporal_smoothness"], "aggregate": "min", "standardise": 6}}
TINY = {
    **TINY_WORLD,
    "reward": STANDARDISED,
    "methods": {"vader": {"batch_size": 2, "lr": 0.05}, "dpo": {"batch_size": 2, "group_size": 2}},
    "sweep": {"seed": [0, 1]},
    "budget": {"steps": 2},
    # 4 videos an evaluation: the 6 base videos are sampled in batches of 4 and 2
    "eval": {"every": 1, "videos": 4, "sample_videos": 0, "reference_reward": copy.deepcopy(STANDARDISED)},
    "checkpoint": {"every": 1},
}


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    path = tmp_path_factory.mktemp("standardised") / "exp.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return load_experiment(path).trials


def test_every_trial_of_a_study_fits_on_the_same_base_videos_and_logs_the_fit(trials, tmp_path):
    vader_0 = next(t for t in trials if t.method == "vader" and t.seed == 0)
    dpo_1 = next(t for t in trials if t.method == "dpo" and t.seed == 1)
    loop = trial_loop(vader_0, tmp_path / "a")
    fits = loop.fit_rewards_to_base()
    assert set(fits) == {"reward", "reference_reward"}
    assert fits == trial_loop(dpo_1, tmp_path / "b").fit_rewards_to_base()  # another method and seed: the same fit
    # the fit is each member's mean and population std over the base model's videos of the study's base set
    prompts, seeds = base_set(vader_0, 6)
    policy = loop.aligner.policy
    with torch.no_grad(), policy.reference():
        trajectory = policy.sample(prompts, seeds, loop.eval_sampler, frames=2, height=8, width=8)
        videos = policy.decode(trajectory.final)
    members = torch.stack([Colourfulness()(videos, prompts), TemporalSmoothness()(videos, prompts)])
    torch.testing.assert_close(torch.tensor(fits["reward"]["mean"]), members.mean(dim=1))
    torch.testing.assert_close(torch.tensor(fits["reward"]["std"]), members.std(dim=1, unbiased=False))
    # and the ensemble now reads those videos' members at mean 0 and std 1
    standardised = loop.aligner.reward.members(videos, prompts)
    torch.testing.assert_close(standardised.mean(dim=1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardised.std(dim=1, unbiased=False), torch.ones(2))

    reports = []
    trial_loop(vader_0, tmp_path / "c").run(reports.append)
    assert base_fit_metrics(fits).items() <= reports[0].items()
    assert "base_reward_std1" in reports[0] and "base_reward_std1" not in reports[1]


def test_a_resumed_trial_keeps_its_fit_and_continues_exactly(trials, tmp_path, monkeypatch):
    trial = next(t for t in trials if t.method == "vader" and t.seed == 0)
    whole = []
    trial_loop(trial, tmp_path / "whole").run(whole.append)
    # a run that stopped after its step-1 checkpoint, resumed to the whole run's budget
    one_step = trial.budget.model_copy(update={"steps": 1})
    first_step = trial_loop(dataclasses.replace(trial, budget=one_step), tmp_path / "first")
    first_step.run(lambda report: None)

    def refit(*args):
        raise AssertionError("a resumed trial must not fit its rewards again")

    monkeypatch.setattr(Ensemble, "fit_to_base", refit)
    resumed = []
    again = TrialLoop(trial, first_step.store, scratch=tmp_path / "resumed")
    again.run(resumed.append)
    assert again.progress.base_fits == first_step.progress.base_fits
    assert resumed[-1]["step"] == whole[-1]["step"] == 2
    assert resumed[-1][EVAL_REWARD_MEAN] == whole[-1][EVAL_REWARD_MEAN]


def test_a_fit_that_cannot_be_made_ends_the_trial_naming_why(trials, tmp_path, monkeypatch):
    def flat(self, scores):
        raise ValueError("reward ensemble: member 0 scores all 6 of the base model's videos alike")

    monkeypatch.setattr(Ensemble, "fit_to_base", flat)
    reports = []
    trial_loop(next(t for t in trials if t.method == "vader"), tmp_path).run(reports.append)
    assert reports == [
        {"step": 0, TRIAL_ERROR: "vader: reward ensemble: member 0 scores all 6 of the base model's videos alike"}
    ]


def test_the_reference_reward_shares_the_trials_reward_models(trials, tmp_path):
    loop = trial_loop(trials[0], tmp_path)
    assert (
        loop.scoring_rewards["reference_reward"] is loop.aligner.reward
    )  # the same spec: one copy, fitted once for both


def test_validate_counts_the_base_videos_of_the_fit_in_the_evaluations_cost(trials):
    plain = [
        dataclasses.replace(t, reward="colourfulness", eval=t.eval.model_copy(update={"reference_reward": None}))
        for t in trials
    ]
    assert [base_fit_videos(t) for t in trials] == [6] * 4 and [base_fit_videos(t) for t in plain] == [0] * 4
    evaluations = sum(evaluations_per_trial(t) for t in trials) * 4  # 4 videos an evaluation
    assert (
        f"{evaluations + 24} videos in all (24 of them the base model's, to fit the rewards)"
        in describe_evaluations(trials)
    )
    assert f"{evaluations} videos in all;" in describe_evaluations(plain)
    minutes = [float(re.search(r"about (\S+) min", describe_evaluations(t)).group(1)) for t in (plain, trials)]
    assert minutes[1] > minutes[0]
