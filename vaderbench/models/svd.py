"""Stable Video Diffusion (image-to-video), behind the DDIM seam through an exact change of variables.

Prompts are image paths: the paper's image prompt sets are folders of images, and a prompt set of
paths passes through the policy, the aligners and the logs like text. `encode_images` takes image
tensors directly. Each image conditions the UNet three ways, as in diffusers'
`StableVideoDiffusionPipeline`: its CLIP image embedding (cross-attention), the VAE latent of the
noise-augmented image concatenated to every frame's channels, and the micro-conditioning time ids
(fps - 1, motion bucket, noise augmentation). The unconditional branch zeroes the first two.

The scheduler: SVD is an EDM model (Karras et al. 2022) sampled with an Euler scheduler over noise
levels sigma; the UNet computes D(x; sigma) = x_ve / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) F(x_ve /
sqrt(sigma^2 + 1); log(sigma) / 4). With a_t = 1 / (1 + sigma_t^2) and x = sqrt(a_t) x_ve (the variance-
preserving latent), the UNet's input is exactly x and D = sqrt(a_t) x - sqrt(1 - a_t) F: F is a
v-prediction. So we give the policy a `DDIMScheduler` whose `alphas_cumprod` are 1 / (1 + sigma_t^2) on
a Karras sigma grid (rho = 7) between the checkpoint's sigma_min and sigma_max, and convert v to
epsilon. DDIM with eta = 0 on this grid *is* the EDM Euler sampler (deterministic DDIM is Euler on the
probability-flow ODE in (x_ve, sigma)), except that it stops at sigma_min instead of taking a last step to
0; eta > 0 gives the stochastic steps and log-probabilities DDPO needs.
What is not reproduced: SVD's per-frame guidance ramp (min 1.0 to max 3.0); the policy's guidance is
one scalar.

Latents are [B, F, C, H/8, W/8]. The image latent is computed at the model's `image_size`, so the
policy must sample at that resolution (`latent_shape` says so otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    DDIMScheduler,
    EulerDiscreteScheduler,
    UNetSpatioTemporalConditionModel,
)
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from vaderbench.models.base import (
    Condition,
    Footprint,
    VideoModel,
    kept_activation_bytes,
    meta_module,
    parameter_bytes,
)
from vaderbench.models.diffusers_common import (
    cast_frozen,
    frame_positions,
    local_config,
    local_transformers_config,
    parse_weight_dtype,
    to_unit_range,
    v_to_epsilon,
)
from vaderbench.registry import MODELS

KARRAS_RHO = 7.0


def edm_ddim_scheduler(sigma_min: float, sigma_max: float, num_train_timesteps: int = 1000) -> DDIMScheduler:
    """A DDIM scheduler whose timestep t has noise level sigma_t (Karras grid, increasing in t)."""
    ramp = np.linspace(0, 1, num_train_timesteps)
    lo, hi = sigma_min ** (1 / KARRAS_RHO), sigma_max ** (1 / KARRAS_RHO)
    sigmas = (lo + ramp * (hi - lo)) ** KARRAS_RHO
    alphas_cumprod = 1 / (1 + sigmas**2)
    betas = 1 - alphas_cumprod / np.concatenate([[1.0], alphas_cumprod[:-1]])
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        trained_betas=betas,
        clip_sample=False,
        # end at sigma_min rather than 0, so the last step keeps a (tiny) noise and a finite log-probability
        set_alpha_to_one=False,
        timestep_spacing="trailing",
    )


def load_image(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """An image file as [3, H, W] in [0, 1], resized to `size` = (height, width)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"svd prompts are image paths; no image file at {str(path)!r}")
    image = Image.open(path).convert("RGB").resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


