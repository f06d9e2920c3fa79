"""Wan 2.1 on a tiny random model saved in the repository's layout: against diffusers' WanPipeline (prompt
encoding, Euler sampling, decoding), the flow rule's SDE log-probabilities, exact prefix decoding, the
repository's shift, one training step of every aligner, gradient checkpointing and half precision."""

from __future__ import annotations

import functools
import json
import shutil

import pytest
import tiny_models as tm
import torch
from diffusers import UniPCMultistepScheduler, WanPipeline

from vaderbench import catalogue
from vaderbench.aligner import build_aligner
from vaderbench.cli import main
from vaderbench.flow import flow_sde_step
from vaderbench.policy import Policy, SamplerSettings
from vaderbench.registry import MODELS
from vaderbench.rewards import build_reward

PROMPTS = ["a red cat", "a  dog running &amp; playing"]  # the second needs the pipeline's cleaning
GEOMETRY = {"frames": 5, "height": 16, "width": 16}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return str(tm.save_tiny_wan(tmp_path_factory.mktemp("wan") / "wan"))


@pytest.fixture(scope="module")
def model(path):
    """One loaded model for the tests that leave it as it is (no LoRA, no patched scheduler)."""
    return load(path)


def load(path, **options):
    catalogue.load_all()
    return MODELS.get("wan")(path=path, **options)


def pipeline_of(model, num_steps: int) -> WanPipeline:
    """diffusers' pipeline on the model's own modules, its scheduler on the model's levels."""
    pipe = WanPipeline(
        tokenizer=model.tokenizer,
        text_encoder=model.text_encoder,
        vae=model.vae,
        scheduler=model.scheduler,
        transformer=model.denoiser,
    )
    levels = torch.linspace(1, 0, num_steps + 1)[:-1].tolist()
    model.scheduler.set_timesteps = functools.partial(model.scheduler.set_timesteps, sigmas=levels)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def adapted(policy: Policy) -> Policy:
    for p in policy.trainable_parameters():
        torch.nn.init.normal_(p, std=0.1)  # peft starts B at zero; make the adapters change the prediction
    return policy


def test_levels_are_wans_shifted_flow_with_the_repositorys_shift(path, model):
    assert model.scheduler.config.shift == 3.0  # the repository's UniPC `flow_shift`
    timesteps, prev = model.sampling.schedule(4)
    t = torch.linspace(1, 0, 5)
    levels = 3 * t / (1 + 2 * t)
    torch.testing.assert_close(timesteps, levels[:-1] * 1000)
    torch.testing.assert_close(prev, levels[1:] * 1000)
    # the levels diffusers' UniPC scheduler of the repository visits (it starts at 0.999 before the shift)
    unipc = UniPCMultistepScheduler.from_pretrained(path, subfolder="scheduler")
    unipc.set_timesteps(4)
    torch.testing.assert_close(levels, unipc.sigmas.float(), atol=1e-3, rtol=0)
    assert load(path, shift=5.0).scheduler.config.shift == 5.0


def test_prompts_encode_as_the_pipeline_encodes_them(path):
    model = load(path, negative_prompt="blurry")
    embeds, negative = pipeline_of(model, 2).encode_prompt(
        PROMPTS, negative_prompt="blurry", max_sequence_length=model.max_sequence_length
    )
    torch.testing.assert_close(model.encode_prompts(PROMPTS)["text"], embeds)
    torch.testing.assert_close(model.null_condition(2)["text"], negative)
    assert embeds[0, 8:].abs().max() == 0 and embeds[0, :3].abs().min() > 0  # padding states are zeros


def test_euler_sampling_and_decoding_are_the_pipelines(path):
    model = load(path)
    policy = adapted(Policy(model, lora_rank=2))
    sampler = SamplerSettings(num_steps=3, eta=0.0, guidance_scale=2.0)
    with torch.no_grad():
        trajectory = policy.sample(PROMPTS, [0, 1], sampler, **GEOMETRY)
        video = policy.decode(trajectory.final)
        pipe = pipeline_of(model, sampler.num_steps)
        options = {"num_frames": 5, "height": 16, "width": 16, "num_inference_steps": 3, "guidance_scale": 2.0}
        start = trajectory.latents[0]
        latents = pipe(PROMPTS, latents=start.clone(), output_type="latent", **options).frames
        frames = pipe(PROMPTS, latents=start.clone(), output_type="pt", **options).frames
    assert trajectory.final.shape == (2, 16, 2, 2, 2) and video.shape == (2, 5, 3, 16, 16)
    torch.testing.assert_close(trajectory.final, latents)
    torch.testing.assert_close(video, frames)


