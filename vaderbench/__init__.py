"""vaderbench: benchmark reward-gradient, policy-gradient and preference alignment of video diffusion models.

The seams, importable from the top: `Aligner` (and `build_aligner`), `Policy`, `VideoModel`, `Reward`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Aligner": "vaderbench.aligner",
    "AlignerConfig": "vaderbench.aligner",
    "build_aligner": "vaderbench.aligner",
    "Policy": "vaderbench.policy",
    "SamplerSettings": "vaderbench.policy",
    "VideoModel": "vaderbench.models.base",
    "Reward": "vaderbench.rewards.base",
    "build_reward": "vaderbench.rewards.base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # imported on first use: `import vaderbench` (and the CLI's start) stays light
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vaderbench' has no attribute {name!r}")
