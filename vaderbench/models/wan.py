"""Wan 2.1 text-to-video (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, -14B): a rectified flow.

Components as in the diffusers repository: `transformer` (WanTransformer3DModel, predicts the velocity
noise - x0), `vae` (AutoencoderKLWan, causal in time, compressing time by 4 and space by 8), `text_encoder` +
`tokenizer` (UMT5), `scheduler`. Latents are [B, C, F_latent, H/8, W/8] with F_latent = (frames - 1) / 4 + 1,
in the space the transformer works in: the VAE's latents normalised per channel by the VAE config's
`latents_mean` / `latents_std`, which decoding undoes as `WanPipeline` does.

Sampling is `vaderbench.sampling.FlowMatchRule` (Euler steps; Flow-GRPO's SDE steps with their Gaussian
log-probabilities; the velocity target for Flow-DPO) on levels set by diffusers' `FlowMatchEulerDiscreteScheduler`,
the scheduler class `WanPipeline` declares. The repositories ship `UniPCMultistepScheduler(use_flow_sigmas=True,
flow_shift=3.0)`, a multistep solver whose steps are not single Gaussian steps: its `flow_shift` becomes the Euler
scheduler's `shift` (option `shift` overrides it), which bends evenly spaced levels t in [0, 1] to
shift t / (1 + (shift - 1) t), as Wan's own sampler does.
Classifier-free guidance is the pipeline's: the null condition is the negative prompt's embedding ("" unless
the option `negative_prompt` says otherwise), prompts are cleaned and padded with zero states as it does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from torch import nn
from transformers import AutoTokenizer, UMT5EncoderModel

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
from vaderbench.models.diffusers_common import (
    cast_frozen,
    encode_text,
    frame_positions,
    local_config,
    local_transformers_config,
    parse_weight_dtype,
    to_unit_range,
)
from vaderbench.registry import MODELS
from vaderbench.sampling import FlowMatchRule

DEFAULT_PATH = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
#: WanPipeline's default text length
MAX_SEQUENCE_LENGTH = 512


class WanVideoModel(VideoModel):
    def __init__(
        self,
        transformer: WanTransformer3DModel,
        vae: AutoencoderKLWan,
        text_encoder: UMT5EncoderModel,
        tokenizer,
        scheduler: FlowMatchEulerDiscreteScheduler,
        dtype: torch.dtype,
        negative_prompt: str = "",
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    ):
        super().__init__()
        self.denoiser = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.weight_dtype = dtype
        self.negative_prompt = negative_prompt
        self.max_sequence_length = max_sequence_length
        cast_frozen([transformer, vae, text_encoder], dtype)
        keep_float32_modules(transformer)
        #: the levels the flow-matching loss draws from: the scheduler's 1000 training levels (shifted)
        self.train_sigmas = FlowMatchEulerDiscreteScheduler.from_config(scheduler.config).sigmas.clone()
        self.spatial_compression = vae.config.scale_factor_spatial
        self.temporal_compression = vae.config.scale_factor_temporal

    @property
    def sampling(self) -> FlowMatchRule:
        return FlowMatchRule(self.flow_sigmas, self.train_sigmas)

    def flow_sigmas(self, num_steps: int) -> torch.Tensor:
        """[num_steps + 1] levels from 1 to 0: Wan's own (its `get_sampling_sigmas`, diffusers' UniPC flow sigmas),
        1, 1 - 1/N, ..., 1/N shifted, then 0.

        The Euler scheduler's default spacing would end at its 0.003 training level before the shift (0.009
        after it): a last step that is nearly the identity, leaving truncated backprop with K = 1 almost no gradient.
        """
        self.scheduler.set_timesteps(sigmas=torch.linspace(1, 0, num_steps + 1)[:-1].tolist())
        return self.scheduler.sigmas.clone()

    def encode_prompts(self, prompts: Sequence[str]) -> Condition:
        cleaned = [prompt_clean(p) for p in prompts]
        text = encode_text(self.tokenizer, self.text_encoder, cleaned, self.max_sequence_length, zero_padding=True)
        return {"text": text}

    def null_condition(self, batch_size: int) -> Condition:
        return self.encode_prompts([self.negative_prompt] * batch_size)

    def predict(self, latents, timesteps, condition):
        return self.denoiser(
            hidden_states=latents.to(self.weight_dtype),
            timestep=timesteps,
            encoder_hidden_states=condition["text"].to(self.weight_dtype),
            return_dict=False,
        )[0]

    def predict_noise(self, latents, timesteps, condition):
        sigma = timesteps.float() / FlowMatchRule.timestep_scale
        return flow_noise_estimate(self.predict(latents, timesteps, condition).float(), sigma, latents.float())

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        r, m = self.temporal_compression, self.spatial_compression
        check_multiple("Wan", m * max(self.denoiser.config.patch_size[1:]), frames, height, width, temporal=r)
        return (self.denoiser.config.in_channels, (frames - 1) // r + 1, height // m, width // m)

    def decoded_prefix(self, frame_index: torch.Tensor) -> int:
        """How many leading latent frames to decode so that the chosen frames come out exactly.

        The VAE decodes latent frame by latent frame (the first into 1 frame, each later one into r), its
        convolutions causal in time, caching only the past: frame f depends on latent frames 0 .. ceil(f / r)
        alone. So decoding that prefix gives every choice of frames exactly, the same values as a decoding of the
        whole video; what it saves is the frames after the last chosen one (nothing when that is the last frame).
        This is how diffusers 0.42's `AutoencoderKLWan._decode` works (one latent frame per decoder call, a cache of
        the past); a decoder that looked ahead in time would make the prefix an approximation, and
        `test_a_latent_prefix_decodes_the_chosen_frames_exactly` would fail.
        """
        return 1 + math.ceil(int(frame_index.max()) / self.temporal_compression)

    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        latent_frames = latents.shape[2]
        index = frame_positions(frame_index, 1 + self.temporal_compression * (latent_frames - 1))
        prefix = latent_frames if frame_index is None else self.decoded_prefix(index)
        config = self.vae.config
        shape = (1, config.z_dim, 1, 1, 1)
        mean = torch.tensor(config.latents_mean, device=latents.device).view(shape)
        std = torch.tensor(config.latents_std, device=latents.device).view(shape)
        z = latents[:, :, :prefix].float() * std + mean  # WanPipeline: latents / (1 / std) + mean
        video = self.vae.decode(z.to(self.weight_dtype), return_dict=False)[0]  # [B, C, F, H, W] in [-1, 1]
        return to_unit_range(video[:, :, index.to(video.device)].transpose(1, 2))

    def enable_gradient_checkpointing(self) -> None:
        # the VAE has none (diffusers: `_supports_gradient_checkpointing = False`); decoding fewer frames is its
        # memory switch
        self.denoiser.enable_gradient_checkpointing()


def keep_float32_modules(module: nn.Module) -> None:
    """Back to float32: the parts diffusers' `from_pretrained(torch_dtype=...)` keeps in it (`_keep_in_fp32_modules`:
    Wan's rotary tables, time embedding, modulation table and norms), whose precision half types would cut."""
    keep = module._keep_in_fp32_modules or []
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if any(part in keep for part in name.split(".")):
            tensor.data = tensor.data.float()


