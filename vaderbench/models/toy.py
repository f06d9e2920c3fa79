"""The embedded toy text-to-video model: a small pixel-space video UNet with a word-level text encoder.

Written as diffusers models (`ModelMixin`/`ConfigMixin`, saved with `save_pretrained`, loaded with
`from_pretrained`) and driven through the same `VideoModel` seam as real models, so the toy world
exercises the code paths a real model takes. It is convolutional in space and time, with positions and
clip progress given as codes in frame units: one set of weights serves every resolution divisible by 4
and any frame count.

Layout: latents are [B, C, F, H, W] (diffusers' UNet3D convention); frames go out as [B, F, C, H, W].
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from torch import nn

from vaderbench.flow import flow_noise_estimate
from vaderbench.models.base import (
    Condition,
    Footprint,
    VideoModel,
    check_multiple,
    kept_activation_bytes,
    meta_module,
    parameter_bytes,
)
from vaderbench.models.diffusers_common import v_to_epsilon
from vaderbench.registry import MODELS
from vaderbench.sampling import FlowMatchRule
from vaderbench.toyworld.render import clip_progress

PAD, UNK = 0, 1


class WordTokenizer:
    """Lower-case word tokenizer over a fixed vocabulary (id 0 = padding, 1 = unknown word)."""

    def __init__(self, vocab: Sequence[str], max_length: int):
        self.vocab = list(vocab)
        self.max_length = max_length
        self._ids = {word: i + 2 for i, word in enumerate(self.vocab)}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())[: self.max_length]
            ids[row, : len(words)] = torch.tensor([self._ids.get(w, UNK) for w in words], dtype=torch.long)
        return ids


class ToyTextEncoder(ModelMixin, ConfigMixin):
    """A two-layer transformer over word embeddings; returns token states and a padding mask."""

    @register_to_config
    def __init__(self, vocab: Sequence[str] = (), dim: int = 64, layers: int = 2, heads: int = 4, max_length: int = 16):
        super().__init__()
        self.embed = nn.Embedding(len(vocab) + 2, dim, padding_idx=PAD)
        self.position = nn.Parameter(torch.zeros(max_length, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = ids != PAD
        h = self.embed(ids) + self.position[: ids.shape[1]]
        # an all-padding (null) prompt attends to nothing; let it attend to its own slots instead
        attend = mask | ~mask.any(dim=1, keepdim=True)
        h = self.encoder(h, src_key_padding_mask=~attend)
        return self.norm(h), mask


def fourier(values: torch.Tensor, frequencies: int) -> torch.Tensor:
    """sin and cos of pi * 2^k * values for k < frequencies: [2 * frequencies, *values.shape]."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=values.device)
    angles = scales.view(-1, *[1] * values.dim()) * values
    return torch.cat([angles.sin(), angles.cos()])


def coordinate_codes(frames: int, height: int, width: int, frequencies: int, device=None) -> torch.Tensor:
    """Fourier codes [1, 6 * frequencies, F, H, W] of each cell's (progress through the clip, y, x).

    Positions are in frame units (cell centres), so a place in the frame has the same code at every
    resolution. A convolution alone is translation-equivariant: without these codes the denoiser could not
    put an object where a caption's motion says it is at this point of the clip.
    """
    y = (torch.arange(height, device=device) + 0.5) / height
    x = (torch.arange(width, device=device) + 0.5) / width
    grid = torch.stack(torch.meshgrid(clip_progress(frames, device), y, x, indexing="ij"))  # [3, F, H, W]
    codes = fourier(grid, frequencies)  # [2n, 3, F, H, W]: sin for every frequency, then cos
    return codes.view(2, frequencies, 3, frames, height, width).flatten(0, 2)[None]


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TemporalConv(nn.Conv3d):
    """A (3, 1, 1) Conv3d over [B, C, F, H, W], computed as a conv2d over (F, H * W).

    Same weights and result as the Conv3d; on CPU, PyTorch runs this kernel shape of conv3d through its
    slow reference path, while the conv2d takes oneDNN's. On a channels-last input both views are free.
    """

    def __init__(self, channels: int):
        super().__init__(channels, channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x.flatten(3), self.weight.flatten(3), self.bias, padding=self.padding[:2])
        return out.unflatten(3, x.shape[3:])


