"""Whether a trial fits the Ray cluster's nodes as Ray would place it, and how many fit at once.

A trial with one worker is one bundle {CPU: c, GPU: g} that must fit on one node. A trial with several
workers is its Tune function (one byte of memory: `sweep.DRIVER_BUNDLE`) and one bundle per worker,
which Ray Train places with its PACK strategy: packed on few nodes, but spread when they do not fit on
one, so each bundle needs a node with room for it. A study whose trial fits no way would wait forever;
it is refused before anything starts.
"""

from __future__ import annotations

import math
from typing import Any


def alive_nodes() -> list[dict[str, float]]:
    """Each alive node's resources (CPU, GPU, memory, ...)."""
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def bundles_per_node(nodes: list[dict[str, float]], cpus: float, gpus: float) -> list[int]:
    """How many worker bundles of `cpus` CPUs and `gpus` GPUs each node holds."""
    counts = []
    for resources in nodes:
        fit = math.floor(resources.get("CPU", 0) / cpus + 1e-9)
        if gpus:
            fit = min(fit, math.floor(resources.get("GPU", 0) / gpus + 1e-9))
        counts.append(fit)
    return counts


def trials_at_once(nodes: list[dict[str, float]], workers: int, cpus: float, gpus: float) -> int:
    """Trials that fit side by side (a Train run starts only when all its workers have a place)."""
    return sum(bundles_per_node(nodes, cpus, gpus)) // workers


def misfit(nodes: list[dict[str, float]], resources: dict[str, Any]) -> str | None:
    """Why one trial cannot be placed on these nodes, or None when it can."""
    workers, cpus, gpus = resources["workers"], resources["cpus_per_worker"], resources["gpus_per_worker"]
    if trials_at_once(nodes, workers, cpus, gpus) >= 1:
        return None
    need = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
    have = (
        "; ".join(
            f"node {i}: {n.get('CPU', 0):g} CPU" + (f", {n.get('GPU', 0):g} GPU" if gpus else "")
            for i, n in enumerate(nodes)
        )
        or "no alive node"
    )
    return (
        f"a trial needs {workers} worker(s) of {need} each (a worker's CPUs and GPUs on one node), and the "
        f"cluster has {have}: at most {sum(bundles_per_node(nodes, cpus, gpus))} such worker(s) fit. Lower "
        "resources.workers, cpus_per_worker or gpus_per_worker, or add nodes"
    )
