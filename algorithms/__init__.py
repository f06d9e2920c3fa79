"""Aligners, registered by name (installed as `vaderbench.algorithms`)."""
