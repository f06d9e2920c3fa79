"""Pieces the diffusers-based adapters share: weight dtypes, text encoding, v-to-epsilon, checkpointing.

Every real adapter is built with `from_pretrained(path_or_id, subfolder=...)` on the components of the
model's diffusers repository, so a Hugging Face id and a local folder with the same layout take the very
same code path (tests save tiny random components in that layout).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

WEIGHT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_weight_dtype(name: str) -> torch.dtype:
    """The dtype frozen weights are stored in (`fp32`, `fp16`, `bf16`)."""
    try:
        return WEIGHT_DTYPES[name]
    except KeyError:
        raise ValueError(f"weight_dtype must be one of {sorted(WEIGHT_DTYPES)}, got {name!r}") from None


def cast_frozen(modules: Sequence[nn.Module], dtype: torch.dtype) -> None:
    """Store frozen weights in half precision: the memory trick that goes with autocast.

    Call it before LoRA is injected. peft gives new adapter weights the dtype of the layer they wrap,
    so the policy upcasts them to float32 afterwards (peft's `cast_adapter_dtype`); adapters cast their
    inputs to `dtype` themselves, so sampling works with or without autocast.
    """
    if dtype == torch.float32:
        return
    for module in modules:
        module.to(dtype)


def encode_text(
    tokenizer, text_encoder: nn.Module, prompts: Sequence[str], max_length: int, zero_padding: bool = False
) -> torch.Tensor:
    """Token states of a CLIP or T5 text encoder, padded to `max_length` as the diffusers pipelines do.

    With `zero_padding` (WanPipeline) the encoder sees the attention mask and the states of the padding are zeros.
    """
    tokens = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    ids = tokens.input_ids.to(text_encoder.device)
    with torch.no_grad():
        if not zero_padding:
            return text_encoder(ids)[0]
        mask = tokens.attention_mask.to(ids.device)
        states = text_encoder(ids, mask)[0]
        return states * mask[..., None].to(states.dtype)


def v_to_epsilon(v: torch.Tensor, latents: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor):
    """eps = sqrt(a_t) v + sqrt(1 - a_t) x_t (Salimans & Ho 2022: v = sqrt(a) eps - sqrt(1 - a) x0)."""
    a = alphas_cumprod.to(latents.device)[timesteps].float()
    a = a.reshape(-1, *([1] * (latents.dim() - 1)))
    return a.sqrt() * v.float() + (1 - a).sqrt() * latents.float()


def checkpoint_blocks(blocks: Sequence[nn.Module | None]) -> None:
    """Gradient checkpointing for models without it (ModelScope's UNet3D): recompute each block in backward.

    Patches each block's `forward` on the instance, so parameter names (and LoRA state dicts) are unchanged.
    Outside a gradient context the block runs as before.
    """
    for block in blocks:
        if block is None or getattr(block, "_checkpointed", False):
            continue
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = checkpointed
        block._checkpointed = True


def frame_positions(frame_index: torch.Tensor | None, frames: int) -> torch.Tensor:
    """Chosen frame indices (all frames when None), validated against the video length."""
    if frame_index is None:
        return torch.arange(frames)
    frame_index = torch.as_tensor(frame_index, dtype=torch.long).cpu()
    if frame_index.numel() and (frame_index.min() < 0 or frame_index.max() >= frames):
        raise ValueError(f"frame_index {frame_index.tolist()} out of range for {frames} frames")
    return frame_index


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """VAE output in [-1, 1] to frames in [0, 1] (float32)."""
    return (images.float() / 2 + 0.5).clamp(0, 1)


def local_config(cls, path: str, subfolder: str) -> dict | None:
    """A component's config if it is on this machine (a local folder or the Hugging Face cache), else None.

    Experiment files are checked before anything starts, without a download: a size rule that needs a
    config that is not here yet is left to `latent_shape` when the trial loads the model. Keys the file lacks
    (written by an older diffusers) take the class's defaults, as loading the model would give them.
    """
    try:
        with warnings.catch_warnings():  # huggingface_hub warns about an argument diffusers passes it
            warnings.simplefilter("ignore")
            config = dict(cls.load_config(path, subfolder=subfolder, local_files_only=True))
    except Exception:  # not cached, offline, or not a diffusers folder: the trial's load will say
        return None
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty} | config


def local_transformers_config(path: str, subfolder: str):
    """A transformers component's config (`PretrainedConfig`) if it is on this machine, else None."""
    from transformers import AutoConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoConfig.from_pretrained(path, subfolder=subfolder, local_files_only=True)
    except Exception:  # as in `local_config`
        return None
