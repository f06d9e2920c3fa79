"""What a trial leaves beside its metrics: sample videos as GIF and the trained LoRA weights."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import torch
import torch.nn.functional as F

from vaderbench.policy import Policy

#: diffusers' file name for LoRA weights (`load_lora_adapter` / `load_lora_weights` look for it)
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
#: the safetensors metadata key under which diffusers keeps the adapter's LoraConfig
LORA_METADATA_KEY = "lora_adapter_metadata"
#: GIFs are upscaled (nearest) to at least this height so that a 16-pixel video is visible in the UI
MIN_GIF_HEIGHT = 128


def save_gif(videos: torch.Tensor, path: Path, fps: int = 8) -> None:
    """Videos [N, F, C, H, W] in [0, 1] side by side, one GIF (written whole, then renamed into place)."""
    frames = torch.cat(list(videos.detach().float().cpu()), dim=-1)  # [F, C, H, N*W]
    scale = max(1, -(-MIN_GIF_HEIGHT // frames.shape[-2]))
    if scale > 1:
        frames = F.interpolate(frames, scale_factor=scale, mode="nearest")
    pixels = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.gif")
    iio.imwrite(partial, pixels, duration=1000 / fps, loop=0)
    partial.replace(path)


def lora_config(policy: Policy) -> dict:
    """The adapter's LoraConfig as JSON-ready values (what diffusers and peft rebuild the adapter from)."""
    config = policy.lora_config
    return {
        "r": config.r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": sorted(config.target_modules),
    }


def export_lora(policy: Policy, directory: Path) -> None:
    """The LoRA weights in diffusers' layout: `denoiser.load_lora_adapter(directory, prefix=None)` loads them.

    Keys are peft's (`<module>.lora_A.weight`); the adapter's LoraConfig rides in the safetensors metadata
    (as diffusers' own `save_lora_adapter` writes it) and in `adapter_config.json` for peft.
    """
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    config = lora_config(policy)
    tensors = {k: v.contiguous() for k, v in policy.lora_state_dict().items()}
    save_file(tensors, str(directory / LORA_WEIGHTS), metadata={LORA_METADATA_KEY: json.dumps(config), "format": "pt"})
    (directory / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "LORA"}, indent=2) + "\n")
