"""CogVideoX text-to-video (THUDM/CogVideoX-2b, -5b), a current open model on the DDIM rule.

Its scheduler, `CogVideoXDDIMScheduler`, is DDIM over `alphas_cumprod` (v-prediction), so the policy's DDIM
sampler, its per-step Gaussian log-probabilities (DDPO) and the epsilon denoising loss (Diffusion-DPO) apply
unchanged once v is converted to epsilon. Wan (`wan.py`) is the current open model on the flow rule.

Components as in the diffusers repository: `transformer` (CogVideoXTransformer3DModel), `vae`
(AutoencoderKLCogVideoX, a causal 3D VAE compressing time by 4), `text_encoder` + `tokenizer` (T5),
`scheduler`. Latents are [B, F_latent, C, H/8, W/8] with F_latent = (frames - 1) / 4 + 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
from transformers import AutoTokenizer, T5EncoderModel

from vaderbench.models.base import (
    Condition,
    Footprint,
    VideoModel,
    check_multiple,
    kept_activation_bytes,
    meta_module,
    parameter_bytes,
)
from vaderbench.models.diffusers_common import (
    cast_frozen,
    encode_text,
    frame_positions,
    local_config,
    local_transformers_config,
    parse_weight_dtype,
    to_unit_range,
    v_to_epsilon,
)
from vaderbench.registry import MODELS

# diffusers clamps a zero terminal SNR to this in its Euler schedulers; DDIM's x0 = (x - sqrt(1-a) eps) / sqrt(a)
# needs a_T > 0 too (CogVideoX's scheduler rescales to zero terminal SNR).
MIN_ALPHA_CUMPROD = 2.0**-24


class CogVideoXVideoModel(VideoModel):
    def __init__(self, transformer, vae, text_encoder, tokenizer, scheduler: CogVideoXDDIMScheduler, dtype):
        super().__init__()
        if scheduler.config.prediction_type != "v_prediction":
            raise ValueError(
                f"CogVideoX adapter expects a v-prediction scheduler, got {scheduler.config.prediction_type!r}"
            )
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.clamp(min=MIN_ALPHA_CUMPROD)
        self.denoiser = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.weight_dtype = dtype
        cast_frozen([transformer, vae, text_encoder], dtype)
        # The pipeline object shares our modules; we only borrow its rotary-embedding helper (CogVideoX-5b).
        self._pipeline = CogVideoXPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.temporal_compression = vae.config.temporal_compression_ratio

    def encode_prompts(self, prompts: Sequence[str]) -> Condition:
        max_length = self.denoiser.config.max_text_seq_length
        return {"text": encode_text(self.tokenizer, self.text_encoder, prompts, max_length)}

    def null_condition(self, batch_size: int) -> Condition:
        return self.encode_prompts([""] * batch_size)

    def predict_noise(self, latents, timesteps, condition):
        rotary = None
        if self.denoiser.config.use_rotary_positional_embeddings:
            _, frames, _, h, w = latents.shape
            m = self.vae_scale_factor
            rotary = self._pipeline._prepare_rotary_positional_embeddings(h * m, w * m, frames, latents.device)
        v = self.denoiser(
            hidden_states=latents.to(self.weight_dtype),
            encoder_hidden_states=condition["text"].to(self.weight_dtype),
            timestep=timesteps,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0]
        return v_to_epsilon(v, latents, self.scheduler.alphas_cumprod, timesteps)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        r = self.temporal_compression
        multiple = self.vae_scale_factor * self.denoiser.config.patch_size
        check_multiple("CogVideoX", multiple, frames, height, width, temporal=r)
        latent_frames = (frames - 1) // r + 1
        patch_t = self.denoiser.config.patch_size_t
        if patch_t and latent_frames % patch_t:
            raise ValueError(
                f"this CogVideoX needs (frames - 1) / {r} + 1 to be a multiple of {patch_t}, got frames={frames}"
            )
        m = self.vae_scale_factor
        return (latent_frames, self.denoiser.config.in_channels, height // m, width // m)

    def decoded_prefix(self, frame_index: torch.Tensor, latent_frames: int) -> int:
        """How many leading latent frames to decode so that the chosen frames come out exactly.

        The VAE is causal in time, so frame f depends on latent frames 0 .. ceil(f / r) only. It decodes in
        chunks of `num_latent_frames_batch_size` latent frames with the remainder in the first chunk and
        normalises within a chunk; a prefix decodes identically to the whole video when it chunks alike.
        """
        needed = 1 + math.ceil(int(frame_index.max()) / self.temporal_compression)
        chunk = self.vae.num_latent_frames_batch_size
        if latent_frames < chunk:
            return latent_frames
        needed = max(needed, chunk)
        needed += (latent_frames - needed) % chunk
        return min(needed, latent_frames)

    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        latent_frames = latents.shape[1]
        frames = 1 + self.temporal_compression * (latent_frames - 1)
        index = frame_positions(frame_index, frames)
        prefix = self.decoded_prefix(index, latent_frames) if frame_index is not None else latent_frames
        z = latents[:, :prefix].transpose(1, 2).to(self.weight_dtype) / self.vae.config.scaling_factor
        video = self.vae.decode(z, return_dict=False)[0]  # [B, C, F, H, W]
        return to_unit_range(video[:, :, index.to(video.device)].transpose(1, 2))

    def enable_gradient_checkpointing(self) -> None:
        self.denoiser.enable_gradient_checkpointing()
        self.vae.enable_gradient_checkpointing()


@MODELS.register("cogvideox", "CogVideoX text-to-video (diffusers, v-prediction DDIM; THUDM/CogVideoX-2b by default)")
def load_cogvideox(
    path: str = "THUDM/CogVideoX-2b",
    weight_dtype: str = "fp32",
    device: str | None = None,
) -> CogVideoXVideoModel:
    """Load from a Hugging Face id or a local folder with the repository's subfolders."""
    model = CogVideoXVideoModel(
        CogVideoXTransformer3DModel.from_pretrained(path, subfolder="transformer"),
        AutoencoderKLCogVideoX.from_pretrained(path, subfolder="vae"),
        T5EncoderModel.from_pretrained(path, subfolder="text_encoder"),
        AutoTokenizer.from_pretrained(path, subfolder="tokenizer"),
        # The repository sets set_alpha_to_one: its last DDIM step would then be deterministic (std 0) and
        # have no log-probability for DDPO; ending at alphas_cumprod[0] (as Stable Diffusion does) keeps one.
        CogVideoXDDIMScheduler.from_pretrained(path, subfolder="scheduler", set_alpha_to_one=False),
        parse_weight_dtype(weight_dtype),
    )
    return model.to(device) if device else model


