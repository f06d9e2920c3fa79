"""The aligner contract, on every registered aligner: it declares its title and family, learns, keeps the base
weights frozen and resumes exactly; the PPO and DPO invariants on every aligner with those settings; and each
method's own checks."""

import copy
import io
import math
from dataclasses import fields

import pytest
import torch
from contract import aligner_names, aligners_with, first_update_gradient
from direction import log_prob_change, record_calls
from tiny_world import PROMPTS, tiny_model

from vaderbench.aligner import FAMILIES, build_aligner
from vaderbench.policy import Policy
from vaderbench.registry import ALIGNERS
from vaderbench.rewards import build_reward

GEOMETRY = {"frames": 4, "height": 16, "width": 16}
COMMON = {"num_steps": 6, "guidance_scale": 1.0}


def make(method, settings=None, seed=0, model=None):
    policy = Policy(model or tiny_model(), lora_rank=4)
    return build_aligner(
        method, policy, build_reward("colourfulness"), {**COMMON, **(settings or {})}, seed=seed, **GEOMETRY
    )


def prompts_for(aligner):
    return (PROMPTS * 4)[: aligner.prompts_per_step]


def frozen_weights(aligner):
    return {n: p.detach().clone() for n, p in aligner.policy.model.named_parameters() if "lora_" not in n}


@pytest.mark.parametrize("method", aligner_names())
def test_aligner_declares_its_name_title_and_family(method):
    cls = ALIGNERS.get(method)
    assert cls.name == method  # seeds derive from it: a subclass registered under another name must set its own
    assert isinstance(cls.title, str) and cls.title
    assert cls.family in FAMILIES


@pytest.mark.parametrize("method", aligner_names())
def test_aligner_raises_the_reward_of_its_samples_and_keeps_base_weights(method):
    cls = ALIGNERS.get(method)
    rounds = cls.contract_rounds
    aligner = make(method, cls.contract_settings)
    base = frozen_weights(aligner)
    eval_prompts, eval_seeds = PROMPTS * 2, list(range(100, 108))
    before = aligner.evaluate(eval_prompts, eval_seeds).mean()
    for _ in range(rounds):
        metrics = aligner.step(prompts_for(aligner))
    after = aligner.evaluate(eval_prompts, eval_seeds).mean()
    assert after > before + 0.05, (method, float(before), float(after))
    for name, value in frozen_weights(aligner).items():
        assert torch.equal(value, base[name]), name
    assert metrics["reward_queries"] == rounds * aligner.config.batch_size
    assert metrics["samples"] == rounds * aligner.config.batch_size


@pytest.mark.parametrize("method", aligner_names())
def test_state_dict_round_trip_continues_exactly(method):
    cls = ALIGNERS.get(method)
    # random frames to score: the rng state must come back too
    settings = {**cls.contract_settings, "batch_size": 4, "decode_frames": 2}
    if "truncation" in {f.name for f in fields(cls.Config)}:
        settings["truncation"] = {"mode": "rand"}  # a random cutoff per sample, from the same rng
    model = tiny_model()

    straight = make(method, settings, model=copy.deepcopy(model))
    straight_metrics = [straight.step(prompts_for(straight)) for _ in range(5)]

    first = make(method, settings, model=copy.deepcopy(model))
    for _ in range(3):
        first.step(prompts_for(first))
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    resumed = make(method, settings, model=copy.deepcopy(model))
    resumed.load_state_dict(torch.load(saved, weights_only=False))
    resumed_metrics = [resumed.step(prompts_for(resumed)) for _ in range(2)]

    assert resumed_metrics == straight_metrics[3:]
    for a, b in zip(straight.policy.trainable_parameters(), resumed.policy.trainable_parameters()):
        assert torch.equal(a, b)


PPO = aligners_with("clip_range", "minibatches", "inner_epochs")


@pytest.mark.parametrize("method", PPO)
def test_ppo_ratio_is_exactly_one_before_the_first_update(method):
    aligner = make(method, {"batch_size": 4, "minibatches": 1, "inner_epochs": 1})
    metrics = aligner.step(prompts_for(aligner))
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["approx_kl"] == pytest.approx(0.0, abs=1e-10)
    assert metrics["clipfrac"] == 0.0


