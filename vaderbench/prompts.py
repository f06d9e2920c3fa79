"""Prompt sets: a registered name (factories in PROMPT_SETS return a list of prompts) or a text file."""

from __future__ import annotations

from pathlib import Path

from vaderbench.registry import PROMPT_SETS


def load_prompts(name_or_path: str) -> list[str]:
    """Prompts of a registered set, or of a UTF-8 file with one prompt per line (blank lines skipped)."""
    if name_or_path in PROMPT_SETS:
        prompts = list(PROMPT_SETS.get(name_or_path)())
    elif Path(name_or_path).is_file():
        prompts = [line.strip() for line in Path(name_or_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        known = ", ".join(PROMPT_SETS.names()) or "none registered"
        raise ValueError(f"unknown prompt set {name_or_path!r}: neither a registered set ({known}) nor a file")
    if not prompts:
        raise ValueError(f"prompt set {name_or_path!r} is empty")
    return prompts
