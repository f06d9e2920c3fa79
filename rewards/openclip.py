"""open_clip models for the CLIP-based rewards (aesthetic, HPSv2): built by name, weights from a file.

`create_model(name, pretrained=None)` then `load_state_dict` avoids the `hpsv2` package (it pins old
pytest and protobuf) and open_clip's own downloads; the weight file is the reward's option.
"""

from __future__ import annotations

import torch
from torch import nn

from vaderbench.rewards.checkpoints import load_state_dict
from vaderbench.rewards.preprocess import resize_crop_normalize


class OpenClipImageInput(nn.Module):
    """The model's own eval transform (shortest edge, centre crop, normalise) on tensors in [0, 1]."""

    def __init__(self, model):
        super().__init__()
        import open_clip

        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg["size"]
        self.crop = (size, size) if isinstance(size, int) else tuple(size)
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.interpolation = cfg.get("interpolation", "bicubic")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return resize_crop_normalize(images, min(self.crop), self.crop, self.mean, self.std, self.interpolation)


def load_open_clip(model_name: str, checkpoint: str, key: str | None = None) -> nn.Module:
    import open_clip

    model = open_clip.create_model(model_name, pretrained=None)
    model.load_state_dict(load_state_dict(checkpoint, key))
    return model


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)
