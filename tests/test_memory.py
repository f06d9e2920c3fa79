"""The peak-memory estimate: what it counts (against hand-computed sizes and the real model), and how it grows."""

import pytest
import torch
from tiny_world import PROMPTS, TINY_UNET
from torch import nn

from vaderbench.algorithms.ddpo import Ddpo
from vaderbench.algorithms.dpo import Dpo
from vaderbench.algorithms.vader import Vader
from vaderbench.models.base import Footprint, kept_activation_bytes, meta_module
from vaderbench.policy import Policy
from vaderbench.registry import MODELS


def test_kept_bytes_are_the_inputs_that_backward_needs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 4))
    net.requires_grad_(False)
    net[2].weight.requires_grad_(True)  # only the last layer trains
    x = torch.randn(5, 8)
    # the first linear keeps nothing (no gradient flows into it); SiLU keeps nothing either, since nothing
    # before it needs a gradient; the last linear keeps its input for its weight's gradient: 5 x 16 floats
    assert kept_activation_bytes(net, lambda: net(x)) == 5 * 16 * 4
    net[0].weight.requires_grad_(True)
    # now also x (first linear) and the first linear's output (SiLU's input); the SiLU output is the last
    # linear's input, already counted
    assert kept_activation_bytes(net, lambda: net(x)) == (5 * 8 + 5 * 16 + 5 * 16) * 4


def test_meta_trace_of_the_toy_model_matches_a_real_lora_call():
    frames, height, width = 4, 16, 16
    factory = MODELS.get("toy-random")
    footprint = factory.footprint(frames, height, width, **TINY_UNET)
    policy = Policy(factory(**TINY_UNET), lora_rank=4)
    x = torch.randn(1, *policy.model.latent_shape(frames, height, width))
    condition = policy.model.encode_prompts(PROMPTS[:1])
    real = kept_activation_bytes(
        policy.model.denoiser, lambda: policy.guided_prediction(x, torch.tensor([500]), condition, condition, 1.0)
    )
    # LoRA's own small tensors (rank 4) and the v-to-epsilon conversion are the only differences
    assert footprint.denoiser_bytes == pytest.approx(real, rel=0.05)
    assert footprint.latent_elements == x.numel()
    weights = sum(p.numel() * 4 for n, p in policy.model.named_parameters() if "lora_" not in n)
    assert footprint.weight_bytes == weights


def test_meta_module_trains_only_the_lora_targets():
    module = meta_module(lambda: nn.ModuleDict({"to_q": nn.Linear(2, 2), "proj": nn.Linear(2, 2)}), ["to_q"])
    assert {n for n, p in module.named_parameters() if p.requires_grad} == {"to_q.weight"}
    assert all(p.is_meta for p in module.parameters())


FOOTPRINT = Footprint(weight_bytes=10**6, latent_elements=1000, denoiser_bytes=10**5, decoder_bytes=10**4)


def kept(aligner, workers=1, frames=4, **settings):
    return aligner.memory_terms(aligner.Config.from_dict(settings), FOOTPRINT, workers, frames)


def test_vader_keeps_k_guided_calls_and_the_decoder_per_micro_batch():
    one, _ = kept(Vader, batch_size=4, guidance_scale=1.0, truncation={"k": 1})
    assert one == 4 * (FOOTPRINT.denoiser_bytes + FOOTPRINT.decoder_bytes)
    three_guided, _ = kept(Vader, batch_size=4, micro_batch_size=2, guidance_scale=2.0, truncation={"k": 3})
    assert three_guided == 2 * (2 * 3 * FOOTPRINT.denoiser_bytes + FOOTPRINT.decoder_bytes)
    # `rand` may keep every step
    assert kept(Vader, batch_size=1, guidance_scale=1.0, num_steps=7, truncation={"mode": "rand"})[0] == (
        7 * FOOTPRINT.denoiser_bytes + FOOTPRINT.decoder_bytes
    )
    assert kept(Vader, batch_size=4, workers=2, guidance_scale=1.0)[0] == one / 2


def test_ddpo_keeps_one_call_per_micro_batch_and_stores_its_trajectories():
    activations, stored = kept(Ddpo, batch_size=8, minibatches=2, guidance_scale=2.0, num_steps=10)
    assert activations == 4 * 2 * FOOTPRINT.denoiser_bytes  # a minibatch of 4, guided
    assert stored == 11 * 8 * FOOTPRINT.latent_elements * 4  # x_T .. x_0 of every sample
    assert kept(Ddpo, batch_size=8, minibatches=2, guidance_scale=2.0, num_steps=50)[0] == activations


def test_dpo_keeps_winners_and_losers_and_the_replay_buffer():
    activations, stored = kept(Dpo, batch_size=4, pairs_per_update=4, buffer_capacity=64, num_steps=5)
    assert activations == 2 * 4 * FOOTPRINT.denoiser_bytes  # no guidance in the denoising loss
    assert stored == (64 + 6 * 4) * FOOTPRINT.latent_elements * 4


@pytest.fixture(scope="module")
def tiny_real_models(tmp_path_factory):
    import tiny_models as tm

    folder = tmp_path_factory.mktemp("memory_models")
    return {
        "modelscope": str(tm.save_tiny_modelscope(folder / "modelscope")),
        "cogvideox": str(tm.save_tiny_cogvideox(folder / "cogvideox")),
        "svd": str(tm.save_tiny_svd(folder / "svd")),
        "wan": str(tm.save_tiny_wan(folder / "wan")),
    }


@pytest.mark.parametrize("name, frames", [("modelscope", 4), ("cogvideox", 9), ("svd", 4), ("wan", 5)])
def test_meta_trace_of_each_real_model_matches_a_real_lora_call(tiny_real_models, name, frames):
    from vaderbench import catalogue

    catalogue.load_all()
    options = {"path": tiny_real_models[name]} | ({"image_size": (32, 32)} if name == "svd" else {})
    factory = MODELS.get(name)
    footprint = factory.footprint(frames, 32, 32, **options)
    model = factory(**options)
    policy = Policy(model, lora_rank=4)
    x = torch.randn(1, *model.latent_shape(frames, 32, 32))
    condition = model.null_condition(1)
    real = kept_activation_bytes(
        model.denoiser, lambda: policy.guided_prediction(x, torch.tensor([500]), condition, condition, 1.0)
    )
    # self-attention over the latent's positions is where an unfused trace would keep the whole attention matrix
    assert footprint.denoiser_bytes == pytest.approx(real, rel=0.1)
    latents = x.clone().requires_grad_(True)
    decoded = kept_activation_bytes(model.vae, lambda: model.decode(latents))
    assert footprint.decoder_bytes == pytest.approx(decoded, rel=0.1)
    assert footprint.latent_elements == x.numel()
    weights = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" not in n)
    assert footprint.weight_bytes == weights
