"""The LoRA scale at evaluation (DRaFT's interpolation toward the base model): scale 0 is the base model and 1 the
trained policy bit for bit, a scale s scales every LoRA layer's contribution by s, and a trial evaluates one trained
adapter at every scale of `eval.lora_scales` under suffixed names."""

import pytest
import torch
import yaml
from peft.tuners.lora import LoraLayer
from studies import TINY_WORLD, trial_loop
from tiny_world import PROMPTS, tiny_model

from vaderbench.experiment.load import load_experiment
from vaderbench.metrics import (
    EVAL_FIDELITY,
    EVAL_FIDELITY_PREFIX,
    EVAL_GOLD_MEAN,
    EVAL_KL,
    EVAL_REWARD_MEAN,
    EVAL_REWARD_STD,
    EVAL_REWARD_STD_MEMBERS,
    at_lora_scale,
)
from vaderbench.policy import Policy


def denoiser_output(policy: Policy) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *policy.model.latent_shape(3, 16, 16), generator=generator)
    with torch.no_grad():
        return policy.model.predict_noise(x, torch.tensor([500, 200]), policy.model.encode_prompts(PROMPTS[:2]))


def scalings(policy: Policy) -> list[float]:
    return [m.scaling["default"] for m in policy.model.denoiser.modules() if isinstance(m, LoraLayer)]


def test_scale_0_is_the_base_model_and_scale_1_the_policy_bit_for_bit():
    policy = Policy(tiny_model(), lora_rank=4, lora_alpha=8)
    for p in policy.trainable_parameters():
        torch.nn.init.normal_(p, std=0.5)  # make the adapters matter
    adapted = denoiser_output(policy)
    with policy.reference():
        base = denoiser_output(policy)
    assert not torch.allclose(adapted, base)
    with policy.lora_scale(0.0):
        assert torch.equal(denoiser_output(policy), base)
    with policy.lora_scale(1.0):
        assert torch.equal(denoiser_output(policy), adapted)
    trained = scalings(policy)
    assert trained and set(trained) == {2.0}  # alpha / r
    with policy.lora_scale(0.5):
        # every layer's contribution B A x times its scaling: halved exactly (a product by 0.5 rounds nowhere)
        assert scalings(policy) == [s / 2 for s in trained]
    assert scalings(policy) == trained and torch.equal(denoiser_output(policy), adapted)  # restored after


TINY = {
    **TINY_WORLD,
    "reward": "toy_aesthetic",  # an ensemble: its members' spread is logged too
    # a large step, so that the trained adapter moves the videos in 4 steps
    "methods": {"vader": {"batch_size": 2, "lr": 0.05}},
    "budget": {"steps": 4},
    "eval": {"every": 2, "videos": 2, "sample_videos": 0, "lora_scales": [1.0, 0.5, 0.0]},
    "checkpoint": {"every": 4},
}
#: what every evaluation logs on the toy aesthetic, at every scale
EVALUATED = (EVAL_REWARD_MEAN, EVAL_REWARD_STD, EVAL_KL, EVAL_REWARD_STD_MEMBERS, EVAL_GOLD_MEAN, EVAL_FIDELITY)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trial's loop run to its end (its policy trained) and its reports."""
    folder = tmp_path_factory.mktemp("lora-scale")
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(TINY))
    (trial,) = load_experiment(path).trials
    loop = trial_loop(trial, folder)
    reports = []
    loop.run(reports.append)
    return loop, [r for r in reports if EVAL_REWARD_MEAN in r]


def test_a_trial_logs_every_evaluation_at_every_scale(trained):
    _, evaluations = trained
    assert [r["step"] for r in evaluations] == [0, 2, 4]
    for report in evaluations:
        for metric in EVALUATED:
            assert {metric, at_lora_scale(metric, 0.5), at_lora_scale(metric, 0.0)} <= set(report)
    assert at_lora_scale(EVAL_REWARD_MEAN, 0.5) == "eval_reward_mean_lora0.5"
    assert at_lora_scale(f"{EVAL_FIDELITY_PREFIX}colour", 0.0) in evaluations[0]


def test_scale_0_after_training_is_the_step_0_base_evaluation(trained):
    _, evaluations = trained
    start, end = evaluations[0], evaluations[-1]
    assert end[EVAL_REWARD_MEAN] != start[EVAL_REWARD_MEAN]  # the adapter was trained
    assert end[EVAL_KL] > 0
    for metric in (EVAL_REWARD_MEAN, EVAL_REWARD_STD, EVAL_REWARD_STD_MEMBERS, EVAL_GOLD_MEAN, EVAL_FIDELITY):
        assert end[at_lora_scale(metric, 0.0)] == start[metric], metric
    assert end[at_lora_scale(EVAL_KL, 0.0)] == 0.0
    # before training the adapter adds nothing (its B starts at zero): every scale is the base
    assert start[at_lora_scale(EVAL_REWARD_MEAN, 0.5)] == start[EVAL_REWARD_MEAN]


def test_half_scale_halves_every_lora_layers_delta_and_lies_between(trained):
    loop, evaluations = trained
    policy = loop.aligner.policy
    layers = [m for m in policy.model.denoiser.modules() if isinstance(m, LoraLayer)]
    generator = torch.Generator().manual_seed(0)
    for layer in layers:
        x = torch.randn(4, layer.in_features, generator=generator)
        with torch.no_grad():
            full = layer(x)
            with policy.lora_scale(0.0):
                base = layer(x)
            with policy.lora_scale(0.5):
                half = layer(x)
        assert torch.equal(base, layer.base_layer(x))
        # the trained delta halves, up to the rounding of adding it to the base layer's output
        rounding = 4 * torch.finfo(x.dtype).eps * float(full.abs().max())
        assert float((full - base).abs().max()) > 1000 * rounding  # the check is not vacuous
        torch.testing.assert_close(half - base, (full - base) / 2, rtol=0, atol=rounding)
    # through the (nonlinear) network the half-scale policy lies strictly between the base and the trained one
    full = denoiser_output(policy)
    with policy.lora_scale(0.0):
        base = denoiser_output(policy)
    with policy.lora_scale(0.5):
        half = denoiser_output(policy)
    assert 0 < float((half - base).norm()) < float((full - base).norm())
    end = evaluations[-1]
    assert 0 < end[at_lora_scale(EVAL_KL, 0.5)] < end[EVAL_KL]
