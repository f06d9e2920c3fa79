"""Import every module that registers aligners, rewards, base models and prompt sets."""

from __future__ import annotations

import importlib

REGISTERING_MODULES = (
    "vaderbench.algorithms",
    "vaderbench.rewards",
    "vaderbench.models.toy",
    "vaderbench.models.modelscope",
    "vaderbench.models.svd",
    "vaderbench.models.cogvideox",
    "vaderbench.rewards.aesthetic",
    "vaderbench.rewards.hpsv2",
    "vaderbench.rewards.pickscore",
    "vaderbench.rewards.yolos",
    "vaderbench.rewards.videomae",
    "vaderbench.rewards.vjepa",
    "vaderbench.toyworld.prompts",
    "vaderbench.rewards.toy_clip",
    "vaderbench.rewards.toy_aesthetic",
    "vaderbench.rewards.toy_object_removal",
    "vaderbench.rewards.toy_action",
    "vaderbench.rewards.toy_consistency",
)


def load_all() -> None:
    for module in REGISTERING_MODULES:
        importlib.import_module(module)
