"""The shared sampler: truncated backprop (Algorithm 1), stored log-probs, the reference model."""

import pytest
import torch
from diffusers import DDIMScheduler
from tiny_world import PROMPTS, tiny_model

from vaderbench.policy import Policy, SamplerSettings, sample_noise

SAMPLER = SamplerSettings(num_steps=5, eta=1.0, guidance_scale=2.0)
GEOMETRY = {"frames": 3, "height": 16, "width": 16}


@pytest.fixture
def policy():
    return Policy(tiny_model(), lora_rank=4)


def steps_receiving_gradient(policy: Policy, k: int) -> list[bool]:
    """Run one sample + reward backward; report for each denoiser call whether gradient reached its output."""
    received = []

    def hook(module, inputs, output):
        index = len(received)
        received.append(False)
        if output.requires_grad:
            output.register_hook(lambda grad: received.__setitem__(index, bool(grad.abs().sum() > 0)))

    handle = policy.model.denoiser.register_forward_hook(hook)
    try:
        trajectory = policy.sample(PROMPTS[:2], [0, 1], SAMPLER, grad_from=SAMPLER.num_steps - k, **GEOMETRY)
        loss = policy.decode(trajectory.final).std(dim=1).mean()
        if loss.requires_grad:
            loss.backward()
    finally:
        handle.remove()
    return received


@pytest.mark.parametrize(
    "k, expected",
    [
        (1, [False, False, False, False, True]),
        (0, [False] * 5),
        (3, [False, False, True, True, True]),
        (5, [True] * 5),
    ],
)
def test_only_the_last_k_steps_receive_gradient(policy, k, expected):
    assert steps_receiving_gradient(policy, k) == expected


def test_k_zero_builds_no_graph_and_lora_gets_no_gradient(policy):
    steps_receiving_gradient(policy, 0)
    assert all(p.grad is None for p in policy.trainable_parameters())


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_sampling_equals_a_diffusers_ddim_loop_with_the_same_noise(policy, eta):
    sampler = SamplerSettings(num_steps=5, eta=eta, guidance_scale=2.0)
    prompts, seeds = PROMPTS[:2], [7, 8]
    with torch.no_grad():
        trajectory = policy.sample(prompts, seeds, sampler, **GEOMETRY)
        # a pipeline's step: its own scheduler, its own timesteps, the policy's noise, from the policy's latents
        scheduler = DDIMScheduler.from_config(policy.model.scheduler.config)
        scheduler.set_timesteps(sampler.num_steps)
        x, step_noise = sample_noise(seeds, policy.model.latent_shape(**GEOMETRY), sampler.num_steps)
        condition, null = policy.encode(prompts)
        assert torch.equal(trajectory.latents[0], x)
        for i, t in enumerate(scheduler.timesteps):
            x = trajectory.latents[i]
            eps = policy.guided_prediction(x, t.repeat(len(seeds)), condition, null, sampler.guidance_scale)
            # the toy model clips x0 to the pixel range and re-derives eps from it (see vaderbench.ddim)
            step = scheduler.step(eps, t, x, eta=eta, variance_noise=step_noise[i], use_clipped_model_output=True)
            if not step.prev_sample.isfinite().all():
                # the reference is undefined here: at eta 1 from t = 999, 1 - a_prev - sigma^2 is ~2e-8, which
                # float32 rounds below 0 on some CPUs and diffusers takes its root unclamped (the project clamps
                # at 0, tests/test_ddim.py); no other step may be undefined
                assert (eta, int(t)) == (1.0, 999)
                continue
            torch.testing.assert_close(trajectory.latents[i + 1], step.prev_sample, rtol=1e-4, atol=1e-5)
    assert torch.equal(trajectory.timesteps, scheduler.timesteps.long())


def test_rescoring_a_stored_trajectory_gives_the_stored_log_probs(policy):
    with torch.no_grad():
        trajectory = policy.sample(PROMPTS, [3, 4, 5, 6], SAMPLER, **GEOMETRY)
        for step in range(SAMPLER.num_steps):
            index = torch.full((4,), step)
            rescored = policy.step_log_prob(trajectory, index, SAMPLER)
            torch.testing.assert_close(rescored, trajectory.log_probs[step], rtol=0, atol=1e-5)
        # per-sample timesteps and a subset of rows, as DDPO's shuffled minibatches ask for
        rows, index = torch.tensor([2, 0]), torch.tensor([4, 1])
        rescored = policy.step_log_prob(trajectory, index, SAMPLER, index=rows)
        torch.testing.assert_close(rescored, trajectory.log_probs[index, rows], rtol=0, atol=1e-5)