class PointwiseConv(nn.Conv3d):
    """A 1x1x1 Conv3d computed as a matmul over channels (oneDNN's conv3d is slow on channels-last here)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.movedim(1, -1), self.weight.flatten(1), self.bias).movedim(-1, 1)


class ResBlock(nn.Module):
    """(2+1)D residual block: a spatial 3x3 conv per frame, then a temporal 3-tap conv, FiLM per frame."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.spatial = nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))
        self.time_proj = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.temporal = TemporalConv(cout)
        self.skip = PointwiseConv(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x [B, C, F, H, W]; emb [B, F, D], one conditioning vector per frame."""
        h = self.spatial(F.silu(self.norm1(x)))
        scale, shift = self.time_proj(emb).transpose(1, 2)[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.temporal(F.silu(h))
        return self.skip(x) + h


class CrossAttention(nn.Module):
    """Every space-time position attends to the caption's tokens."""

    def __init__(self, channels: int, text_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(text_dim, channels, bias=False)
        self.to_v = nn.Linear(text_dim, channels, bias=False)
        self.to_out = nn.Sequential(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        q = self.to_q(self.norm(x).flatten(2).transpose(1, 2))  # [B, FHW, C]
        k, v = self.to_k(text), self.to_v(text)

        def split(t):
            return t.view(b, -1, self.heads, c // self.heads).transpose(1, 2)

        attend = mask | ~mask.any(dim=1, keepdim=True)
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=attend[:, None, None, :])
        out = self.to_out(out.transpose(1, 2).reshape(b, -1, c))
        return x + out.transpose(1, 2).reshape(b, c, f, h, w)


def upsample_frames(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsampling by 2 of every frame of [B, C, F, H, W].

    Taken as a 2D op over the frames: its backward keeps a channels-last gradient channels-last
    (upsample_nearest3d's returns a contiguous one, which every op after it would copy back).
    """
    frames = F.interpolate(x.transpose(1, 2).flatten(0, 1), scale_factor=2, mode="nearest")
    return frames.unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2)


class ToyVideoUNet(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Pixel-unshuffle by `patch`, add coordinate codes, a two-level (2+1)D UNet with cross-attention, pixel-shuffle
    back."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        patch: int = 2,
        channels: tuple[int, int] = (32, 64),
        text_dim: int = 64,
        heads: int = 4,
        emb_dim: int = 128,
        coordinate_frequencies: int = 3,
        text_length: int = 16,
    ):
        super().__init__()
        c0, c1 = channels
        self.gradient_checkpointing = False
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # every token slot has its own weights: a mean over the tokens would dilute the one word that names
        # the motion or the shape (the text encoder spreads only colour over all of them)
        self.text_pool = nn.Linear(text_length * text_dim, emb_dim)
        # the caption and the frame's place in the clip, mixed by an MLP: "where is the object now" depends on
        # both at once (moving left: on the right early, on the left late), which a sum of the two cannot say
        self.frame_mlp = nn.Sequential(
            nn.Linear(emb_dim + 2 * coordinate_frequencies, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.conv_in = nn.Conv3d(
            in_channels * patch * patch + 6 * coordinate_frequencies, c0, (1, 3, 3), padding=(0, 1, 1)
        )
        self.down0 = ResBlock(c0, c0, emb_dim)
        self.downsample = nn.Conv3d(c0, c1, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.down1 = ResBlock(c1, c1, emb_dim)
        self.attn1 = CrossAttention(c1, text_dim, heads)
        self.mid = ResBlock(c1, c1, emb_dim)
        self.attn_mid = CrossAttention(c1, text_dim, heads)
        self.up1 = ResBlock(2 * c1, c1, emb_dim)
        self.upsample = nn.Conv3d(c1, c0, (1, 3, 3), padding=(0, 1, 1))
        self.up0 = ResBlock(2 * c0, c0, emb_dim)
        self.norm_out = nn.GroupNorm(8, c0)
        self.conv_out = nn.Conv3d(c0, in_channels * patch * patch, (1, 3, 3), padding=(0, 1, 1))

    def _run(self, block: nn.Module, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor):
        b, c, f, h, w = sample.shape
        if text.shape[1] != self.config.text_length:
            raise ValueError(
                f"the toy denoiser takes {self.config.text_length} token states (the tokenizer pads to it), "
                f"got {text.shape[1]}"
            )
        p = self.config.patch
        # Activations stay channels-last ([B, F, H, W, C] in memory) throughout: oneDNN's convolutions run
        # fastest on it, and the frame-wise and temporal convolutions see it as plain 2D channels-last views.
        # Pixel-unshuffle straight into that layout (pixel_unshuffle's channel order: c, then row, then column).
        x = sample.unflatten(3, (h // p, p)).unflatten(5, (w // p, p)).permute(0, 2, 3, 5, 1, 4, 6).flatten(4)
        codes = coordinate_codes(f, h // p, w // p, self.config.coordinate_frequencies, x.device).to(x.dtype)
        x = torch.cat([x, codes.permute(0, 2, 3, 4, 1).expand(b, -1, -1, -1, -1)], dim=-1).permute(0, 4, 1, 2, 3)
        pooled = (text * text_mask[..., None]).flatten(1)  # [B, L * D], padding zeroed
        progress = fourier(clip_progress(f, sample.device), self.config.coordinate_frequencies).T  # [F, 2n]
        caption = self.text_pool(pooled)[:, None].expand(-1, f, -1)
        frame_caption = self.frame_mlp(torch.cat([caption, progress.to(caption.dtype).expand(b, -1, -1)], dim=-1))
        emb = self.time_mlp(timestep_embedding(timesteps, self.config.emb_dim))[:, None] + frame_caption  # [B, F, D]
        h0 = self._run(self.down0, self.conv_in(x), emb)
        h1 = self._run(self.down1, self.downsample(h0), emb)
        h1 = self._run(self.attn1, h1, text, text_mask)
        m = self._run(self.mid, h1, emb)
        m = self._run(self.attn_mid, m, text, text_mask)
        u1 = self._run(self.up1, torch.cat([m, h1], dim=1), emb)
        u0 = upsample_frames(u1)
        u0 = self._run(self.up0, torch.cat([self.upsample(u0), h0], dim=1), emb)
        out = self.conv_out(F.silu(self.norm_out(u0))).permute(0, 2, 3, 4, 1).unflatten(4, (c, p, p))
        return out.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, c, f, h, w)  # pixel-shuffle, back to contiguous


def toy_scheduler() -> DDIMScheduler:
    # Cosine schedule: the usual choice for pixel-space diffusion of small images; its last alphas are
    # tiny, so x0 predictions are clipped to the pixel range (as DDPM does in pixel space). "trailing"
    # spacing starts sampling at t = 999 and ends at t > 0; with "leading" spacing the last DDIM step
    # (t = 0 to alphas_cumprod[0]) is the identity and would carry no gradient.
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        set_alpha_to_one=False,
        timestep_spacing="trailing",
    )


class ToyVideoModel(VideoModel):
    """The toy world's text-to-video model behind the `VideoModel` seam (pixel space, no VAE)."""

    lora_target_modules = ("to_q", "to_k", "to_v", "to_out.0", "time_proj")

    def __init__(self, denoiser: ToyVideoUNet, text_encoder: ToyTextEncoder, scheduler: DDIMScheduler):
        super().__init__()
        # convolution weights in the activations' channels-last layout, or every call would copy them into it
        self.denoiser = denoiser.to(memory_format=torch.channels_last_3d)
        self.text_encoder = text_encoder
        self.scheduler = scheduler
        self.tokenizer = WordTokenizer(text_encoder.config.vocab, text_encoder.config.max_length)
        self.spatial_multiple = 2 * denoiser.config.patch

    @classmethod
    def random(cls, vocab: Sequence[str], seed: int = 0, **unet_config) -> ToyVideoModel:
        """Randomly initialised weights (tests, and the start of `vaderbench toyworld build`)."""
        torch.manual_seed(seed)
        return cls(ToyVideoUNet(**unet_config), ToyTextEncoder(vocab=list(vocab)), toy_scheduler())

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ToyVideoModel:
        path = Path(path)
        return cls(
            ToyVideoUNet.from_pretrained(path / "unet"),
            ToyTextEncoder.from_pretrained(path / "text_encoder"),
            DDIMScheduler.from_pretrained(path / "scheduler"),
        )

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.denoiser.save_pretrained(path / "unet")
        self.text_encoder.save_pretrained(path / "text_encoder")
        self.scheduler.save_pretrained(path / "scheduler")

    def encode_prompts(self, prompts: Sequence[str]) -> Condition:
        ids = self.tokenizer(prompts).to(self.device)
        with torch.no_grad():
            text, mask = self.text_encoder(ids)
        return {"text": text, "text_mask": mask}

    def null_condition(self, batch_size: int) -> Condition:
        return self.encode_prompts([""] * batch_size)

    def predict_noise(self, latents, timesteps, condition):
        # the denoiser predicts v (trained on `scheduler.get_velocity`): in pixel space the caption decides the picture
        # at high noise, where an epsilon loss barely weighs the clean video (by alpha_bar / (1 - alpha_bar))
        v = self.denoiser(latents, timesteps, condition["text"], condition["text_mask"])
        return v_to_epsilon(v, latents, self.scheduler.alphas_cumprod, timesteps)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        check_multiple("the toy model", self.spatial_multiple, frames, height, width)
        return (self.denoiser.config.in_channels, frames, height, width)

    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        if frame_index is not None:
            latents = latents[:, :, frame_index]
        return (latents.transpose(1, 2) * 0.5 + 0.5).clamp(0, 1)

    def enable_gradient_checkpointing(self) -> None:
        self.denoiser.enable_gradient_checkpointing()


@MODELS.register("toy", "the embedded toy world's pretrained text-to-video model (pixel space, DDIM)")
def load_toy_model(path: str | None = None) -> ToyVideoModel:
    from vaderbench.toyworld.weights import REBUILD, WEIGHTS_DIR, ToyWeightsError

    path = Path(path) if path else WEIGHTS_DIR / "base"
    if not (path / "unet").is_dir():
        raise ToyWeightsError(f"toy model weights not found in {path}; {REBUILD}")
    try:
        return ToyVideoModel.from_pretrained(path)
    except Exception as error:  # diffusers and safetensors raise assorted types for a damaged file
        raise ToyWeightsError(f"toy model weights in {path} are missing or corrupt ({error}); {REBUILD}") from None


class ToyFlowModel(ToyVideoModel):
    """The toy model read as a rectified flow: the same network, no new weights.

    The DDIM model noises x_vp = a x0 + s eps (a = sqrt(alphas_cumprod[t]), s = sqrt(1 - a^2)) and its network
    predicts v = a eps - s x0. Dividing by a + s gives a rectified flow (Lipman / Liu et al.):
        x = x_vp / (a + s) = (1 - sigma) x0 + sigma eps,   sigma = s / (a + s),
    whose velocity eps - x0 = (s x_vp + a v) - (a x_vp - s v) = (s - a) x_vp + (a + s) v. So both families are
    compared on one learned model. The flow visits the DDIM model's own noise levels (the network knows
    only those): the sigmas of the DDIM timesteps of the same step count, starting from pure noise at
    sigma = 1 (as DDIM starts from pure noise at t = 999, where a^2 = 2e-9) and ending at sigma = 0. With
    those levels an Euler step is a DDIM step with eta 0 (both move x0_hat and eps_hat to the next level),
    and the flow clips x0_hat to the pixel range as the DDIM scheduler's `clip_sample` does (without it the
    toy model's videos overshoot the range).
    """

    def __init__(self, denoiser: ToyVideoUNet, text_encoder: ToyTextEncoder, scheduler: DDIMScheduler):
        super().__init__(denoiser, text_encoder, scheduler)
        a = scheduler.alphas_cumprod.sqrt()
        s = (1 - scheduler.alphas_cumprod).sqrt()
        #: the flow level of each DDIM timestep 0..999
        self.level_sigmas = s / (a + s)

    @property
    def sampling(self) -> FlowMatchRule:
        config = self.scheduler.config
        clip = config.clip_sample_range if config.get("clip_sample", False) else None
        return FlowMatchRule(self.flow_sigmas, self.level_sigmas, clip)

    def flow_sigmas(self, num_steps: int) -> torch.Tensor:
        """[num_steps + 1] levels: those of the DDIM model's `num_steps` timesteps, from 1 down to 0."""
        self.scheduler.set_timesteps(num_steps)
        sigmas = self.level_sigmas[self.scheduler.timesteps.long()]
        return torch.cat([torch.ones(1), sigmas[1:], torch.zeros(1)])

    def _vp(self, latents: torch.Tensor, timesteps: torch.Tensor):
        """The DDIM timestep of each flow level, its (a, s) shaped like the latents, and x_vp."""
        sigma = (timesteps.float() / FlowMatchRule.timestep_scale).reshape(-1, *([1] * (latents.dim() - 1)))
        levels = self.level_sigmas.to(latents.device)
        ddim_t = (levels[None] - sigma.flatten()[:, None]).abs().argmin(dim=1)
        norm = ((1 - sigma) ** 2 + sigma**2).sqrt()
        a, s = (1 - sigma) / norm, sigma / norm
        return ddim_t, a, s, latents * (a + s)

    def predict(self, latents, timesteps, condition):
        ddim_t, a, s, x_vp = self._vp(latents, timesteps)
        v = self.denoiser(x_vp, ddim_t, condition["text"], condition["text_mask"]).float()
        return (s - a) * x_vp.float() + (a + s) * v

    def predict_noise(self, latents, timesteps, condition):
        sigma = timesteps.float() / FlowMatchRule.timestep_scale
        return flow_noise_estimate(self.predict(latents, timesteps, condition), sigma, latents.float())


@MODELS.register("toy-flow", "the toy model read as a rectified flow (same weights; Euler and Flow-GRPO SDE steps)")
def load_toy_flow_model(path: str | None = None) -> ToyFlowModel:
    model = load_toy_model(path)
    return ToyFlowModel(model.denoiser, model.text_encoder, model.scheduler)


@MODELS.register("toy-random", "the toy model's architecture with random weights (tests and plumbing checks)")
def random_toy_model(seed: int = 0, **unet_config) -> ToyVideoModel:
    from vaderbench.toyworld.vocab import VOCAB

    return ToyVideoModel.random(VOCAB, seed=seed, **unet_config)


def _check_toy_size(frames: int, height: int, width: int, path: str | None = None) -> None:
    from vaderbench.toyworld.weights import WEIGHTS_DIR

    config = ToyVideoUNet.load_config(Path(path) if path else WEIGHTS_DIR / "base", subfolder="unet")
    check_multiple("the toy model", 2 * config["patch"], frames, height, width)


def _check_random_toy_size(frames: int, height: int, width: int, seed: int = 0, **unet_config) -> None:
    patch = unet_config.get("patch", inspect.signature(ToyVideoUNet).parameters["patch"].default)
    check_multiple("the toy model", 2 * patch, frames, height, width)


def toy_footprint(unet_config: dict, text_config: dict, frames: int, height: int, width: int) -> Footprint:
    """The toy model's memory at one size: its modules built on the meta device, one denoiser call traced."""
    unet = meta_module(lambda: ToyVideoUNet.from_config(unet_config), ToyVideoModel.lora_target_modules)
    text_encoder = meta_module(lambda: ToyTextEncoder.from_config(text_config))
    length, dim = unet.config.text_length, unet.config.text_dim
    sample = torch.zeros(1, unet.config.in_channels, frames, height, width, device="meta")

    def call():
        mask = torch.ones(1, length, dtype=torch.bool, device="meta")
        unet(sample, torch.zeros(1, dtype=torch.long, device="meta"), torch.zeros(1, length, dim, device="meta"), mask)

    # pixel space: decoding is a rescale, it keeps nothing worth counting
    return Footprint(parameter_bytes(unet, text_encoder), sample.numel(), kept_activation_bytes(unet, call), 0)


def _toy_footprint(frames: int, height: int, width: int, path: str | None = None) -> Footprint:
    from vaderbench.toyworld.weights import WEIGHTS_DIR

    folder = Path(path) if path else WEIGHTS_DIR / "base"
    unet = ToyVideoUNet.load_config(folder, subfolder="unet")
    return toy_footprint(unet, ToyTextEncoder.load_config(folder, subfolder="text_encoder"), frames, height, width)


def _random_toy_footprint(frames: int, height: int, width: int, seed: int = 0, **unet_config) -> Footprint:
    from vaderbench.toyworld.vocab import VOCAB

    return toy_footprint(dict(unet_config), {"vocab": list(VOCAB)}, frames, height, width)


load_toy_model.check_size = _check_toy_size
load_toy_model.footprint = _toy_footprint
load_toy_flow_model.check_size = _check_toy_size
load_toy_flow_model.footprint = _toy_footprint
random_toy_model.check_size = _check_random_toy_size
random_toy_model.footprint = _random_toy_footprint