@pytest.mark.parametrize("method", PPO)
def test_ppo_later_minibatches_see_the_update(method):
    aligner = make(method, {"lr": 3e-2, "batch_size": 4, "minibatches": 2, "inner_epochs": 2, "clip_range": 1e-4})
    metrics = aligner.step(prompts_for(aligner))
    assert metrics["approx_kl"] > 0
    assert metrics["optimizer_steps"] == 4


def test_one_ddpo_step_raises_the_log_prob_of_its_best_sample_and_lowers_its_worst():
    aligner = make("ddpo", {"lr": 1e-3, "batch_size": 4, "per_prompt_stat_tracking": False})
    trajectories, advantages = record_calls(aligner, "sample"), record_calls(aligner, "advantages")
    aligner.step(prompts_for(aligner))
    (_, trajectory), (_, advantage) = trajectories[0], advantages[0]
    change = log_prob_change(aligner, trajectory, range(COMMON["num_steps"]))
    assert change[advantage.argmax()] > 0 > change[advantage.argmin()], (advantage, change)


def test_ddpo_without_stat_tracking_gives_zero_advantages_to_a_batch_that_scored_alike():
    aligner = make("ddpo", {"per_prompt_stat_tracking": False})
    assert torch.equal(aligner.advantages(PROMPTS, torch.full((4,), 0.5)), torch.zeros(4))


def test_one_vader_step_raises_the_reward_of_the_videos_it_was_computed_on():
    # full backprop (K = T): the step follows the whole gradient of these videos' reward
    aligner = make("vader", {"lr": 1e-3, "batch_size": 4, "truncation": {"k": COMMON["num_steps"]}})
    samples = record_calls(aligner, "sample")
    metrics = aligner.step(prompts_for(aligner))
    (prompts, seeds), _ = samples[0]
    assert aligner.evaluate(prompts, seeds).mean() > metrics["reward_mean"]


def test_one_dpo_update_lowers_the_loss_of_the_pairs_it_was_computed_on():
    aligner = make("dpo", {"lr": 1e-3, "batch_size": 4, "pairs_per_update": 2})
    pair_loss, seen = aligner.pair_loss, []

    def recording(pairs, update):
        seen.append((pairs, update, aligner.rounds))  # the round seeds the pairs' timesteps and noise
        return pair_loss(pairs, update)

    aligner.pair_loss = recording
    metrics = aligner.step(prompts_for(aligner))
    pairs, update, aligner.rounds = seen[0]
    with torch.no_grad():
        loss, _ = pair_loss(pairs, update)
    assert metrics["updates"] == 1 and loss.mean() < metrics["loss"]


@pytest.mark.parametrize("method", aligners_with("beta", "pairs_per_update"))
def test_dpo_loss_at_initialisation_is_log_two(method):
    aligner = make(method, {"batch_size": 4, "pairs_per_update": 2})
    metrics = aligner.step(prompts_for(aligner))
    assert metrics["loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_micro_batches_accumulate_the_same_gradient():
    grads = []
    for micro in (None, 1):
        aligner = make("vader", {"batch_size": 4, "micro_batch_size": micro, "lr": 1e-2})
        grads.append(first_update_gradient(aligner, prompts_for(aligner)))
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "method, settings, message",
    [
        ("vader", {"truncation": {"k": 7}}, "k must be between 0 and num_steps=6"),
        ("ddpo", {"eta": 0.0}, "eta must be > 0"),
        ("dpo", {"group_size": 1}, "group_size"),
    ],
)
def test_bad_settings_raise_a_value_error_naming_the_setting(method, settings, message):
    with pytest.raises(ValueError, match=message):
        make(method, settings)


@pytest.mark.parametrize("method", aligner_names())
@pytest.mark.parametrize(
    "settings, message",
    [
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"learning_rate": 1e-3}, "unknown setting.*learning_rate"),
        ({"batch_size": 3, "group_size": 2}, "batch_size"),
    ],
)
def test_every_aligner_refuses_the_common_bad_settings(method, settings, message):
    with pytest.raises(ValueError, match=message):
        make(method, settings)


