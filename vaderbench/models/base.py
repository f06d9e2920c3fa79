"""The base-model seam: what a video diffusion model must expose so that every aligner can train it.

A `VideoModel` owns the frozen parts of a base model (text/image encoders, VAE) and the denoiser that
LoRA adapts, plus its sampling rule (`sampling`: DDIM over a diffusers scheduler by default, or a
rectified flow; `vaderbench.sampling`). The policy (`vaderbench.policy`) builds sampling, truncated
backprop, log-probabilities and the denoising loss on top of these few methods, so adding a model means
writing one adapter, never another training loop.

A model's factory (registered in `MODELS`) may carry, read from configs alone so that an experiment file
is validated without loading weights:
- `check_size(frames, height, width, **options)`: the size rule of `latent_shape`;
- `footprint(frames, height, width, **options) -> Footprint | None`: its weights' size and the activations
  autograd keeps for one sample, counted by running its modules on the meta device (no memory, no
  compute); None when its configs are not on this machine. `vaderbench.experiment.memory` turns it
  into a trial's peak memory.

Conditions are dicts of batch-first tensors (text embeddings, image latents, time ids, ...): the
policy concatenates them for classifier-free guidance and indexes them to take sub-batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vaderbench.sampling import DdimRule, SamplingRule

Condition = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Footprint:
    """What one sample of a model costs in memory at one size (frames, height, width)."""

    #: every weight the model loads (denoiser, encoders, VAE) in the dtype it stores them in
    weight_bytes: int
    #: elements of one sample's latent
    latent_elements: int
    #: activations one denoiser call on one sample keeps for backward, LoRA on the model's targets
    denoiser_bytes: int
    #: activations decoding all frames of one sample keeps for backward (towards the latents)
    decoder_bytes: int


def meta_module(build: Callable[[], nn.Module], lora_targets: Sequence[str] = (), dtype=torch.float32) -> nn.Module:
    """A module built on the meta device (shapes only), frozen but for the weights LoRA would adapt."""
    with torch.device("meta"):
        module = build()
    module = module.to("meta")  # a few constructors make CPU tensors whatever the default device
    if dtype != torch.float32:
        module = module.to(dtype)
    module.requires_grad_(False)
    for name, child in module.named_modules():
        if any(name == t or name.endswith("." + t) for t in lora_targets):
            child.weight.requires_grad_(True)  # as LoRA's branch does, the layer then keeps its input
    return module


def parameter_bytes(*modules: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


def kept_activation_bytes(module: nn.Module, call: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd keeps for backward while `call()` runs `module` (each storage once,
    the module's own weights left out)."""
    weights = {p.untyped_storage()._cdata for p in module.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in weights:
            kept[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), FusedAttentionOnMeta():
        call()
    return sum(kept.values())


class FusedAttentionOnMeta(TorchFunctionMode):
    """On the meta device `scaled_dot_product_attention` always takes its unfused path, which keeps the
    attention matrix for backward; on a CPU or a GPU a fused kernel runs and keeps only its output and
    log-sum-exp. Meta attention goes through the fused CPU kernel here, so that a trace keeps what a run does."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        given = dict(zip(names, args)) | kwargs  # diffusers' attention dispatcher passes them all by keyword
        query, mask = given["query"], given.get("attn_mask")
        if not query.is_meta:
            return func(*args, **kwargs)
        if mask is not None and mask.dtype == torch.bool:  # the fused kernel takes an additive mask
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device)
        out, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query,
            given["key"],
            given["value"],
            given.get("dropout_p", 0.0),
            given.get("is_causal", False),
            attn_mask=mask,
            scale=given.get("scale"),
        )
        return out


def cat_conditions(conditions: Sequence[Condition]) -> Condition:
    return {key: torch.cat([c[key] for c in conditions]) for key in conditions[0]}


def index_condition(condition: Condition, index) -> Condition:
    return {key: value[index] for key, value in condition.items()}


def check_multiple(model: str, multiple: int, frames: int, height: int, width: int, temporal: int = 1) -> None:
    """ValueError unless height and width are positive multiples of `multiple` and frames >= 1; with a causal
    video VAE that compresses time by `temporal` (its first frame alone), frames must also be 1 + temporal k."""
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise ValueError(f"{model} needs height and width that are multiples of {multiple}, got {height}x{width}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if (frames - 1) % temporal:
        examples = ", ".join(str(1 + temporal * k) for k in (1, 2, 4, 8))
        raise ValueError(f"{model} generates 1 + {temporal}k frames (e.g. {examples}), got frames={frames}")


class VideoModel(nn.Module, ABC):
    """Adapter around one family of video diffusion models.

    Subclasses set `denoiser` (the module LoRA is injected into) and either `scheduler` (a diffusers
    `DDIMScheduler`, or one with the same `alphas_cumprod` / `set_timesteps` interface), which makes the
    sampling rule DDIM, or override `sampling` and `predict` with another rule (a rectified flow).
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

    @property
    def sampling(self) -> SamplingRule:
        """How this model's prediction becomes sampling steps and a denoising loss (DDIM by default)."""
        return DdimRule(self.scheduler)

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, condition: Condition) -> torch.Tensor:
        """What `sampling` takes at `timesteps` [B]: epsilon for DDIM (the default), velocity for a flow."""
        return self.predict_noise(latents, timesteps, condition)

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
