"""The few collective operations the aligners need, written so that one process is the identity case.

Under Ray Train each worker runs the same aligner on its shard of the global batch; gradients of the
LoRA parameters are averaged with all-reduce (plain DDP arithmetic without wrapping the sampler, whose
many denoiser calls per backward do not fit `DistributedDataParallel`'s one-forward model).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def shard(items: Sequence, what: str = "batch") -> list:
    """This worker's share of a global batch (every worker gets the same count)."""
    n, w = len(items), world_size()
    if n % w:
        raise ValueError(f"the global {what} of {n} does not split evenly over {w} workers")
    part = slice(rank() * n // w, (rank() + 1) * n // w)
    return items[part] if isinstance(items, torch.Tensor) else list(items)[part]


def average_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    if not _active():
        return
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world_size()


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally shaped tensors from every worker in rank order (dim 0)."""
    if not _active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def sum_over_workers(value: float) -> float:
    if not _active():
        return value
    total = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total)


def max_over_workers(value: float) -> float:
    """The largest `value` of any worker (also how workers agree on a stop decided from local clocks)."""
    if not _active():
        return value
    largest = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return float(largest)


def gather_objects(value) -> list:
    """Every worker's `value` (any picklable object) in rank order."""
    if not _active():
        return [value]
    found = [None] * world_size()
    dist.all_gather_object(found, value)
    return found
