"""A trial's peak memory on one worker, estimated from configs before anything starts.

    peak = BASE_BYTES + weights + stored + max(ACTIVATION_FACTOR * kept, evaluation)

- weights: every weight the base model loads (its factory's `footprint`, see `vaderbench.models.base`);
- kept: the activation bytes autograd holds at the method's peak (the aligner's `memory_terms`: VADER
  keeps K denoiser calls and the decoder per micro-batch, DDPO one call per micro-batch, DPO one call on
  winners and losers), from the footprint's traced bytes of one sample's denoiser call and decoding;
- stored: the latents the method keeps (its trajectories, DPO's replay buffer);
- evaluation: what an evaluation holds between steps, instead of the training activations: its batch's
  trajectory, noise and decoded frames, and one no-grad denoiser call or decoding on the whole batch,
  counted as what a call keeps for backward (an upper bound);
- BASE_BYTES and ACTIVATION_FACTOR: fitted by least squares to the peak resident memory of one aligner
  step in fresh processes (`analysis/calibrate_memory.py`, 2-core Xeon, torch 2.14 CPU): 18 points of the
  toy model and of the tiny ModelScope, CogVideoX and SVD models of the tests (and `modelscope-small`), at
  several sizes, batches, K and methods, with measured peaks of 1.0 to 4.8 GiB. On those points the
  estimate is off by -16% to +19% (median 6%); beyond them (tens of GiB, a GPU) it is an extrapolation.

Not counted: the reward model (its weights and activations), the no-grad sampling pass, LoRA and AdamW
state (a few MB), and the memory switches: mixed precision, frame subsampling, gradient checkpointing
and activation offloading only lower the peak, so with them the estimate is an upper bound. It is calibrated on host
memory (CPU runs); on a GPU the same weights and activations sit in device memory instead, with the
framework's own overhead (CUDA context, allocator) on top.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vaderbench.experiment.grid import Trial
from vaderbench.experiment.schema import ExperimentError

#: the fitted intercept: a worker's resident memory besides the terms (interpreter, torch, diffusers, ...)
BASE_BYTES = 892 * 2**20
#: resident bytes per activation byte kept for backward (the allocator's slack, backward's temporaries)
ACTIVATION_FACTOR = 1.77
#: the largest relative error of the estimate on the calibration points (-16% .. +19%)
CALIBRATION_ERROR = 0.19


@dataclass(frozen=True)
class MemoryEstimate:
    """A trial's estimated peak memory on one worker, in bytes, by what it is made of."""

    weights: int
    activations: int
    stored: int
    evaluation: int

    @property
    def total(self) -> int:
        return BASE_BYTES + self.weights + self.stored + max(self.activations, self.evaluation)

    def describe(self) -> str:
        return (
            f"about {gib(self.total)} (weights {gib(self.weights)}, activations {gib(self.activations)}, "
            f"stored {gib(self.stored)}, evaluation batch {gib(self.evaluation)}; within "
            f"+-{CALIBRATION_ERROR:.0%} on the calibration runs)"
        )


def gib(size: float) -> str:
    return f"{size / 2**30:.3g} GiB"


def estimate_trial_memory(trial: Trial) -> MemoryEstimate | None:
    """One worker's peak memory for `trial`, or None when its model cannot say (configs not on this machine)."""
    from vaderbench.registry import ALIGNERS

    footprint = _footprint(
        trial.model_name, json.dumps(trial.model_options, sort_keys=True), trial.frames, trial.height, trial.width
    )
    if footprint is None:
        return None
    aligner = ALIGNERS.get(trial.aligner)
    memory_terms = getattr(aligner, "memory_terms", None)
    if memory_terms is None:
        return None
    kept, stored = memory_terms(aligner.Config.from_dict(trial.settings), footprint, trial.workers, trial.frames)
    return MemoryEstimate(
        footprint.weight_bytes, int(ACTIVATION_FACTOR * kept), stored, evaluation_bytes(trial, footprint)
    )


def evaluation_bytes(trial: Trial, footprint) -> int:
    """One worker's share of an evaluation batch: trajectory, noise and frames, and its largest no-grad call."""
    from vaderbench.policy import denoiser_passes

    videos = trial.eval.videos // trial.workers
    steps = trial.eval_sampler.num_steps
    call = max(denoiser_passes(trial.eval_sampler.guidance_scale) * footprint.denoiser_bytes, footprint.decoder_bytes)
    held = 4 * ((2 * steps + 1) * footprint.latent_elements + trial.frames * 3 * trial.height * trial.width)
    return videos * (call + held)


@functools.lru_cache(maxsize=64)
def _footprint(name: str, options_json: str, frames: int, height: int, width: int):
    """The model factory's footprint (cached: a sweep repeats a size for many trials)."""
    from vaderbench.registry import MODELS

    footprint = getattr(MODELS.get(name), "footprint", None)
    return footprint(frames, height, width, **json.loads(options_json)) if footprint else None


def check_memory(
    trials: Sequence[Trial], limit_bytes: int, path: str | Path, where: str = "this machine", spread: bool = False
) -> None:
    """ExperimentError for the first trial whose workers' estimated peak exceeds `limit_bytes`.

    Without a Ray address every worker of a trial runs on this machine: their peaks add up. On a cluster
    (`spread`) the workers may each have a node: one worker's peak must fit the largest node's memory
    (`where` names it in the message).
    """
    for trial in trials:
        estimate = estimate_trial_memory(trial)
        workers_here = 1 if spread else trial.workers
        if estimate is None or estimate.total * workers_here <= limit_bytes:
            continue
        workers = f" x {workers_here} workers" if workers_here > 1 else ""
        key = dominant_key(trial, estimate, limit_bytes // workers_here)
        raise ExperimentError(
            path,
            key,
            f"trial {trial.id} ({trial.frames} frames at {trial.height}x{trial.width}) needs an estimated peak "
            f"memory of {estimate.describe()}{workers}, more than the {gib(limit_bytes)} of {where}; lower the "
            "resolution, frames, batch or eval.videos, or `vaderbench run --force` to run it anyway",
        )


def dominant_key(trial: Trial, estimate: MemoryEstimate, worker_limit_bytes: int | None = None) -> str:
    """The key of the file that sets the largest part of the estimate: `eval.videos` where the evaluation batch
    does, unless one video a worker would not fit `worker_limit_bytes` either (then the size is at fault)."""
    largest = max(estimate.weights, estimate.activations, estimate.stored, estimate.evaluation)
    if largest == estimate.weights:
        return "model"
    if largest == estimate.stored:
        return f"methods.{trial.method}"
    one_video = dataclasses.replace(estimate, evaluation=estimate.evaluation // (trial.eval.videos // trial.workers))
    if largest == estimate.evaluation and (worker_limit_bytes is None or one_video.total <= worker_limit_bytes):
        return "eval.videos"
    return "sweep.resolution" if "resolution" in trial.point else "video.resolution"


def machine_memory_bytes() -> int:
    import psutil

    return psutil.virtual_memory().total
