"""The base-model seam: what a video diffusion model must expose so that every aligner can train it.

A `VideoModel` owns the frozen parts of a base model (text/image encoders, VAE) and the denoiser that
LoRA adapts, plus a DDIM-compatible scheduler. The policy (`vaderbench.policy`) builds sampling,
truncated backprop, log-probabilities and the denoising loss on top of these few methods, so adding a
model means writing one adapter, never another training loop.

A model's factory (registered in `MODELS`) may carry `check_size(frames, height, width, **options)`: the
size rule of `latent_shape`, checked from configs alone so that an experiment file is validated without
loading weights.

Conditions are dicts of batch-first tensors (text embeddings, image latents, time ids, ...): the
policy concatenates them for classifier-free guidance and indexes them to take sub-batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
from torch import nn

Condition = dict[str, torch.Tensor]


def cat_conditions(conditions: Sequence[Condition]) -> Condition:
    return {key: torch.cat([c[key] for c in conditions]) for key in conditions[0]}


def index_condition(condition: Condition, index) -> Condition:
    return {key: value[index] for key, value in condition.items()}


def check_multiple(model: str, multiple: int, frames: int, height: int, width: int) -> None:
    """ValueError unless height and width are positive multiples of `multiple` and frames >= 1."""
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise ValueError(f"{model} needs height and width that are multiples of {multiple}, got {height}x{width}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")


class VideoModel(nn.Module, ABC):
    """Adapter around one family of video diffusion models.

    Subclasses set `denoiser` (the module LoRA is injected into) and `scheduler` (a diffusers
    `DDIMScheduler`, or one with the same `alphas_cumprod` / `set_timesteps` interface).
    """

    denoiser: nn.Module
    #: module names LoRA targets by default (peft `target_modules`)
    lora_target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")

    @abstractmethod
    def encode_prompts(self, prompts: Sequence[str]) -> Condition:
        """Condition for each prompt (frozen encoders; no gradient)."""

    @abstractmethod
    def null_condition(self, batch_size: int) -> Condition:
        """The unconditional condition used by classifier-free guidance."""

    @abstractmethod
    def predict_noise(self, latents: torch.Tensor, timesteps: torch.Tensor, condition: Condition) -> torch.Tensor:
        """Epsilon prediction for `latents` at integer `timesteps` [B] (v-prediction models convert)."""

    @abstractmethod
    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, ...]:
        """Shape of one sample's latent; raises ValueError for a size the model cannot produce."""

    @abstractmethod
    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        """Frames [B, F', C, H, W] in [0, 1] for the chosen frame indices (all frames when None).

        Decoding only the frames a reward looks at is the paper's frame-subsampling memory trick.
        """

    def enable_gradient_checkpointing(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no gradient checkpointing")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
