"""Data parallelism: two workers train the same weights as one process, for every registered method."""

import dataclasses

import pytest
import torch
from contract import aligner_names
from studies import tiny_study, trained_by_workers, trained_in_this_process, write_study

from vaderbench.experiment.load import load_experiment
from vaderbench.registry import ALIGNERS


def ddp_settings(method: str) -> dict:
    """Groups of two for methods that sample groups of a prompt (a whole group on each worker); a PPO clip
    range of 1: at 1e-4 every ratio after the first update is clipped, leaving only the KL's near-zero
    gradient, whose last-bit sign noise Adam turns into whole steps."""
    settings = {f.name for f in dataclasses.fields(ALIGNERS.get(method).Config)}
    return ({"group_size": 2} if "group_size" in settings else {}) | (
        {"clip_range": 1.0} if "clip_range" in settings else {}
    )


#: what the parity test compares, by step (the fit of a standardised ensemble's members at step 0)
DDP_METRICS = ("reward_mean", "grad_norm", "optimizer_steps", "base_reward_mean0", "base_reward_std1")
#: VADER on an ensemble standardised on the base model's videos: every worker samples them, rank 0's fit is kept
STANDARDISED = "vader-standardised"
#: the entries whose aligner logs its gradient norm (one optimiser step a round)
LOGS_GRAD_NORM = ("vader", "nft", STANDARDISED)


@pytest.fixture(scope="module")
def ddp_trials(tmp_path_factory):
    """Every registered method's trial trained by two workers in one gloo process group (what a Ray Train trial's
    workers run; test_cluster runs a two-worker trial through Ray Train itself) and by one worker in this
    process (as a one-worker trial's process trains it: test_faults checks the two bit for bit):
    {method: {workers: (LoRA weights, {metric: values by step})}}."""
    folder = tmp_path_factory.mktemp("ddp")
    methods = {method: {"batch_size": 4, "lr": 1e-2, **ddp_settings(method)} for method in aligner_names()}
    ensemble = {"of": ["colourfulness", "temporal_smoothness"], "aggregate": "min", "standardise": 4}
    methods[STANDARDISED] = {"aligner": "vader", "batch_size": 4, "lr": 1e-2, "reward": {"ensemble": ensemble}}
    trained = {method: {} for method in methods}
    for workers in (2, 1):
        config = write_study(folder, tiny_study(f"ddp{workers}", methods, 3, resources={"workers": workers}))
        trials = load_experiment(config).trials
        if workers == 2:
            results = trained_by_workers(trials, folder / "two", workers)
        else:
            results = {t.id: trained_in_this_process(t, folder / "one") for t in trials}
        for trial in trials:
            weights, reports = results[trial.id]
            trained[trial.method][workers] = (weights, {k: [r[k] for r in reports if k in r] for k in DDP_METRICS})
    return trained


@pytest.mark.timeout(600)  # the first one waits for every method's trials
@pytest.mark.parametrize("method", [*aligner_names(), STANDARDISED])
def test_two_ddp_workers_train_the_same_weights_as_one(ddp_trials, method):
    (one, history_one), (two, history_two) = ddp_trials[method][1], ddp_trials[method][2]
    assert any(v.abs().max() > 0 for k, v in one.items() if "lora_B" in k)  # it did train
    # the first update's gradient (same weights, same global batch): equal up to summation order
    assert bool(history_one["grad_norm"]) == (method in LOGS_GRAD_NORM)  # the check below is not empty for them
    assert history_two["grad_norm"][:1] == pytest.approx(history_one["grad_norm"][:1], rel=1e-5)
    assert history_two["reward_mean"] == pytest.approx(history_one["reward_mean"], abs=1e-4)
    # Adam's first steps move every weight by about lr * sign(gradient): a near-zero gradient whose sign
    # differs in the last bits moves one weight the other way, so a few weights may differ by up to
    # 2 lr per step; a wrong shard or a missing average would move most of them
    difference = torch.cat([(two[k] - one[k]).abs().flatten() for k in one])
    assert float((difference > 1e-5).float().mean()) < 0.01
    assert float(difference.max()) <= 2 * 1e-2 * history_one["optimizer_steps"][-1]


def test_two_ddp_workers_fit_a_standardised_ensemble_as_one_process_does(ddp_trials):
    (_, one), (_, two) = ddp_trials[STANDARDISED][1], ddp_trials[STANDARDISED][2]
    assert len(one["base_reward_mean0"]) == 1 and one["base_reward_std1"][0] > 0  # fitted once, at step 0
    # the same videos, sampled in batches of a worker's share of an evaluation (2 a batch, against 4 in one
    # process): equal up to the rounding of another batch size
    assert two["base_reward_mean0"] == pytest.approx(one["base_reward_mean0"], rel=1e-4)
    assert two["base_reward_std1"] == pytest.approx(one["base_reward_std1"], rel=1e-4)
