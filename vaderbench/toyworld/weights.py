"""The shipped weights of the toy world: safetensors files (no pickle) beside the package code.

Layout of `vaderbench/toyworld/weights/`: `base/` (the text-to-video model, diffusers' layout) and one
`<name>.safetensors` + `<name>.json` (its constructor config) per reward network. A missing or corrupt
file raises `ToyWeightsError`, a FileNotFoundError whose message says how to rebuild.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads WEIGHTS_DIR to build its parser: it should not pay for torch
    from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REBUILD = "rebuild them with `vaderbench toyworld build` (the base model alone: about 45 minutes on a 2-core CPU)"


class ToyWeightsError(FileNotFoundError):
    """The toy world's weights are missing or unreadable."""


def save_network(network: nn.Module, name: str, config: dict, directory: Path = WEIGHTS_DIR) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_config(name: str, directory: Path = WEIGHTS_DIR) -> dict:
    path = directory / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ToyWeightsError(f"toy weights config {path} is missing or corrupt ({error}); {REBUILD}") from None


def load_network(network: nn.Module, name: str, directory: Path = WEIGHTS_DIR) -> nn.Module:
    """Fill `network` from `<name>.safetensors` (strict: every tensor must match) and freeze it."""
    from safetensors.torch import load_file

    path = directory / f"{name}.safetensors"
    try:
        network.load_state_dict(load_file(str(path)))
    except Exception as error:  # safetensors raises its own error types for truncated or garbled files
        raise ToyWeightsError(f"toy weights {path} are missing or corrupt ({error}); {REBUILD}") from None
    return network.requires_grad_(False).eval()
