"""A trial's checkpoint folder: the aligner's whole state, so that a resumed trial continues exactly.

    lora.safetensors   the trained LoRA weights (peft's state-dict names)
    state.pt           optimizer, ledger, round counter, the aligner's RNG, method state (stat tracker,
                       replay buffer): torch.save of our own objects, read back only from our own folders
    progress.json      step, wall time and device time spent so far
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vaderbench.aligner import Aligner


def save_checkpoint(directory: Path, aligner: Aligner, progress: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = aligner.state_dict()
    save_file({k: v.contiguous() for k, v in state.pop("lora").items()}, str(directory / "lora.safetensors"))
    torch.save(state, directory / "state.pt")
    (directory / "progress.json").write_text(json.dumps(progress, indent=2) + "\n")


def load_checkpoint(directory: Path, aligner: Aligner) -> dict[str, Any]:
    """Restore `aligner` from `directory`; returns the progress it was saved with."""
    state = torch.load(directory / "state.pt", map_location=aligner.policy.model.device, weights_only=False)
    state["lora"] = load_file(str(directory / "lora.safetensors"), device=str(aligner.policy.model.device))
    aligner.load_state_dict(state)
    return json.loads((directory / "progress.json").read_text())
