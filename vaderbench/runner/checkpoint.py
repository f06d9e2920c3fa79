"""A trial's checkpoints: the aligner's whole state, so that a resumed trial continues exactly.

One checkpoint folder:

    lora.safetensors   the trained LoRA weights (peft's state-dict names)
    state.pt           optimizer, ledger, round counter, the aligner's RNG, method state (stat tracker,
                       replay buffer): torch.save of our own objects, read back only from our own folders
    progress.json      step, wall time and device time spent so far

A trial keeps its checkpoints in a folder of its own (`CheckpointStore`), named by its trial id under the
sweep's storage, so that a retried trial (a worker killed) and a resumed sweep (`vaderbench run --resume`)
find them the same way, whether the trial ran in the Tune trial's own process or on Ray Train workers.
A checkpoint is written into a temporary folder and renamed into place: a write interrupted part-way
leaves no folder under a checkpoint's name, and the previous checkpoint is the one restored. On a
cluster of several machines the storage must be a file system every node mounts at the same path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vaderbench.aligner import Aligner

PREFIX = "checkpoint-"


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


class CheckpointStore:
    """`checkpoint-<step>` folders of one trial, the newest `keep` kept."""

    def __init__(self, root: Path, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.root, self.keep = Path(root), keep

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (temporary folders of interrupted writes are not listed)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
        return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """`write(folder)` fills a temporary folder, which then becomes `checkpoint-<step>` in one rename."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f".{PREFIX}*.partial"):  # left by a write that was killed part-way
            shutil.rmtree(stale, ignore_errors=True)
        target = self.root / f"{PREFIX}{step:06d}"
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=self.root))
        try:
            write(partial)
            if target.exists():  # the same step written again by a retried attempt: the new one replaces it
                shutil.rmtree(target)
            os.rename(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        for old in self.checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target
