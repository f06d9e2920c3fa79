"""The sampler seam leaves DDIM where it was: bitwise the results of the policy before the seam existed.

`frozen_*` below are the policy's DDIM sampling, re-scoring and denoising loss as they were written before
sampling rules came from the model (commit 7b63e01), kept here as the reference: DDIM math called
directly on the scheduler's `alphas_cumprod`, the model's epsilon prediction; on the toy model's
architecture, ModelScope, CogVideoX and SVD at tiny size.
"""

from __future__ import annotations

import pytest
import tiny_models as tm
import torch
from PIL import Image
from tiny_world import PROMPTS, TINY_UNET

from vaderbench import catalogue
from vaderbench.ddim import ddim_step, gaussian_log_prob
from vaderbench.models.base import cat_conditions, index_condition
from vaderbench.models.toy import ToyVideoModel
from vaderbench.policy import Policy, SamplerSettings, sample_noise
from vaderbench.registry import MODELS
from vaderbench.toyworld.vocab import VOCAB

SAMPLER = SamplerSettings(num_steps=4, eta=1.0, guidance_scale=2.0)


def frozen_schedule(scheduler, num_steps):
    scheduler.set_timesteps(num_steps)
    timesteps = scheduler.timesteps.to(torch.long).cpu()
    return timesteps, timesteps - scheduler.config.num_train_timesteps // num_steps


def frozen_step(model, eps, t, t_prev, x, eta):
    config = model.scheduler.config
    clip = config.clip_sample_range if config.get("clip_sample", False) else None
    alphas = model.scheduler.alphas_cumprod.to(x.device)
    final = torch.as_tensor(model.scheduler.final_alpha_cumprod).to(x.device)
    return ddim_step(eps, t, t_prev, x, alphas, final, eta, clip)


def frozen_guided_noise(model, latents, timesteps, condition, null, guidance):
    if guidance == 1.0:
        return model.predict_noise(latents, timesteps, condition)
    both = model.predict_noise(
        torch.cat([latents, latents]), torch.cat([timesteps, timesteps]), cat_conditions([null, condition])
    )
    uncond, cond = both.chunk(2)
    return uncond + guidance * (cond - uncond)


def frozen_sample(policy, prompts, seeds, sampler, shape):
    model = policy.model
    x, step_noise = sample_noise(seeds, shape, sampler.num_steps)
    condition, null = policy.encode(prompts)
    timesteps, prev_timesteps = frozen_schedule(model.scheduler, sampler.num_steps)
    latents, log_probs = [x], []
    for i, (t, t_prev) in enumerate(zip(timesteps.tolist(), prev_timesteps.tolist())):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        eps = frozen_guided_noise(model, x, t_batch, condition, null, sampler.guidance_scale).float()
        mean, std = frozen_step(model, eps, torch.tensor(t), torch.tensor(t_prev), x, sampler.eta)
        x = mean + std * step_noise[i]
        log_probs.append(gaussian_log_prob(x, mean.detach(), std))
        latents.append(x)
    return torch.stack(latents), torch.stack(log_probs), timesteps, prev_timesteps


def frozen_step_log_prob(policy, latents, timesteps, prev_timesteps, prompts, step_index, rows, sampler):
    model = policy.model
    condition, null = policy.encode(prompts)
    x_t, x_prev = latents[step_index, rows], latents[step_index + 1, rows]
    eps = frozen_guided_noise(
        model,
        x_t,
        timesteps[step_index],
        index_condition(condition, rows),
        index_condition(null, rows),
        sampler.guidance_scale,
    ).float()
    mean, std = frozen_step(model, eps, timesteps[step_index], prev_timesteps[step_index], x_t, sampler.eta)
    return gaussian_log_prob(x_prev, mean, std)


def frozen_denoising_loss(model, clean, timesteps, noise, condition):
    alphas = model.scheduler.alphas_cumprod.to(clean.device)[timesteps]
    alphas = alphas.reshape(-1, *([1] * (clean.dim() - 1)))
    noisy = alphas.sqrt() * clean + (1 - alphas).sqrt() * noise
    eps = model.predict_noise(noisy, timesteps, condition).float()
    return ((eps - noise) ** 2).mean(dim=tuple(range(1, clean.dim())))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("seam_models")
    images = []
    for i in range(2):  # SVD's prompts are conditioning images
        images.append(d / f"image{i}.png")
        pixels = torch.randint(0, 256, (20, 24, 3), generator=torch.Generator().manual_seed(i), dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(images[-1])
    return {
        "modelscope": str(tm.save_tiny_modelscope(d / "modelscope")),
        "cogvideox": str(tm.save_tiny_cogvideox(d / "cogvideox")),
        "svd": str(tm.save_tiny_svd(d / "svd")),
        "images": [str(p) for p in images],
    }


def model_and_geometry(name, saved):
    if name == "toy":
        # random weights: bitwise equality needs no trained model (and skips the tiny model's fit)
        return ToyVideoModel.random(VOCAB, **TINY_UNET), PROMPTS[:2], {"frames": 3, "height": 16, "width": 16}
    catalogue.load_all()
    if name == "svd":
        model = MODELS.get("svd")(path=saved["svd"], image_size=(16, 16))
        return model, saved["images"], {"frames": 3, "height": 16, "width": 16}
    frames = 9 if name == "cogvideox" else 4
    return (
        MODELS.get(name)(path=saved[name]),
        ["a red cat", "a dog running"],
        {"frames": frames, "height": 16, "width": 16},
    )


@pytest.mark.parametrize("name", ["toy", "modelscope", "cogvideox", "svd"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sampling_rescoring_and_loss_are_bitwise_those_of_before_the_seam(saved, name, eta):
    model, prompts, geometry = model_and_geometry(name, saved)
    policy = Policy(model, lora_rank=2)
    for p in policy.trainable_parameters():
        torch.nn.init.normal_(p, std=0.1)  # adapters that change the prediction
    sampler = SamplerSettings(SAMPLER.num_steps, eta, SAMPLER.guidance_scale)
    seeds = [5, 6]
    with torch.no_grad():
        trajectory = policy.sample(prompts, seeds, sampler, **geometry)
        shape = model.latent_shape(**geometry)
        latents, log_probs, timesteps, prev = frozen_sample(policy, prompts, seeds, sampler, shape)
        assert torch.equal(trajectory.latents, latents)
        assert torch.equal(trajectory.timesteps, timesteps) and torch.equal(trajectory.prev_timesteps, prev)
        if eta > 0:
            assert torch.equal(trajectory.log_probs, log_probs)
            step_index, rows = torch.tensor([3, 0]), torch.tensor([1, 0])
            rescored = policy.step_log_prob(trajectory, step_index, sampler, index=rows)
            expected = frozen_step_log_prob(policy, latents, timesteps, prev, prompts, step_index, rows, sampler)
            assert torch.equal(rescored, expected)
        condition = policy.encode(prompts)[0]
        noise = torch.randn(latents[-1].shape, generator=torch.Generator().manual_seed(0))
        t = torch.tensor([10, 700])
        loss = policy.denoising_loss(latents[-1], t, noise, condition)
        assert torch.equal(loss, frozen_denoising_loss(model, latents[-1], t, noise, condition))
