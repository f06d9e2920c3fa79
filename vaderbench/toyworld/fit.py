"""The one optimisation loop every toy model is trained with: AdamW, warm-up then cosine decay, a progress bar."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from tqdm import tqdm


def fit(
    parameters: Iterable[torch.nn.Parameter],
    loss_at: Callable[[int], torch.Tensor],
    steps: int,
    lr: float,
    desc: str,
    warmup: int = 100,
    weight_decay: float = 0.01,
) -> float:
    """Minimise `loss_at(step)` for `steps` steps; returns the mean loss of the last 10% of steps."""
    parameters = list(parameters)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    tail, tail_start = [], int(steps * 0.9)
    with tqdm(range(steps), desc=desc, mininterval=2.0) as bar:
        for step in bar:
            loss = loss_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            if step >= tail_start:
                tail.append(loss.item())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
    return sum(tail) / max(1, len(tail))
