"""Import every module that registers aligners, rewards, base models and prompt sets.

Ordered from cheap to dear to import: a lookup stops at the first module that registers its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

REGISTERING_MODULES = (
    "vaderbench.algorithms",
    "vaderbench.rewards",
    "vaderbench.toyworld.prompts",
    "vaderbench.models.toy",
    "vaderbench.rewards.toy_clip",
    "vaderbench.rewards.toy_aesthetic",
    "vaderbench.rewards.toy_object_removal",
    "vaderbench.rewards.toy_action",
    "vaderbench.rewards.toy_consistency",
    "vaderbench.models.modelscope",
    "vaderbench.models.svd",
    "vaderbench.models.cogvideox",
    "vaderbench.models.wan",
    "vaderbench.rewards.aesthetic",
    "vaderbench.rewards.hpsv2",
    "vaderbench.rewards.pickscore",
    "vaderbench.rewards.yolos",
    "vaderbench.rewards.videomae",
    "vaderbench.rewards.vjepa",
)


#: the modules that register each kind, where fewer than all of them do: the aligners' names are known without
#: importing every model's and reward's libraries
MODULES_OF_KIND = {"aligner": ("vaderbench.algorithms",)}


def load_all(until: Callable[[], bool] = lambda: False, kind: str | None = None) -> None:
    """Import the modules registering `kind` (all by default) in order, stopping as soon as `until()` holds."""
    for module in MODULES_OF_KIND.get(kind, REGISTERING_MODULES):
        if until():
            return
        importlib.import_module(module)
