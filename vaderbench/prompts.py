"""Prompt sets: a registered name (factories in PROMPT_SETS return a list of prompts) or a text file."""

from __future__ import annotations

from pathlib import Path

from vaderbench.registry import PROMPT_SETS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def load_prompts(name_or_path: str) -> list[str]:
    """Prompts of a registered set, of a UTF-8 file with one prompt per line (blank lines skipped), or of a
    folder of images: their paths, sorted (the image prompts of image-to-video models such as `svd`)."""
    if name_or_path in PROMPT_SETS:
        prompts = list(PROMPT_SETS.get(name_or_path)())
    elif Path(name_or_path).is_dir():
        prompts = sorted(str(p.resolve()) for p in Path(name_or_path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif Path(name_or_path).is_file():
        prompts = [line.strip() for line in Path(name_or_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        known = ", ".join(PROMPT_SETS.names()) or "none registered"
        raise ValueError(
            f"unknown prompt set {name_or_path!r}: neither a registered set ({known}), a file nor a folder"
        )
    if not prompts:
        raise ValueError(f"prompt set {name_or_path!r} is empty")
    return prompts
