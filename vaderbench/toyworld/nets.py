"""The toy reward models' networks. Each takes frames in [0, 1] at any resolution and resizes them in torch.

- `build_toy_clip`: a tiny open_clip `CLIP` (custom config, word-level text tower) and its tokenizer;
- `ShapeDetector`: per-frame multi-label classifier of which shapes and object colours are present;
- `DirectionClassifier`: a small (2+1)D video CNN over frames and frame differences -> motion direction;
- `AestheticHead`: an MLP on the toy CLIP's unit image embedding -> aesthetic score (LAION's recipe);
- `FramePredictor`: predicts a frame's CLIP embedding from the two before it (V-JEPA-style, in feature space).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vaderbench.models.toy import WordTokenizer
from vaderbench.rewards.preprocess import resize, sample_frames
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, VOCAB

INPUT_SIZE = 32  # every toy reward model looks at 32x32 frames
CLIP_CONTEXT = 16

CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": INPUT_SIZE,
        "patch_size": 4,
        "width": 96,
        "layers": 3,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": CLIP_CONTEXT,
        "vocab_size": len(VOCAB) + 3,  # padding, unknown word, the words, end of text
        "width": 64,
        "heads": 4,
        "layers": 2,
        "mlp_ratio": 2.0,
    },
}


def frames_to_input(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] -> 32x32 in [-1, 1] (antialiased bilinear resize: differentiable)."""
    return resize(images, (INPUT_SIZE, INPUT_SIZE), mode="bilinear") * 2 - 1


class ClipTokenizer:
    """The toy vocabulary's word ids followed by an end-of-text id, the largest id (open_clip pools on argmax)."""

    def __init__(self):
        self.words = WordTokenizer(VOCAB, CLIP_CONTEXT - 1)
        self.eot = len(VOCAB) + 2

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        ids = self.words(texts)
        ids = torch.cat([ids, torch.zeros(len(texts), 1, dtype=torch.long)], dim=1)
        ids[torch.arange(len(texts)), (ids != 0).sum(dim=1)] = self.eot
        return ids


def build_toy_clip(config: dict = CLIP_CONFIG) -> nn.Module:
    from open_clip.model import CLIP

    return CLIP(**config)


class ShapeDetector(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Linear(4 * w, len(SHAPES) + len(COLOURS))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [N, shapes + colours] of presence for frames [N, 3, H, W] in [0, 1]."""
        return self.head(self.net(frames_to_input(images)).amax(dim=(2, 3)))


class DirectionClassifier(nn.Module):
    frames = 8  # clips are resampled to this many frames

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv3d(6, w, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), nn.SiLU(),
            nn.Conv3d(w, 2 * w, 3, stride=(1, 2, 2), padding=1), nn.SiLU(),
            nn.Conv3d(2 * w, 2 * w, 3, stride=(1, 2, 2), padding=1), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Linear(2 * w, len(DIRECTIONS))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Logits [B, directions] for videos [B, F, 3, H, W] in [0, 1] (F >= 2)."""
        clip = sample_frames(frames, self.frames)
        b, f = clip.shape[:2]
        x = frames_to_input(clip.flatten(0, 1)).view(b, f, 3, INPUT_SIZE, INPUT_SIZE)
        motion = torch.cat([x[:, 1:] - x[:, :-1], torch.zeros_like(x[:, :1])], dim=1)
        h = self.net(torch.cat([x, motion], dim=2).transpose(1, 2))
        return self.head(h.mean(dim=(2, 3, 4)))


class AestheticHead(nn.Module):
    def __init__(self, embed_dim: int = CLIP_CONFIG["embed_dim"], hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.mlp(embedding).squeeze(-1)


class FramePredictor(nn.Module):
    context = 2  # frames of context per prediction

    def __init__(self, embed_dim: int = CLIP_CONFIG["embed_dim"], hidden: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(self.context * embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, embed_dim))

    def error(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Mean (1 - cosine) between each frame's unit embedding [B, F, D] and its prediction: [B]."""
        f = embeddings.shape[1]
        if f <= self.context:
            raise ValueError(f"the consistency model needs at least {self.context + 1} frames, got {f}")
        context = torch.cat([embeddings[:, i : f - self.context + i] for i in range(self.context)], dim=-1)
        predicted = F.normalize(self.mlp(context), dim=-1)
        return (1 - (predicted * embeddings[:, self.context :]).sum(-1)).mean(dim=1)


class FrameCritic(nn.Module):
    """A per-frame score from the pixels at their own resolution: one full-resolution convolution, three
    strided or deeper ones, then mean- and max-pooled features into an MLP. Fully convolutional, so it reads
    16 px and 64 px frames alike and sees pixel-level defects that a resize to 32 px would blur away."""

    def __init__(self, width: int = 16, hidden: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(8 * w, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Scores [N] of frames [N, 3, H, W] in [0, 1]."""
        h = self.net(images * 2 - 1)
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)).squeeze(-1)


class CriticEnsemble(nn.Module):
    """Independently trained `FrameCritic`s; `forward` gives every member's score [M, N]."""

    def __init__(self, members: int = 4, width: int = 16, hidden: int = 64):
        super().__init__()
        self.members = nn.ModuleList(FrameCritic(width, hidden) for _ in range(members))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members])
