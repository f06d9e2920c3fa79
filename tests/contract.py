"""The aligners the contract tests run on: every registered one, so that a new method file is under contract
with no edit to the tests."""

from dataclasses import fields

import torch

from vaderbench.aligner import registered_aligners
from vaderbench.registry import ALIGNERS


def aligner_names() -> list[str]:
    return registered_aligners()


def aligners_with(*settings: str) -> list[str]:
    """The registered aligners whose settings include all of `settings`: the capability an invariant needs
    (`clip_range`, `minibatches`, `inner_epochs`: PPO's clipped updates; `beta`: Diffusion-DPO's loss)."""
    return [name for name in aligner_names() if set(settings) <= {f.name for f in fields(ALIGNERS.get(name).Config)}]


def first_update_gradient(aligner, prompts):
    """The trainable parameters' gradient [P] at the aligner's first optimiser step, taken before the step
    (Adam's update divides by sqrt(v) and would magnify summation-order differences of near-zero gradients)."""
    seen = []
    aligner.optimizer.step = lambda: seen.append(
        torch.cat([p.grad.detach().flatten() for p in aligner.policy.trainable_parameters()])
    )
    aligner.step(prompts)
    return seen[0]
