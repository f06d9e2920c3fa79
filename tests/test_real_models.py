"""Real base-model adapters on tiny random models saved in their repositories' layout."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_models as tm
import torch
from PIL import Image

from vaderbench import catalogue
from vaderbench.ddim import ddim_step
from vaderbench.models.diffusers_common import v_to_epsilon
from vaderbench.models.svd import edm_ddim_scheduler
from vaderbench.policy import Policy, SamplerSettings
from vaderbench.registry import MODELS

SAMPLER = SamplerSettings(num_steps=3, eta=1.0, guidance_scale=2.0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("base_models")
    images = []
    rng = np.random.default_rng(0)
    for i in range(2):
        images.append(d / f"image{i}.png")
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype("uint8")).save(images[-1])
    return {
        "modelscope": str(tm.save_tiny_modelscope(d / "modelscope")),
        "cogvideox": str(tm.save_tiny_cogvideox(d / "cogvideox")),
        "svd": str(tm.save_tiny_svd(d / "svd")),
        "wan": str(tm.save_tiny_wan(d / "wan")),
        "images": [str(p) for p in images],
    }


# (factory options, prompts, frames, height, width) per model at tiny size
def setting(name, saved):
    if name == "svd":
        return {"path": saved["svd"], "image_size": (16, 16)}, saved["images"], 3
    return {"path": saved[name]}, ["a red cat", "a dog running"], {"cogvideox": 9, "wan": 5}.get(name, 4)


def load(name, saved, **options):
    catalogue.load_all()
    factory_options, prompts, frames = setting(name, saved)
    return MODELS.get(name)(**factory_options, **options), prompts, frames


@pytest.mark.parametrize("name", ["modelscope", "cogvideox", "svd", "wan"])
def test_truncated_backprop_through_subsampled_frames_trains_lora_only(saved, name):
    model, prompts, frames = load(name, saved)
    policy = Policy(model, lora_rank=2, gradient_checkpointing=True)
    trajectory = policy.sample(
        prompts, [0, 1], SAMPLER, frames=frames, height=16, width=16, grad_from=SAMPLER.num_steps - 1
    )
    video = policy.decode(trajectory.final, torch.tensor([0, frames - 1]))
    assert video.shape == (2, 2, 3, 16, 16)
    assert 0 <= video.min() and video.max() <= 1
    video.mean().backward()
    lora = [p for n, p in model.denoiser.named_parameters() if "lora_" in n]
    assert lora and any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert all(p.grad is None for p in frozen)
    assert torch.isfinite(trajectory.log_probs).all()


def test_modelscope_block_checkpointing_gives_the_same_gradients(saved):
    grads = []
    for checkpointing in (False, True):
        model, prompts, frames = load("modelscope", saved)
        torch.manual_seed(0)
        policy = Policy(model, lora_rank=2, gradient_checkpointing=checkpointing)
        assert getattr(model.denoiser.down_blocks[0], "_checkpointed", False) == checkpointing
        for n, p in model.denoiser.named_parameters():
            if "lora_B" in n:  # peft starts B at zero; make the adapters do something
                torch.nn.init.normal_(p, std=0.1)
        trajectory = policy.sample(prompts, [0, 1], SAMPLER, frames=frames, height=16, width=16, grad_from=1)
        policy.decode(trajectory.final).pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_modelscope_decodes_chosen_frames_exactly(saved):
    model, _, _ = load("modelscope", saved)
    latents = torch.randn(1, 4, 4, 8, 8)
    index = torch.tensor([3, 1])
    with torch.no_grad():
        assert torch.allclose(model.decode(latents, index), model.decode(latents)[:, index], atol=1e-6)


@pytest.mark.parametrize("index", [[0], [4], [0, 8], [5, 6], [16]])
def test_cogvideox_decodes_a_latent_prefix_that_matches_the_whole_video(saved, index):
    model, _, _ = load("cogvideox", saved)
    latents = torch.randn(1, 5, 4, 2, 2)  # 5 latent frames = 17 frames
    index = torch.tensor(index)
    with torch.no_grad():
        assert torch.allclose(model.decode(latents, index), model.decode(latents)[:, index], atol=1e-5)
    assert model.decoded_prefix(torch.tensor([0]), 5) < 5  # the early frames really decode less


def test_cogvideox_frame_counts_and_terminal_snr(saved):
    model, _, _ = load("cogvideox", saved)
    assert model.latent_shape(9, 16, 16) == (3, 4, 2, 2)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        model.latent_shape(8, 16, 16)
    # zero terminal SNR is clamped so DDIM's x0 = (x - sqrt(1 - a) eps) / sqrt(a) stays finite
    assert model.scheduler.alphas_cumprod.min() > 0


def test_v_prediction_converts_to_epsilon():
    torch.manual_seed(0)
    alphas = torch.linspace(0.99, 0.01, 10)
    t = torch.tensor([0, 4, 9])
    x0, eps = torch.randn(3, 5), torch.randn(3, 5)
    a = alphas[t][:, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    assert torch.allclose(v_to_epsilon(v, x_t, alphas, t), eps, atol=1e-5)


def test_svd_ddim_view_is_the_edm_euler_step():
    scheduler = edm_ddim_scheduler(0.002, 700.0)
    alphas = scheduler.alphas_cumprod
    sigmas = ((1 - alphas) / alphas).sqrt()
    assert sigmas[0] == pytest.approx(0.002, rel=1e-3) and sigmas[-1] == pytest.approx(700.0, rel=1e-3)
    torch.manual_seed(0)
    t, s = 999, 959
    x, eps = torch.randn(1, 6), torch.randn(1, 6)
    mean, std = ddim_step(eps, torch.tensor(t), torch.tensor(s), x, alphas, scheduler.final_alpha_cumprod, eta=0.0)
    # Euler on the probability-flow ODE in variance-exploding coordinates: dx/dsigma = (x - D) / sigma = eps
    x_ve = x / alphas[t].sqrt()
    euler = x_ve + (sigmas[s] - sigmas[t]) * eps
    assert std == 0
    assert torch.allclose(mean / alphas[s].sqrt(), euler, rtol=1e-4, atol=1e-4)


def test_svd_prompts_are_image_paths_at_the_model_resolution(saved):
    model, prompts, _ = load("svd", saved)
    condition = model.encode_prompts(prompts)
    assert condition["image_latents"].shape == (2, 4, 8, 8)
    assert not torch.equal(condition["image_embeds"][0], condition["image_embeds"][1])
    with pytest.raises(ValueError, match="image path"):
        model.encode_prompts(["a red cat"])
    with pytest.raises(ValueError, match="image_size"):
        model.latent_shape(3, 32, 32)


def test_half_precision_weights_sample_under_autocast(saved):
    model, prompts, frames = load("modelscope", saved, weight_dtype="bf16")
    assert model.denoiser.conv_in.weight.dtype == torch.bfloat16
    assert model.vae.decoder.conv_in.weight.dtype == torch.bfloat16
    policy = Policy(model, lora_rank=2, precision="bf16")
    trajectory = policy.sample(prompts, [0, 1], SAMPLER, frames=frames, height=16, width=16, grad_from=2)
    video = policy.decode(trajectory.final, torch.tensor([0]))
    video.mean().backward()
    assert video.dtype == torch.float32 and torch.isfinite(video).all()
    assert any(p.grad is not None for p in policy.trainable_parameters())


def test_unknown_weight_dtype_is_a_clear_error(saved):
    with pytest.raises(ValueError, match="weight_dtype"):
        load("modelscope", saved, weight_dtype="fp8")