def test_samples_depend_on_their_seed_not_on_the_batch(policy):
    with torch.no_grad():
        together = policy.sample(PROMPTS[:2], [11, 12], SAMPLER, **GEOMETRY).final
        alone = policy.sample(PROMPTS[1:2], [12], SAMPLER, **GEOMETRY).final
    torch.testing.assert_close(together[1:], alone, rtol=1e-4, atol=1e-4)


def test_reference_switches_the_adapters_off_and_back_on(policy):
    for p in policy.trainable_parameters():
        torch.nn.init.normal_(p, std=0.5)  # make the adapters matter
    x = torch.randn(1, 3, 2, 16, 16)
    t = torch.tensor([500])
    condition = policy.model.encode_prompts(PROMPTS[:1])
    with torch.no_grad():
        adapted = policy.model.predict_noise(x, t, condition)
        with policy.reference():
            reference = policy.model.predict_noise(x, t, condition)
        again = policy.model.predict_noise(x, t, condition)
    assert not torch.allclose(adapted, reference)
    torch.testing.assert_close(adapted, again)


def test_base_weights_are_frozen_and_only_lora_trains(policy):
    trainable = {name for name, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        policy = Policy(tiny_model(), lora_rank=4, gradient_checkpointing=checkpointing)
        trajectory = policy.sample(PROMPTS[:2], [0, 1], SAMPLER, grad_from=3, **GEOMETRY)
        policy.decode(trajectory.final).std(dim=1).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_bf16_autocast_samples_close_to_fp32():
    fp32 = Policy(tiny_model(), lora_rank=4)
    bf16 = Policy(tiny_model(), lora_rank=4, precision="bf16")
    with torch.no_grad():
        a = fp32.decode(fp32.sample(PROMPTS[:2], [0, 1], SAMPLER, **GEOMETRY).final)
        b = bf16.decode(bf16.sample(PROMPTS[:2], [0, 1], SAMPLER, **GEOMETRY).final)
    assert (a - b).abs().mean() < 0.05


def test_bad_policy_arguments_name_the_argument():
    with pytest.raises(ValueError, match="lora_rank"):
        Policy(tiny_model(), lora_rank=0)
    with pytest.raises(ValueError, match="precision"):
        Policy(tiny_model(), precision="fp8")
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny_model().latent_shape(4, 18, 16)


def test_activation_offloading_gives_the_same_gradients():
    grads = []
    for offload in (False, True):
        policy = Policy(tiny_model(), lora_rank=4, offload_activations=offload)
        trajectory = policy.sample(PROMPTS[:2], [0, 1], SAMPLER, grad_from=3, **GEOMETRY)
        policy.decode(trajectory.final).std(dim=1).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_trajectory_kl_is_the_summed_gaussian_kl_of_the_steps_from_the_reference(policy):
    """Against torch.distributions' KL of the two Gaussian steps, each re-scored from the stored latents."""
    with torch.no_grad():
        predictions = []
        trajectory = policy.sample(
            PROMPTS, [3, 4, 5, 6], SAMPLER, **GEOMETRY, on_denoiser_call=lambda step, out: predictions.append(out)
        )
        assert torch.equal(policy.trajectory_kl(trajectory, SAMPLER, predictions), torch.zeros(4))  # adapters at 0
        for p in policy.trainable_parameters():
            torch.nn.init.normal_(p, std=0.1)
        predictions = []
        trajectory = policy.sample(
            PROMPTS, [3, 4, 5, 6], SAMPLER, **GEOMETRY, on_denoiser_call=lambda step, out: predictions.append(out)
        )
        expected = torch.zeros(4)
        for step in range(SAMPLER.num_steps):
            index = torch.full((4,), step)
            mean, std = policy.step_distribution(trajectory, index, SAMPLER)
            with policy.reference():
                reference, _ = policy.step_distribution(trajectory, index, SAMPLER)
            scale = std.expand_as(mean)
            kl = torch.distributions.kl_divergence(
                torch.distributions.Normal(mean, scale), torch.distributions.Normal(reference, scale)
            )
            expected += kl.flatten(1).sum(dim=1)
        kl = policy.trajectory_kl(trajectory, SAMPLER, predictions)
    assert (kl > 0).all()
    torch.testing.assert_close(kl, expected, rtol=1e-4, atol=1e-4)