def test_sde_log_probs_are_the_gaussian_density_of_the_flow_rules_steps(path):
    policy = adapted(Policy(load(path), lora_rank=2))
    sampler = SamplerSettings(num_steps=3, eta=0.7, guidance_scale=2.0)
    with torch.no_grad():
        trajectory = policy.sample(PROMPTS, [3, 4], sampler, **GEOMETRY)
        for i in range(sampler.num_steps):
            x, t = trajectory.latents[i], trajectory.timesteps[i]
            velocity = policy.guided_prediction(
                x, t.expand(2), trajectory.condition, trajectory.null_condition, sampler.guidance_scale
            )
            mean, std = flow_sde_step(velocity.float(), t / 1000, trajectory.prev_timesteps[i] / 1000, x, 0.7)
            density = torch.distributions.Normal(mean, std.expand_as(mean)).log_prob(trajectory.latents[i + 1])
            torch.testing.assert_close(trajectory.log_probs[i], density.mean(dim=(1, 2, 3, 4)))
    assert trajectory.log_probs.abs().min() > 0


@pytest.mark.parametrize("index, prefix", [([0], 1), ([4], 2), ([1, 8], 3), ([5, 6], 3), ([16], 5), ([0, 16], 5)])
def test_a_latent_prefix_decodes_the_chosen_frames_exactly(model, index, prefix):
    latents = torch.randn(1, 16, 5, 2, 2, generator=torch.Generator().manual_seed(0))  # 17 frames
    index = torch.tensor(index)
    assert model.decoded_prefix(index) == prefix
    with torch.no_grad():
        torch.testing.assert_close(model.decode(latents, index), model.decode(latents)[:, index], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["vader", "grpo", "ddpo", "dpo", "nft"])
def test_each_aligner_takes_a_step_that_trains_lora_only(path, method):
    policy = Policy(load(path), lora_rank=2)
    settings = {"num_steps": 3, "guidance_scale": 2.0, "batch_size": 2, "decode_frames": 1}
    settings |= {
        "grpo": {"group_size": 2},
        "dpo": {"group_size": 2, "pairs_per_update": 1},
        "nft": {"group_size": 2},
    }.get(method, {})
    aligner = build_aligner(method, policy, build_reward("colourfulness"), settings, **GEOMETRY)
    lora = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    base = {n: p.detach().clone() for n, p in policy.model.named_parameters() if not p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    aligner.step(PROMPTS[: aligner.prompts_per_step])
    parameters = dict(policy.model.named_parameters())
    assert any(not torch.equal(parameters[n], value) for n, value in lora.items()), method
    assert all(torch.equal(parameters[n], value) for n, value in base.items()), method


def test_gradient_checkpointing_gives_the_same_gradients(path):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        policy = adapted(Policy(load(path), lora_rank=2, gradient_checkpointing=checkpointing))
        assert policy.model.denoiser.gradient_checkpointing == checkpointing
        sampler = SamplerSettings(num_steps=3, eta=0.7, guidance_scale=2.0)
        trajectory = policy.sample(PROMPTS, [0, 1], sampler, **GEOMETRY, grad_from=1)
        policy.decode(trajectory.final, torch.tensor([0, 4])).pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_half_precision_keeps_what_diffusers_keeps_in_float32(path):
    model = load(path, weight_dtype="bf16")
    transformer = model.denoiser
    assert transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert model.vae.decoder.conv_in.weight.dtype == torch.bfloat16
    assert model.text_encoder.shared.weight.dtype == torch.bfloat16
    kept = [transformer.rope.freqs_cos, transformer.condition_embedder.time_embedder.linear_1.weight]
    assert all(t.dtype == torch.float32 for t in [*kept, transformer.blocks[0].scale_shift_table])
    policy = Policy(model, lora_rank=2, precision="bf16")
    trajectory = policy.sample(PROMPTS, [0, 1], SamplerSettings(2, 0.7, 2.0), **GEOMETRY, grad_from=1)
    video = policy.decode(trajectory.final, torch.tensor([0]))
    video.mean().backward()
    assert video.dtype == torch.float32 and torch.isfinite(video).all()
    assert any(p.grad is not None for p in policy.trainable_parameters())


def test_sizes_follow_the_vae_and_the_patch_and_wan_is_listed(path, model, capsys):
    assert model.latent_shape(33, 240, 416) == (16, 9, 30, 52)  # Flow-GRPO's Wan size
    check = MODELS.get("wan").check_size
    for frames, height, message in [(32, 240, "1 \\+ 4k"), (33, 248, "multiples of 16")]:
        with pytest.raises(ValueError, match=message):
            model.latent_shape(frames, height, 416)
        with pytest.raises(ValueError, match=message):
            check(frames, height, 416, path=path)
    assert main(["list"]) == 0
    assert "  wan " in capsys.readouterr().out


def test_configs_written_before_diffusers_knew_the_scale_factors_take_the_class_defaults(path, tmp_path):
    old = shutil.copytree(path, tmp_path / "wan")
    config_file = old / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    del config["scale_factor_spatial"], config["scale_factor_temporal"]  # saved before diffusers had them
    config_file.write_text(json.dumps(config))
    factory = MODELS.get("wan")
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        factory.check_size(32, 240, 416, path=str(old))
    assert factory.footprint(5, 16, 16, path=str(old)) == factory.footprint(5, 16, 16, path=path)