def _check_cogvideox_size(frames: int, height: int, width: int, path: str = "THUDM/CogVideoX-2b", **_) -> None:
    vae = local_config(AutoencoderKLCogVideoX, path, "vae")
    transformer = local_config(CogVideoXTransformer3DModel, path, "transformer")
    if vae is None or transformer is None:
        return
    multiple = 2 ** (len(vae["block_out_channels"]) - 1) * transformer["patch_size"]
    check_multiple("CogVideoX", multiple, frames, height, width, temporal=int(vae["temporal_compression_ratio"]))


def _cogvideox_footprint(
    frames: int, height: int, width: int, path: str = "THUDM/CogVideoX-2b", weight_dtype: str = "fp32", **_
) -> Footprint | None:
    """CogVideoX's memory at one size, from its configs: the transformer's call (without rotary embeddings,
    which add little) and the causal VAE's decoding traced on the meta device."""
    transformer_config = local_config(CogVideoXTransformer3DModel, path, "transformer")
    vae_config = local_config(AutoencoderKLCogVideoX, path, "vae")
    text_config = local_transformers_config(path, "text_encoder")
    if transformer_config is None or vae_config is None or text_config is None:
        return None
    dtype = parse_weight_dtype(weight_dtype)
    targets = CogVideoXVideoModel.lora_target_modules
    transformer = meta_module(lambda: CogVideoXTransformer3DModel.from_config(transformer_config), targets, dtype)
    vae = meta_module(lambda: AutoencoderKLCogVideoX.from_config(vae_config), dtype=dtype)
    text_encoder = meta_module(lambda: T5EncoderModel(text_config), dtype=dtype)
    m, r = 2 ** (len(vae_config["block_out_channels"]) - 1), int(vae_config["temporal_compression_ratio"])
    config = transformer.config
    shape = (1, (frames - 1) // r + 1, config.in_channels, height // m, width // m)
    latent = torch.zeros(shape, device="meta", dtype=dtype)
    text = torch.zeros(1, config.max_text_seq_length, config.text_embed_dim, device="meta", dtype=dtype)
    t = torch.zeros(1, dtype=torch.long, device="meta")
    denoiser = kept_activation_bytes(
        transformer, lambda: transformer(hidden_states=latent, encoder_hidden_states=text, timestep=t)
    )
    z = latent.transpose(1, 2).clone().requires_grad_(True)
    decoder = kept_activation_bytes(vae, lambda: vae.decode(z))
    return Footprint(parameter_bytes(transformer, vae, text_encoder), latent.numel(), denoiser, decoder)


load_cogvideox.check_size = _check_cogvideox_size
load_cogvideox.footprint = _cogvideox_footprint
