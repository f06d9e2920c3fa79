"""Import every module that registers aligners, rewards, base models and prompt sets."""

from __future__ import annotations

import importlib

REGISTERING_MODULES = (
    "vaderbench.algorithms",
    "vaderbench.rewards",
    "vaderbench.models.toy",
)


def load_all() -> None:
    for module in REGISTERING_MODULES:
        importlib.import_module(module)
