"""What the direction-of-learning tests share: recording what an aligner computed inside its step, and
re-scoring a stored trajectory after the update.

An aligner's first AdamW step at a small learning rate moves every weight against the sign of its
gradient, so to first order it lowers the loss it was computed from: re-evaluating that loss on the same
samples shows the direction the step took (a reversed gradient shows as the opposite sign).
"""

from __future__ import annotations

import torch


def record_calls(owner, name: str) -> list[tuple[tuple, object]]:
    """Wrap `owner.name` so that each call's (arguments, result) is appended to the returned list."""
    calls = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args, result))
        return result

    setattr(owner, name, recording)
    return calls


@torch.no_grad()
def log_prob_change(aligner, trajectory, steps) -> torch.Tensor:
    """Per sample [B]: the log-probability of its stored `steps` under the current weights minus the stored one."""
    rescored = [
        aligner.policy.step_log_prob(trajectory, torch.full((trajectory.batch_size,), step), aligner.sampler)
        - trajectory.log_probs[step]
        for step in steps
    ]
    return torch.stack(rescored).sum(dim=0)
