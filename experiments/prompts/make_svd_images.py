"""Writes the example conditioning images of `svd_vjepa.yaml` (toy-world scenes at SVD's 576x1024).

    python experiments/prompts/make_svd_images.py
Replace them with your own images for a real study: any PNG/JPEG in prompts/svd_images/ is a prompt.
"""

from pathlib import Path

import imageio.v3 as iio
import torch

from vaderbench.toyworld.render import random_scenes, render

OUT = Path(__file__).resolve().parent / "svd_images"

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    scenes = random_scenes(4, torch.Generator().manual_seed(0))
    first_frames = render(scenes, 1, 64)[:, 0]  # [N, C, 64, 64] in [0, 1]
    images = torch.nn.functional.interpolate(first_frames, size=(576, 1024), mode="bilinear", align_corners=False)
    for i, image in enumerate(images):
        iio.imwrite(OUT / f"scene_{i}.png", (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
