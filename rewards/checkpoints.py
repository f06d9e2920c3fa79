"""Where a reward's weight file comes from: a local path, a URL, or a file in a Hugging Face repository."""

from __future__ import annotations

from pathlib import Path

import torch


def resolve_checkpoint(spec: str) -> Path:
    """A local file for `spec`: a path, an http(s) URL (downloaded once to torch's hub cache), or
    `owner/repo/filename` (a file of a Hugging Face model repository, through its cache)."""
    if Path(spec).is_file():
        return Path(spec)
    if spec.startswith(("http://", "https://")):
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(spec).name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(spec, str(target))
        return target
    parts = spec.split("/")
    if len(parts) >= 3:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id="/".join(parts[:2]), filename="/".join(parts[2:])))
    raise ValueError(f"checkpoint {spec!r} is neither a file, a URL, nor owner/repo/filename")


def load_state_dict(spec: str, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file, optionally under `key` (HPS checkpoints keep it under 'state_dict')."""
    path = resolve_checkpoint(spec)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None:
        if key not in state:
            raise ValueError(f"checkpoint {str(path)!r} has no key {key!r}; keys: {sorted(state)[:5]}")
        state = state[key]
    return state
