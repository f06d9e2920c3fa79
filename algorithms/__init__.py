"""Aligners, registered by name (installed as `vaderbench.algorithms`): one module per method."""

from vaderbench.algorithms import ddpo, dpo, grpo, vader  # noqa: F401  (registers)
