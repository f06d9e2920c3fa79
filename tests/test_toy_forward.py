"""The toy denoiser's forward equals its architecture written out plainly, and its shipped weights still fit.

The module computes in channels-last memory with the per-frame and temporal convolutions taken as 2D
views (for speed). The reference here is the architecture as documented, on contiguous tensors:
`F.conv3d` with each layer's weights, pixel-unshuffle per frame, attention as a masked softmax. Both run
with LoRA adapters in place (random, so that they contribute); the outputs and the gradients with
respect to the input and to the adapters must agree to float32 rounding.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vaderbench.models.toy import ToyVideoUNet, coordinate_codes, fourier, random_toy_model, timestep_embedding
from vaderbench.policy import Policy
from vaderbench.toyworld.render import clip_progress
from vaderbench.toyworld.weights import WEIGHTS_DIR


def group_norm(norm, x):
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def conv(layer, x):
    return F.conv3d(x, layer.weight, layer.bias, layer.stride, layer.padding)


def res_block(block, x, emb):
    h = conv(block.spatial, F.silu(group_norm(block.norm1, x)))
    scale, shift = block.time_proj(emb).transpose(1, 2)[..., None, None].chunk(2, dim=1)
    h = conv(block.temporal, F.silu(group_norm(block.norm2, h) * (1 + scale) + shift))
    return (x if isinstance(block.skip, torch.nn.Identity) else conv(block.skip, x)) + h


def cross_attention(attn, x, text, mask):
    b, c, f, h, w = x.shape
    d = c // attn.heads
    q = attn.to_q(group_norm(attn.norm, x).flatten(2).transpose(1, 2)).view(b, -1, attn.heads, d)
    k, v = (proj(text).view(b, -1, attn.heads, d) for proj in (attn.to_k, attn.to_v))
    attend = mask | ~mask.any(dim=1, keepdim=True)  # a caption of padding only attends to all its slots
    logits = torch.einsum("bnhd,blhd->bhnl", q, k) / d**0.5
    weights = logits.masked_fill(~attend[:, None, None], float("-inf")).softmax(dim=-1)
    out = torch.einsum("bhnl,blhd->bnhd", weights, v).reshape(b, -1, c)
    return x + attn.to_out(out).transpose(1, 2).reshape(b, c, f, h, w)


def reference_forward(unet, sample, timesteps, text, mask):
    config = unet.config
    b, c, f, h, w = sample.shape
    p, n = config.patch, config.coordinate_frequencies
    x = F.pixel_unshuffle(sample.transpose(1, 2).reshape(b * f, c, h, w), p)
    x = x.reshape(b, f, -1, h // p, w // p).transpose(1, 2)
    x = torch.cat([x, coordinate_codes(f, h // p, w // p, n).expand(b, -1, -1, -1, -1)], dim=1)
    caption = unet.text_pool((text * mask[..., None]).flatten(1))[:, None].expand(-1, f, -1)
    progress = fourier(clip_progress(f), n).T.expand(b, -1, -1)
    emb = unet.time_mlp(timestep_embedding(timesteps, config.emb_dim))[:, None]
    emb = emb + unet.frame_mlp(torch.cat([caption, progress], dim=-1))
    h0 = res_block(unet.down0, conv(unet.conv_in, x), emb)
    h1 = cross_attention(unet.attn1, res_block(unet.down1, conv(unet.downsample, h0), emb), text, mask)
    m = cross_attention(unet.attn_mid, res_block(unet.mid, h1, emb), text, mask)
    u1 = res_block(unet.up1, torch.cat([m, h1], dim=1), emb)
    u0 = u1.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)  # nearest-neighbour upsampling by 2
    u0 = res_block(unet.up0, torch.cat([conv(unet.upsample, u0), h0], dim=1), emb)
    out = conv(unet.conv_out, F.silu(group_norm(unet.norm_out, u0)))
    out = F.pixel_shuffle(out.transpose(1, 2).reshape(b * f, -1, h // p, w // p), p)
    return out.reshape(b, f, c, h, w).transpose(1, 2)


@pytest.fixture(scope="module")
def policy():
    policy = Policy(random_toy_model(seed=0, channels=(16, 32)), lora_rank=4)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in policy.trainable_parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return policy


@pytest.mark.parametrize("batch, frames, height, width", [(2, 1, 8, 12), (3, 3, 12, 8), (2, 4, 16, 16)])
def test_forward_and_gradients_equal_the_plain_computation(policy, batch, frames, height, width):
    unet = policy.model.denoiser
    generator = torch.Generator().manual_seed(frames)
    sample = torch.randn(batch, 3, frames, height, width, generator=generator, requires_grad=True)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator)
    text = torch.randn(batch, unet.config.text_length, unet.config.text_dim, generator=generator)
    mask = torch.arange(unet.config.text_length) < torch.tensor([5, 0, 16][:batch])[:, None]  # with a null caption
    weights = torch.randn(sample.shape, generator=generator)  # a loss whose gradient reaches every output

    results = []
    for forward in (unet, lambda *args: reference_forward(unet, *args)):
        out = forward(sample, timesteps, text, mask)
        grads = torch.autograd.grad((out * weights).sum(), [sample, *policy.trainable_parameters()])
        results.append((out, grads))
    (out, grads), (expected_out, expected_grads) = results

    assert out.shape == sample.shape and out.is_contiguous()
    torch.testing.assert_close(out, expected_out, rtol=1e-4, atol=1e-5)
    assert all(g.abs().sum() > 0 for g in expected_grads)
    for grad, expected in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_shipped_weights_have_exactly_the_modules_parameters():
    unet_dir = WEIGHTS_DIR / "base" / "unet"
    shipped = load_file(unet_dir / "diffusion_pytorch_model.safetensors")
    module = ToyVideoUNet.from_config(ToyVideoUNet.load_config(unet_dir))
    assert {k: v.shape for k, v in module.state_dict().items()} == {k: v.shape for k, v in shipped.items()}