class StableVideoDiffusionModel(VideoModel):
    lora_target_modules = ("to_q", "to_k", "to_v", "to_out.0")

    def __init__(
        self,
        unet: UNetSpatioTemporalConditionModel,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor: CLIPImageProcessor,
        scheduler: DDIMScheduler,
        dtype: torch.dtype,
        image_size: tuple[int, int] = (576, 1024),
        fps: int = 7,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
    ):
        super().__init__()
        self.denoiser = unet
        self.vae = vae
        self.image_encoder = image_encoder
        self.feature_extractor = feature_extractor
        self.scheduler = scheduler
        self.weight_dtype = dtype
        self.image_size = tuple(image_size)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        # SVD was trained on fps - 1 (see diffusers' pipeline)
        self.time_ids = torch.tensor([fps - 1, motion_bucket_id, noise_aug_strength], dtype=torch.float32)
        self.noise_aug_strength = noise_aug_strength
        alphas = scheduler.alphas_cumprod
        self.register_buffer("sigmas", ((1 - alphas) / alphas).sqrt(), persistent=False)
        cast_frozen([unet, vae, image_encoder], dtype)

    # -- conditioning -----------------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor) -> Condition:
        """Condition for images [B, 3, H, W] in [0, 1] at `image_size`."""
        device = self.device
        with torch.no_grad():
            # As the pipeline does: the whole image squeezed to CLIP's input size (no crop), then normalised.
            crop = self.feature_extractor.crop_size
            crop = (crop["height"], crop["width"]) if isinstance(crop, dict) else (crop.height, crop.width)
            squeezed = torch.nn.functional.interpolate(images.float(), size=crop, mode="bicubic", antialias=True)
            clip_input = self.feature_extractor(
                images=list(squeezed.clamp(0, 1)),
                do_resize=False,
                do_center_crop=False,
                do_rescale=False,
                return_tensors="pt",
            ).pixel_values
            embeds = self.image_encoder(clip_input.to(device, self.weight_dtype)).image_embeds
            # Noise augmentation of the conditioning image, with fixed noise so a prompt's condition is
            # the same every time it is encoded.
            generator = torch.Generator().manual_seed(0)
            pixels = images * 2 - 1
            pixels = pixels + self.noise_aug_strength * torch.randn(pixels.shape, generator=generator)
            latents = self.vae.encode(pixels.to(device, self.weight_dtype)).latent_dist.mode()
        batch = images.shape[0]
        return {
            "image_embeds": embeds.unsqueeze(1),
            "image_latents": latents,
            "time_ids": self.time_ids.to(device).expand(batch, -1).clone(),
        }

    def encode_prompts(self, prompts: Sequence[str]) -> Condition:
        return self.encode_images(torch.stack([load_image(p, self.image_size) for p in prompts]))

    def null_condition(self, batch_size: int) -> Condition:
        h, w = (s // self.vae_scale_factor for s in self.image_size)
        device, dtype = self.device, self.weight_dtype
        embed_dim = self.image_encoder.config.projection_dim
        return {
            "image_embeds": torch.zeros(batch_size, 1, embed_dim, device=device, dtype=dtype),
            "image_latents": torch.zeros(batch_size, self.vae.config.latent_channels, h, w, device=device, dtype=dtype),
            "time_ids": self.time_ids.to(device).expand(batch_size, -1).clone(),
        }

    # -- the denoiser -----------------------------------------------------------------------------
    def predict_noise(self, latents, timesteps, condition):
        frames = latents.shape[1]
        image_latents = condition["image_latents"].unsqueeze(1).expand(-1, frames, -1, -1, -1)
        sample = torch.cat([latents.to(self.weight_dtype), image_latents.to(self.weight_dtype)], dim=2)
        c_noise = 0.25 * self.sigmas[timesteps].log()  # EDM's noise conditioning, as the Euler scheduler passes it
        v = self.denoiser(
            sample,
            c_noise,
            encoder_hidden_states=condition["image_embeds"].to(self.weight_dtype),
            added_time_ids=condition["time_ids"].to(self.weight_dtype),
            return_dict=False,
        )[0]
        return v_to_epsilon(v, latents, self.scheduler.alphas_cumprod, timesteps)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        _check_svd_size(frames, height, width, self.image_size)
        m = self.vae_scale_factor
        return (frames, self.vae.config.latent_channels, height // m, width // m)

    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        # The temporal decoder smooths across the frames it is given: with frame subsampling it sees the
        # chosen frames only (an approximation the memory saving pays for).
        index = frame_positions(frame_index, latents.shape[1]).to(latents.device)
        chosen = latents[:, index]
        b, f = chosen.shape[:2]
        z = chosen.flatten(0, 1).to(self.weight_dtype) / self.vae.config.scaling_factor
        images = self.vae.decode(z, num_frames=f, return_dict=False)[0]
        return to_unit_range(images).unflatten(0, (b, f))

    def enable_gradient_checkpointing(self) -> None:
        self.denoiser.enable_gradient_checkpointing()
        self.vae.enable_gradient_checkpointing()


@MODELS.register("svd", "Stable Video Diffusion image-to-video (prompts are image paths; EDM as DDIM over sigma)")
def load_svd(
    path: str = "stabilityai/stable-video-diffusion-img2vid-xt",
    weight_dtype: str = "fp32",
    image_size: Sequence[int] = (576, 1024),
    fps: int = 7,
    motion_bucket_id: int = 127,
    noise_aug_strength: float = 0.02,
    device: str | None = None,
) -> StableVideoDiffusionModel:
    """Load from a Hugging Face id or a local folder with the repository's subfolders."""
    if len(image_size) != 2:
        raise ValueError(f"image_size must be [height, width], got {image_size!r}")
    euler = EulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler")
    sigma_min = euler.config.sigma_min or float(euler.sigmas[euler.sigmas > 0].min())
    sigma_max = euler.config.sigma_max or float(euler.sigmas.max())
    model = StableVideoDiffusionModel(
        UNetSpatioTemporalConditionModel.from_pretrained(path, subfolder="unet"),
        AutoencoderKLTemporalDecoder.from_pretrained(path, subfolder="vae"),
        CLIPVisionModelWithProjection.from_pretrained(path, subfolder="image_encoder"),
        CLIPImageProcessor.from_pretrained(path, subfolder="feature_extractor"),
        edm_ddim_scheduler(sigma_min, sigma_max, euler.config.num_train_timesteps),
        parse_weight_dtype(weight_dtype),
        image_size=tuple(int(s) for s in image_size),
        fps=fps,
        motion_bucket_id=motion_bucket_id,
        noise_aug_strength=noise_aug_strength,
    )
    return model.to(device) if device else model


def _check_svd_size(frames: int, height: int, width: int, image_size: Sequence[int] = (576, 1024), **_) -> None:
    if (height, width) != tuple(image_size):
        raise ValueError(
            f"svd conditions on images encoded at image_size={list(image_size)}; sample at that resolution "
            f"or set the model option image_size to [{height}, {width}]"
        )
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")


def _svd_footprint(
    frames: int,
    height: int,
    width: int,
    path: str = "stabilityai/stable-video-diffusion-img2vid-xt",
    weight_dtype: str = "fp32",
    **_,
) -> Footprint | None:
    """SVD's memory at one size, from its configs: the UNet's call and the temporal decoder traced on meta."""
    unet_config = local_config(UNetSpatioTemporalConditionModel, path, "unet")
    vae_config = local_config(AutoencoderKLTemporalDecoder, path, "vae")
    image_config = local_transformers_config(path, "image_encoder")
    if unet_config is None or vae_config is None or image_config is None:
        return None
    dtype = parse_weight_dtype(weight_dtype)
    targets = StableVideoDiffusionModel.lora_target_modules
    unet = meta_module(lambda: UNetSpatioTemporalConditionModel.from_config(unet_config), targets, dtype)
    vae = meta_module(lambda: AutoencoderKLTemporalDecoder.from_config(vae_config), dtype=dtype)
    image_encoder = meta_module(lambda: CLIPVisionModelWithProjection(image_config), dtype=dtype)
    m = 2 ** (len(vae_config["block_out_channels"]) - 1)
    # the noisy latents and the conditioning image's latents, concatenated on channels
    sample = torch.zeros(1, frames, unet.config.in_channels, height // m, width // m, device="meta", dtype=dtype)
    embeds = torch.zeros(1, 1, unet.config.cross_attention_dim, device="meta", dtype=dtype)
    time_ids = torch.zeros(1, 3, device="meta", dtype=dtype)
    c_noise = torch.zeros(1, device="meta")
    denoiser = kept_activation_bytes(
        unet, lambda: unet(sample, c_noise, encoder_hidden_states=embeds, added_time_ids=time_ids)
    )
    channels = vae_config["latent_channels"]
    z = torch.zeros(frames, channels, height // m, width // m, device="meta", dtype=dtype, requires_grad=True)
    decoder = kept_activation_bytes(vae, lambda: vae.decode(z, num_frames=frames))
    latent_elements = frames * channels * (height // m) * (width // m)
    return Footprint(parameter_bytes(unet, vae, image_encoder), latent_elements, denoiser, decoder)


load_svd.check_size = _check_svd_size
load_svd.footprint = _svd_footprint
