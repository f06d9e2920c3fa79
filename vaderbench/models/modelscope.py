"""ModelScope text-to-video (damo-vilab/text-to-video-ms-1.7b), the VADER paper's main base model.

Components as in diffusers' `TextToVideoSDPipeline` repository layout: `unet` (UNet3DConditionModel),
`vae` (AutoencoderKL, applied frame by frame), `text_encoder` + `tokenizer` (CLIP), `scheduler` (DDIM).
The pipeline class itself is deprecated in diffusers; the component classes are not, and are all we use.

Latents are [B, C, F, H/8, W/8]. UNet3D has neither `enable_gradient_checkpointing` nor `add_adapter`:
LoRA goes in through peft injection (the policy does it) and checkpointing wraps each block (see
`checkpoint_blocks`), which is what the VADER code's patched UNet copy does too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import AutoTokenizer, CLIPTextModel

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
    checkpoint_blocks,
    encode_text,
    frame_positions,
    local_config,
    local_transformers_config,
    parse_weight_dtype,
    to_unit_range,
)
from vaderbench.registry import MODELS


class ModelScopeVideoModel(VideoModel):
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
        check_multiple("ModelScope", m, frames, height, width)
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


def _check_modelscope_size(
    frames: int, height: int, width: int, path: str = "damo-vilab/text-to-video-ms-1.7b", **_
) -> None:
    vae = local_config(AutoencoderKL, path, "vae")
    if vae is not None:
        check_multiple("ModelScope", 2 ** (len(vae["block_out_channels"]) - 1), frames, height, width)


def modelscope_footprint(path: str, weight_dtype: str, frames: int, height: int, width: int) -> Footprint | None:
    """ModelScope's memory at one size, from its configs: the UNet's call and the VAE's decoding traced on meta."""
    unet_config, vae_config = local_config(UNet3DConditionModel, path, "unet"), local_config(AutoencoderKL, path, "vae")
    text_config = local_transformers_config(path, "text_encoder")
    if unet_config is None or vae_config is None or text_config is None:
        return None
    dtype = parse_weight_dtype(weight_dtype)
    targets = ModelScopeVideoModel.lora_target_modules
    unet = meta_module(lambda: UNet3DConditionModel.from_config(unet_config), targets, dtype)
    vae = meta_module(lambda: AutoencoderKL.from_config(vae_config), dtype=dtype)
    text_encoder = meta_module(lambda: CLIPTextModel(text_config), dtype=dtype)
    m = 2 ** (len(vae_config["block_out_channels"]) - 1)
    latent = torch.zeros(1, unet.config.in_channels, frames, height // m, width // m, device="meta", dtype=dtype)
    text_shape = (1, text_config.max_position_embeddings, unet.config.cross_attention_dim)
    states = torch.zeros(text_shape, device="meta", dtype=dtype)
    t = torch.zeros(1, dtype=torch.long, device="meta")
    denoiser = kept_activation_bytes(unet, lambda: unet(latent, t, encoder_hidden_states=states))
    # the image VAE decodes the frames as a batch of images, back-propagating to the latents
    images = latent[0].transpose(0, 1).clone().requires_grad_(True)
    decoder = kept_activation_bytes(vae, lambda: vae.decode(images))
    return Footprint(parameter_bytes(unet, vae, text_encoder), latent.numel(), denoiser, decoder)


def _modelscope_footprint(
    frames: int,
    height: int,
    width: int,
    path: str = "damo-vilab/text-to-video-ms-1.7b",
    weight_dtype: str = "fp32",
    **_,
) -> Footprint | None:
    return modelscope_footprint(path, weight_dtype, frames, height, width)


load_modelscope.check_size = _check_modelscope_size
load_modelscope.footprint = _modelscope_footprint


def save_small_modelscope(path: Path) -> str:
    """ModelScope's classes at a size a 2-core CPU steps in seconds (random weights, saved like the real repo)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {t: i for i, t in enumerate(letters + [f"{c}</w>" for c in letters] + ["<|startoftext|>", "<|endoftext|>"])}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    UNet3DConditionModel(
        block_out_channels=(32, 64),
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
    ).save_pretrained(path / "unet")
    AutoencoderKL(
        block_out_channels=(16, 32, 32),
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        latent_channels=4,
        norm_num_groups=8,
    ).save_pretrained(path / "vae")
    CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=len(vocab),
            max_position_embeddings=16,
            bos_token_id=len(vocab) - 2,
            eos_token_id=len(vocab) - 1,
        )
    ).save_pretrained(path / "text_encoder")
    tokenizer.save_pretrained(path / "tokenizer")
    DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False).save_pretrained(
        path / "scheduler"
    )
    return str(path)


SMALL_MODELSCOPE = Path(tempfile.gettempdir()) / "vaderbench-modelscope-small"


def small_modelscope_path() -> str:
    """The small model's folder, saved there on first use."""
    if not (SMALL_MODELSCOPE / "scheduler").is_dir():
        staging = Path(tempfile.mkdtemp(prefix="vaderbench-modelscope-"))
        save_small_modelscope(staging)
        try:
            staging.rename(SMALL_MODELSCOPE)  # atomic: concurrent trials never see half a model
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process got there first
    return str(SMALL_MODELSCOPE)


@MODELS.register(
    "modelscope-small", "ModelScope's classes at a CPU-sized scale, random weights (memory ablations, plumbing)"
)
def load_small_modelscope(weight_dtype: str = "fp32", device: str | None = None) -> ModelScopeVideoModel:
    """Saved once to a temporary folder, then loaded by `load_modelscope`: the real model's code path."""
    return load_modelscope(small_modelscope_path(), weight_dtype=weight_dtype, device=device)


def _check_small_modelscope_size(frames: int, height: int, width: int, **_) -> None:
    check_multiple("ModelScope", 4, frames, height, width)  # its VAE has three levels


def _small_modelscope_footprint(frames: int, height: int, width: int, weight_dtype: str = "fp32", **_) -> Footprint:
    return modelscope_footprint(small_modelscope_path(), weight_dtype, frames, height, width)


load_small_modelscope.check_size = _check_small_modelscope_size
load_small_modelscope.footprint = _small_modelscope_footprint