def flow_match_scheduler(path: str, shift: float | None = None) -> FlowMatchEulerDiscreteScheduler:
    """The Euler flow-matching scheduler with the repository's shift (UniPC's `flow_shift`, or an Euler `shift`)."""
    config = FlowMatchEulerDiscreteScheduler.load_config(path, subfolder="scheduler")
    if config.get("prediction_type", "flow_prediction") != "flow_prediction":
        raise ValueError(f"Wan needs a flow-matching scheduler, {path} has prediction_type {config['prediction_type']}")
    repository_shift = config.get("flow_shift", config.get("shift", 1.0))
    return FlowMatchEulerDiscreteScheduler(shift=repository_shift if shift is None else shift)


@MODELS.register(
    "wan", "Wan 2.1 text-to-video (diffusers, rectified flow: Euler / Flow-GRPO SDE; Wan-AI/Wan2.1-T2V-1.3B-Diffusers)"
)
def load_wan(
    path: str = DEFAULT_PATH,
    weight_dtype: str = "fp32",
    shift: float | None = None,
    negative_prompt: str = "",
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    device: str | None = None,
) -> WanVideoModel:
    """Load from a Hugging Face id or a local folder with the repository's subfolders."""
    model = WanVideoModel(
        WanTransformer3DModel.from_pretrained(path, subfolder="transformer"),
        AutoencoderKLWan.from_pretrained(path, subfolder="vae"),
        UMT5EncoderModel.from_pretrained(path, subfolder="text_encoder"),
        AutoTokenizer.from_pretrained(path, subfolder="tokenizer"),
        flow_match_scheduler(path, shift),
        parse_weight_dtype(weight_dtype),
        negative_prompt,
        max_sequence_length,
    )
    return model.to(device) if device else model


def _check_wan_size(frames: int, height: int, width: int, path: str = DEFAULT_PATH, **_) -> None:
    vae = local_config(AutoencoderKLWan, path, "vae")
    transformer = local_config(WanTransformer3DModel, path, "transformer")
    if vae is None or transformer is None:
        return
    multiple = vae["scale_factor_spatial"] * max(transformer["patch_size"][1:])
    check_multiple("Wan", multiple, frames, height, width, temporal=vae["scale_factor_temporal"])


def _wan_footprint(
    frames: int,
    height: int,
    width: int,
    path: str = DEFAULT_PATH,
    weight_dtype: str = "fp32",
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    **_,
) -> Footprint | None:
    """Wan's memory at one size, from its configs: the transformer's call and the causal VAE's decoding of all
    frames traced on the meta device."""
    transformer_config = local_config(WanTransformer3DModel, path, "transformer")
    vae_config = local_config(AutoencoderKLWan, path, "vae")
    text_config = local_transformers_config(path, "text_encoder")
    if transformer_config is None or vae_config is None or text_config is None:
        return None
    dtype = parse_weight_dtype(weight_dtype)
    targets = WanVideoModel.lora_target_modules
    transformer = meta_module(lambda: WanTransformer3DModel.from_config(transformer_config), targets, dtype)
    keep_float32_modules(transformer)
    vae = meta_module(lambda: AutoencoderKLWan.from_config(vae_config), dtype=dtype)
    text_encoder = meta_module(lambda: UMT5EncoderModel(text_config), dtype=dtype)
    m, r = vae_config["scale_factor_spatial"], vae_config["scale_factor_temporal"]
    shape = (1, transformer.config.in_channels, (frames - 1) // r + 1, height // m, width // m)
    latent = torch.zeros(shape, device="meta", dtype=dtype)
    text = torch.zeros(1, max_sequence_length, transformer.config.text_dim, device="meta", dtype=dtype)
    t = torch.zeros(1, device="meta")
    denoiser = kept_activation_bytes(
        transformer, lambda: transformer(hidden_states=latent, timestep=t, encoder_hidden_states=text)
    )
    z = latent.clone().requires_grad_(True)
    decoder = kept_activation_bytes(vae, lambda: vae.decode(z))
    return Footprint(parameter_bytes(transformer, vae, text_encoder), latent.numel(), denoiser, decoder)


load_wan.check_size = _check_wan_size
load_wan.footprint = _wan_footprint