def test_unknown_aligner_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown aligner 'ppo'.*" + ", ".join(ALIGNERS.names())):
        make("ppo")


def test_video_rewards_refuse_too_few_decoded_frames():
    policy = Policy(tiny_model(), lora_rank=4)
    with pytest.raises(ValueError, match="needs at least 2"):
        build_aligner("vader", policy, build_reward("temporal_smoothness"), {"decode_frames": 1}, **GEOMETRY)


def test_dpo_micro_batches_accumulate_the_same_update():
    weights = []
    for micro in (None, 1):
        aligner = make("dpo", {"batch_size": 4, "pairs_per_update": 4, "micro_batch_size": micro, "lr": 1e-2})
        for _ in range(2):
            aligner.step(prompts_for(aligner))
        weights.append(torch.cat([p.detach().flatten() for p in aligner.policy.trainable_parameters()]))
    # Adam normalises the update, so float rounding in the summed gradient shows at ~1e-5 of lr-sized steps
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-3, atol=2e-5)


def test_ddpo_refuses_a_schedule_with_a_deterministic_step():
    model = tiny_model()
    model.scheduler = type(model.scheduler).from_config(model.scheduler.config, set_alpha_to_one=True)
    with pytest.raises(ValueError, match="zero variance"):
        make("ddpo", {"num_steps": 5}, model=model)  # 5 trailing steps end exactly at t = -1 (alpha 1)


def test_lora_weights_stay_float32_over_half_precision_base_weights():
    model = tiny_model().to(torch.bfloat16)
    policy = Policy(model, lora_rank=4)
    assert {p.dtype for p in policy.trainable_parameters()} == {torch.float32}


def ddpo_minibatch_rows(settings, rounds=2, seed=0):
    """The local rows of every minibatch DDPO trains on (one list per optimiser step)."""
    aligner = make("ddpo", settings, seed=seed)
    steps, current = [], set()
    score = aligner.policy.step_distribution

    def recording(trajectory, step_index, sampler, index=slice(None)):
        current.update(torch.arange(trajectory.batch_size)[index].tolist())
        return score(trajectory, step_index, sampler, index=index)

    def closing_minibatch():
        steps.append(sorted(current))
        current.clear()
        return apply_gradients()

    aligner.policy.step_distribution = recording
    apply_gradients, aligner.apply_gradients = aligner.apply_gradients, closing_minibatch
    for _ in range(rounds):
        aligner.step(prompts_for(aligner))
    return steps


def test_ddpo_shuffles_samples_into_minibatches_every_inner_epoch_deterministically():
    # two prompts, two copies each: contiguous chunks would always train a prompt's group alone
    settings = {
        "batch_size": 4,
        "group_size": 2,
        "minibatches": 2,
        "inner_epochs": 2,
        "num_steps": 2,
        "timestep_fraction": 0.5,
    }
    steps = ddpo_minibatch_rows(settings)
    assert len(steps) == 2 * 2 * 2
    for epoch in range(0, len(steps), 2):  # each inner epoch covers every sample once
        assert sorted(steps[epoch] + steps[epoch + 1]) == [0, 1, 2, 3]
    assert any(rows not in ([0, 1], [2, 3]) for rows in steps)
    assert len({tuple(rows) for rows in steps}) > 2  # the split changes from epoch to epoch
    assert steps == ddpo_minibatch_rows(settings)  # and is the same in every run with this seed
    assert steps[:4] != ddpo_minibatch_rows(settings, rounds=1, seed=1)


def test_ddpo_logged_metrics_are_weighted_by_the_rows_of_uneven_micro_batches():
    # 3 samples in micro-batches of 2 and 1: the logged means must equal those of one micro-batch of 3
    metrics = []
    for micro in (None, 2):
        aligner = make(
            "ddpo",
            {
                "batch_size": 3,
                "inner_epochs": 2,
                "lr": 3e-2,
                "clip_range": 1e-3,
                "per_prompt_stat_tracking": False,
                "micro_batch_size": micro,
            },
        )
        metrics.append(aligner.step(prompts_for(aligner)))
    whole, split = metrics
    assert whole["approx_kl"] > 0 and 0 < whole["clipfrac"] < 1  # the second epoch moved the ratio
    for key in ("loss", "approx_kl", "clipfrac", "ratio_mean"):
        assert split[key] == pytest.approx(whole[key], rel=1e-3, abs=1e-9), key


