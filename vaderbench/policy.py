"""The policy: a base video model + LoRA, and the sampler every aligner shares.

- `sample` runs the model's sampling rule (`vaderbench.sampling`: DDIM, or a rectified flow's Euler / SDE
  steps) from per-sample seeded noise. Gradient flows only through the denoising steps from `grad_from` to
  the end (Algorithm 1 of the VADER paper: `stop_grad` on the prediction for t > K), and the
  log-probability of every stochastic step is recorded (for DDPO and GRPO).
- `step_distribution` / `step_log_prob` re-score stored steps with the current weights (the PPO ratio's
  numerator); `reference_mean` scores them with the reference, for the KL of a step to it (`step_kl`, the
  penalty every aligner's `kl_coef` weights) and of a whole sampling path (`trajectory_kl`, measured).
- `denoising_loss` is the rule's denoising loss of given clean samples (epsilon or velocity target;
  Diffusion-DPO); inside `reference()` the LoRA adapters are off, which makes the same network the frozen
  reference model; inside `using(weights)` other adapters stand in for the trained ones (an old policy, an EMA);
  inside `lora_scale(s)` the adapters' contribution is scaled by s (DRaFT's evaluation toward the base model).
- The paper's memory switches live here: LoRA, mixed precision (autocast), gradient checkpointing,
  activation offloading to host memory inside the gradient window, and decoding a subset of frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from vaderbench.ddim import gaussian_kl, gaussian_log_prob
from vaderbench.models.base import Condition, VideoModel, cat_conditions, index_condition

Precision = Literal["no", "bf16", "fp16"]


@dataclass(frozen=True)
class SamplerSettings:
    """Sampling. Defaults follow VADER's ModelScope config (25 steps, eta 1.0); guidance is per model.

    `eta` scales every step's noise: DDIM's eta, or the noise level `a` of Flow-GRPO's SDE on a flow model
    (0: deterministic DDIM, or Euler's ODE)."""

    num_steps: int = 25
    eta: float = 1.0
    guidance_scale: float = 7.5

    def __post_init__(self):
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must be between 0 (deterministic sampling) and 1, got {self.eta}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")


@dataclass
class Trajectory:
    """A batch of sampled videos with everything the aligners need afterwards."""

    latents: torch.Tensor  # [T + 1, B, ...] x_T .. x_0, detached
    log_probs: torch.Tensor  # [T, B] log-prob of each stochastic step under the sampling weights (else 0)
    timesteps: torch.Tensor  # [T] the denoiser's time input at each step
    prev_timesteps: torch.Tensor  # [T] where each step lands, in the same units
    final: torch.Tensor  # x_0 [B, ...], attached to the graph of the kept steps
    condition: Condition
    null_condition: Condition

    @property
    def batch_size(self) -> int:
        return self.final.shape[0]


def denoiser_passes(guidance_scale: float) -> int:
    """Samples per guided denoiser call: classifier-free guidance batches the unconditional half in."""
    return 1 if guidance_scale == 1.0 else 2


def sample_noise(seeds: Sequence[int], shape: tuple[int, ...], num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_T and the per-step noise for each sample, drawn from the sample's own seed.

    Per-sample seeds make a sample independent of how a batch is split over workers (so DDP over N
    workers sees the same videos as one process) and let every method be evaluated on the same noise.
    """
    starts, steps = [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        starts.append(torch.randn(shape, generator=generator))
        steps.append(torch.randn((num_steps, *shape), generator=generator))
    return torch.stack(starts), torch.stack(steps, dim=1)


class Policy(nn.Module):
    def __init__(
        self,
        model: VideoModel,
        *,
        lora_rank: int = 8,
        lora_alpha: float | None = None,
        lora_dropout: float = 0.0,
        lora_targets: Sequence[str] | None = None,
        precision: Precision = "no",
        gradient_checkpointing: bool = False,
        offload_activations: bool = False,
        lora_seed: int = 0,
    ):
        super().__init__()
        if lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {lora_rank}")
        if precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"precision must be 'no', 'bf16' or 'fp16', got {precision!r}")
        self.model = model
        self.precision = precision
        self.offload_activations = offload_activations
        model.requires_grad_(False)
        from peft import LoraConfig, inject_adapter_in_model

        self.lora_config = config = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha if lora_alpha is not None else lora_rank,
            lora_dropout=lora_dropout,
            target_modules=list(lora_targets or model.lora_target_modules),
        )
        # every worker (and a resumed run) must start from the same adapters: seed their random init
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(lora_seed)
            inject_adapter_in_model(config, model.denoiser)
        for name, parameter in model.denoiser.named_parameters():
            parameter.requires_grad_("lora_" in name)
            if "lora_" in name:
                # peft gives adapters the dtype of the layer they wrap; with frozen weights stored in
                # half precision the trained weights (and AdamW's state) must still be float32
                parameter.data = parameter.data.float()
        if gradient_checkpointing:
            model.enable_gradient_checkpointing()

    # -- parameters and the reference model -------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.model.denoiser).items()}

    def load_lora_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model.denoiser, state)

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """The frozen base model: the same network with its LoRA adapters switched off."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = [m for m in self.model.denoiser.modules() if isinstance(m, BaseTunerLayer)]
        for layer in layers:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in layers:
                layer.enable_adapters(True)

    @contextlib.contextmanager
    def lora_scale(self, scale: float) -> Iterator[None]:
        """The network with every LoRA layer's contribution times `scale` for the duration (its `scaling`, alpha / r,
        times `scale`), then the trained scaling back: DRaFT's interpolation toward the base model at inference
        (0: the base model, 1: the trained policy), read from one trained adapter without retraining."""
        from peft.helpers import rescale_adapter_scale

        with rescale_adapter_scale(self.model.denoiser, float(scale)):
            yield

    @contextlib.contextmanager
    def using(self, weights: Sequence[torch.Tensor]) -> Iterator[None]:
        """The network with `weights` (in `trainable_parameters()` order) in place of the trained adapters for the
        duration, then the trained ones back bit for bit: an old policy's or an EMA's adapters (DiffusionNFT).
        Take no gradient inside: the parameters hold `weights` there."""
        parameters = self.trainable_parameters()
        kept = [parameter.detach().clone() for parameter in parameters]
        with torch.no_grad():
            for parameter, weight in zip(parameters, weights, strict=True):
                parameter.copy_(weight)
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, weight in zip(parameters, kept, strict=True):
                    parameter.copy_(weight)

    # -- the pieces -------------------------------------------------------------------------------
    def autocast(self):
        if self.precision == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.model.device.type, dtype=dtype)

    def encode(self, prompts: Sequence[str]) -> tuple[Condition, Condition]:
        with torch.no_grad():
            return self.model.encode_prompts(list(prompts)), self.model.null_condition(len(prompts))

    def guided_prediction(
        self, latents: torch.Tensor, timesteps: torch.Tensor, condition: Condition, null: Condition, guidance: float
    ) -> torch.Tensor:
        """Classifier-free guidance: out_u + w (out_c - out_u), both halves in one batched call."""
        if denoiser_passes(guidance) == 1:
            return self.model.predict(latents, timesteps, condition)
        both = self.model.predict(
            torch.cat([latents, latents]), torch.cat([timesteps, timesteps]), cat_conditions([null, condition])
        )
        uncond, cond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    def prediction(
        self, latents: torch.Tensor, timesteps: torch.Tensor, condition: Condition, null: Condition, guidance: float
    ) -> torch.Tensor:
        """The guided denoiser output (epsilon or velocity) at the policy's precision, in float32."""
        with self.autocast():
            return self.guided_prediction(latents, timesteps, condition, null, guidance).float()

    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        sampler: SamplerSettings,
        *,
        frames: int,
        height: int,
        width: int,
        grad_from: int | None = None,
        stochastic_steps: range | None = None,
        on_denoiser_call=None,
    ) -> Trajectory:
        """Sample videos; steps with index >= grad_from keep their gradient (None: no gradient at all).

        Steps in `stochastic_steps` (None: all) sample with the sampler's noise level and record their
        log-probability; the others are deterministic (eta 0: DDIM's, Euler's ODE), as in Flow-GRPO-Fast's
        SDE window. `on_denoiser_call(step_index, prediction)` is called with every guided prediction
        (tests use it to see which steps are in the graph).
        """
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        device = self.model.device
        num_steps = sampler.num_steps
        grad_from = num_steps if grad_from is None else grad_from
        shape = self.model.latent_shape(frames, height, width)
        x, step_noise = sample_noise(seeds, shape, num_steps)
        x, step_noise = x.to(device), step_noise.to(device)
        condition, null = self.encode(prompts)
        rule = self.model.sampling
        timesteps, prev_timesteps = rule.schedule(num_steps)
        stochastic_steps = range(num_steps) if stochastic_steps is None else stochastic_steps
        latents, log_probs = [x], torch.zeros(num_steps, x.shape[0], device=device)
        for i, (t, t_prev) in enumerate(zip(timesteps.tolist(), prev_timesteps.tolist())):
            keep_grad = i >= grad_from and torch.is_grad_enabled()
            noise_level = sampler.eta if i in stochastic_steps else 0.0
            t_batch = torch.full((x.shape[0],), t, device=device, dtype=timesteps.dtype)
            offload = (
                torch.autograd.graph.save_on_cpu(pin_memory=device.type == "cuda")
                if keep_grad and self.offload_activations
                else contextlib.nullcontext()
            )
            with torch.set_grad_enabled(keep_grad), self.autocast(), offload:
                output = self.guided_prediction(x, t_batch, condition, null, sampler.guidance_scale).float()
            if on_denoiser_call is not None:
                on_denoiser_call(i, output)
            with torch.set_grad_enabled(keep_grad):
                mean, std = rule.step(output, torch.tensor(t), torch.tensor(t_prev), x, noise_level)
                x_prev = mean + std * step_noise[i]
            if noise_level > 0:
                log_probs[i] = gaussian_log_prob(x_prev, mean.detach(), std)
            x = x_prev
            latents.append(x.detach())
        return Trajectory(
            latents=torch.stack(latents),
            log_probs=log_probs,
            timesteps=timesteps,
            prev_timesteps=prev_timesteps,
            final=x,
            condition=condition,
            null_condition=null,
        )

    def step_stds(self, sampler: SamplerSettings) -> torch.Tensor:
        """The standard deviation of every sampling step [T] (a log-probability needs all of them > 0)."""
        timesteps, prev = self.model.sampling.schedule(sampler.num_steps)
        x = torch.zeros(len(timesteps), 1)
        _, std = self.model.sampling.step(torch.zeros_like(x), timesteps, prev, x, sampler.eta)
        return std.flatten()

    def step_log_prob(
        self, trajectory: Trajectory, step_index: torch.Tensor, sampler: SamplerSettings, index=slice(None)
    ) -> torch.Tensor:
        """Log-prob under the current weights of the stored steps `step_index` [B'] of samples `index`.

        With unchanged weights this reproduces `trajectory.log_probs` (the PPO ratio is 1 before an update).
        """
        mean, std = self.step_distribution(trajectory, step_index, sampler, index)
        rows = torch.arange(trajectory.batch_size)[index]
        return gaussian_log_prob(trajectory.latents[step_index + 1, rows], mean, std)

    def step_distribution(
        self, trajectory: Trajectory, step_index: torch.Tensor, sampler: SamplerSettings, index=slice(None)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std under the current weights of the stored steps `step_index` [B'] of samples `index`."""
        if sampler.eta <= 0:
            raise ValueError("log-probabilities need a stochastic sampler: eta must be > 0")
        rows = torch.arange(trajectory.batch_size)[index]
        x_t = trajectory.latents[step_index, rows]
        t = trajectory.timesteps[step_index].to(x_t.device)
        t_prev = trajectory.prev_timesteps[step_index].to(x_t.device)
        condition = index_condition(trajectory.condition, rows)
        null = index_condition(trajectory.null_condition, rows)
        output = self.prediction(x_t, t, condition, null, sampler.guidance_scale)
        return self.model.sampling.step(output, t, t_prev, x_t, sampler.eta)

    @torch.no_grad()
    def reference_mean(
        self, trajectory: Trajectory, step_index: torch.Tensor, sampler: SamplerSettings, index=slice(None)
    ) -> torch.Tensor:
        """The reference's (adapters off) mean of the stored steps `step_index` [B'] of samples `index`, without
        gradient: the fixed target of a KL to the base model, as Flow-GRPO's `disable_adapter()` pass."""
        with self.reference():
            mean, _ = self.step_distribution(trajectory, step_index, sampler, index)
        return mean

    def step_kl(
        self, trajectory: Trajectory, step_index: torch.Tensor, sampler: SamplerSettings, index=slice(None)
    ) -> torch.Tensor:
        """KL(p_theta(. | x_t) || p_ref(. | x_t)) [B'] of the stored steps `step_index` of samples `index`, given
        their stored inputs x_t, summed over latent elements (`gaussian_kl`); the gradient reaches the adapters
        through the policy's mean. DPOK's per-step KL (Fan et al. 2023, Lemma 4.2: the steps' sum bounds the KL
        of the whole path). Needs a stochastic sampler (eta > 0): a deterministic step has no density."""
        mean, std = self.step_distribution(trajectory, step_index, sampler, index)
        return gaussian_kl(mean, self.reference_mean(trajectory, step_index, sampler, index), std)

    @torch.no_grad()
    def trajectory_kl(
        self, trajectory: Trajectory, sampler: SamplerSettings, predictions: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """KL [B] of the policy's sampling path from the reference's (adapters off), along the trajectory's own
        latents: `step_kl` summed over the steps (Gao et al.'s x-axis, for a diffusion model). `predictions` are
        the policy's guided outputs at each step, as `sample` hands them to `on_denoiser_call`: only the
        reference runs again."""
        total = torch.zeros(trajectory.batch_size, device=trajectory.final.device)
        for step, prediction in enumerate(predictions):
            t, t_prev = trajectory.timesteps[step], trajectory.prev_timesteps[step]
            mean, std = self.model.sampling.step(prediction, t, t_prev, trajectory.latents[step], sampler.eta)
            step_index = torch.full((trajectory.batch_size,), step)
            total += gaussian_kl(mean, self.reference_mean(trajectory, step_index, sampler), std)
        return total

    def denoising_loss(
        self, clean: torch.Tensor, timesteps: torch.Tensor, noise: torch.Tensor, condition: Condition
    ) -> torch.Tensor:
        """||f_theta(x_t, c, t) - target||^2 averaged over every non-batch dimension: shape [B].

        The rule's loss: epsilon and its noise for DDIM, velocity and `noise - clean` for a rectified flow.
        """
        rule = self.model.sampling
        noisy = rule.noisy(clean, noise, timesteps)
        with self.autocast():
            prediction = self.model.predict(noisy, timesteps, condition).float()
        return ((prediction - rule.target(clean, noise)) ** 2).mean(dim=tuple(range(1, clean.dim())))

    def decode(self, latents: torch.Tensor, frame_index: torch.Tensor | None = None) -> torch.Tensor:
        with self.autocast():
            return self.model.decode(latents, frame_index).float()
