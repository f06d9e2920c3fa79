"""ModelScope text-to-video (damo-vilab/text-to-video-ms-1.7b), the VADER paper's main base model.

Components as in diffusers' `TextToVideoSDPipeline` repository layout: `unet` (UNet3DConditionModel),
`vae` (AutoencoderKL, applied frame by frame), `text_encoder` + `tokenizer` (CLIP), `scheduler` (DDIM).
The pipeline class itself is deprecated in diffusers; the component classes are not, and are all we use.

Latents are [B, C, F, H/8, W/8]. UNet3D has neither `enable_gradient_checkpointing` nor `add_adapter`:
LoRA goes in through peft injection (the policy does it) and checkpointing wraps each block (see
`checkpoint_blocks`), which is what the VADER code's patched UNet copy does too.
"""

from __future__ import annotations

from typing import Sequence

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import AutoTokenizer, CLIPTextModel

from vaderbench.models.base import Condition, VideoModel
from vaderbench.models.diffusers_common import (
    cast_frozen,
    checkpoint_blocks,
    encode_text,
    frame_positions,
    to_unit_range,
    parse_weight_dtype,
)
from vaderbench.registry import MODELS


class ModelScopeVideoModel(VideoModel):
    default_frames = 16

    def __init__(self, unet: UNet3DConditionModel, vae: AutoencoderKL, text_encoder, tokenizer, scheduler, dtype):
        super().__init__()
        self.denoiser = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.weight_dtype = dtype
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        cast_frozen([unet, vae, text_encoder], dtype)

    def encode_prompts(self, prompts: Sequence[str]) -> Condition:
        return {"text": encode_text(self.tokenizer, self.text_encoder, prompts, self.tokenizer.model_max_length)}

    def null_condition(self, batch_size: int) -> Condition:
        return self.encode_prompts([""] * batch_size)

    def predict_noise(self, latents, timesteps, condition):
        return self.denoiser(
            latents.to(self.weight_dtype),
            timesteps,
            encoder_hidden_states=condition["text"].to(self.weight_dtype),
            return_dict=False,
        )[0]

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        m = self.vae_scale_factor
        if height % m or width % m or height < m or width < m:
            raise ValueError(f"ModelScope needs height and width that are multiples of {m}, got {height}x{width}")
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        return (self.denoiser.config.in_channels, frames, height // m, width // m)

    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        # The VAE is an image VAE: decoding only the chosen frames is exact, not an approximation.
        index = frame_positions(frame_index, latents.shape[2]).to(latents.device)
        chosen = latents[:, :, index].transpose(1, 2)  # [B, F', C, h, w]
        b, f = chosen.shape[:2]
        z = chosen.flatten(0, 1).to(self.weight_dtype) / self.vae.config.scaling_factor
        images = self.vae.decode(z, return_dict=False)[0]
        return to_unit_range(images).unflatten(0, (b, f))

    def enable_gradient_checkpointing(self) -> None:
        unet = self.denoiser
        checkpoint_blocks([unet.transformer_in, *unet.down_blocks, unet.mid_block, *unet.up_blocks])
        self.vae.enable_gradient_checkpointing()


@MODELS.register("modelscope", "ModelScope text-to-video 1.7B (diffusers components, DDIM; the paper's base model)")
def load_modelscope(
    path: str = "damo-vilab/text-to-video-ms-1.7b",
    weight_dtype: str = "fp32",
    timestep_spacing: str = "trailing",
    device: str | None = None,
) -> ModelScopeVideoModel:
    """Load from a Hugging Face id or a local folder with the repository's subfolders.

    `timestep_spacing` overrides the scheduler's ("leading" with steps_offset=1 in the repository): with
    trailing spacing the last DDIM step goes from t = 999 / N - 1 to the clean sample, so truncated
    backprop through the last step (K = 1) carries a real gradient.
    """
    model = ModelScopeVideoModel(
        UNet3DConditionModel.from_pretrained(path, subfolder="unet"),
        AutoencoderKL.from_pretrained(path, subfolder="vae"),
        CLIPTextModel.from_pretrained(path, subfolder="text_encoder"),
        AutoTokenizer.from_pretrained(path, subfolder="tokenizer"),
        DDIMScheduler.from_pretrained(path, subfolder="scheduler", timestep_spacing=timestep_spacing),
        parse_weight_dtype(weight_dtype),
    )
    return model.to(device) if device else model