def test_dpo_pair_loss_puts_the_winner_first_and_averages_each_error_over_its_elements():
    aligner = make("dpo", {"batch_size": 4})
    for p in aligner.policy.trainable_parameters():
        torch.nn.init.normal_(p, std=0.3)  # the policy differs from the reference
    generator = torch.Generator().manual_seed(0)
    latents = torch.rand(3, 3, 4, 16, 16, generator=generator) * 2 - 1
    aligner.buffer.add(latents, [PROMPTS[0]] * 3, torch.tensor([0.1, 0.9, 0.5]), aligner.rng)
    calls = []
    denoising_loss = aligner.policy.denoising_loss

    def recording(clean, timesteps, noise, condition):
        calls.append((clean, timesteps, noise))
        return denoising_loss(clean, timesteps, noise, condition)

    aligner.policy.denoising_loss = recording
    pairs = [(1, 0), (2, 0)]  # (winner, loser)
    with torch.no_grad():
        loss, inside = aligner.pair_loss(pairs, update=0)
    _, timesteps, noise = calls[0]
    n = len(pairs)
    # winner and loser share their timestep and noise
    assert torch.equal(timesteps[:n], timesteps[n:]) and torch.equal(noise[:n], noise[n:])

    def mse(x, reference):
        a = aligner.policy.model.scheduler.alphas_cumprod[timesteps[:n]].view(-1, 1, 1, 1, 1)
        noisy = a.sqrt() * x + (1 - a).sqrt() * noise[:n]
        condition = aligner.policy.model.encode_prompts([PROMPTS[0]] * n)
        with torch.no_grad(), aligner.policy.reference() if reference else torch.enable_grad():
            eps = aligner.policy.model.predict_noise(noisy, timesteps[:n], condition)
        return torch.stack([((eps[i] - noise[i]) ** 2).sum() / eps[i].numel() for i in range(n)])

    winners, losers = latents[[w for w, _ in pairs]], latents[[loser for _, loser in pairs]]
    d_model = mse(winners, False) - mse(losers, False)
    d_ref = mse(winners, True) - mse(losers, True)
    expected_inside = -0.5 * aligner.config.beta * (d_model - d_ref)
    assert expected_inside.abs().min() > 1e-2  # the pairs are not ties: swapping them would show
    torch.testing.assert_close(inside, expected_inside, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(loss, -torch.nn.functional.logsigmoid(expected_inside), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("method", aligners_with("minibatches"))
def test_workers_split_each_minibatch_of_the_global_shuffle_and_weigh_it_as_one_process(monkeypatch, method):
    aligner = make(method, {"batch_size": 8, "minibatches": 2, "inner_epochs": 2, "micro_batch_size": 1})

    def minibatches(rank, world):
        """Per optimiser step: the global rows this worker trains on, and the sum of their shares."""
        monkeypatch.setattr("vaderbench.distributed.rank", lambda: rank)
        monkeypatch.setattr("vaderbench.distributed.world_size", lambda: world)
        steps, current = [], []
        aligner.apply_gradients = lambda: steps.append(current.copy()) or current.clear()
        size = 8 // world
        for _, rows, share in aligner.minibatch_rows(size):
            current.extend((int(r) + rank * size, share) for r in rows)
        return steps

    one = minibatches(0, 1)
    assert [sorted(r for r, _ in step) for step in one] != [[0, 1, 2, 3], [4, 5, 6, 7]] * 2  # shuffled
    two = [minibatches(rank, 2) for rank in (0, 1)]
    for step, (first, second) in enumerate(zip(*two, strict=True)):
        assert sorted(r for r, _ in first + second) == sorted(r for r, _ in one[step])
        # each row's share is 1/4 of its minibatch's mean, times the 2 workers the gradient average divides by
        assert {s for _, s in first + second} == {2 / 4} and {s for _, s in one[step]} == {1 / 4}
