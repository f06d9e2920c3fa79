"""Aligners, registered by name (installed as `vaderbench.algorithms`): one module per method."""

from vaderbench.algorithms import ddpo, dpo, vader  # noqa: F401  (registers)
