"""Denoiser speed of a base model: forward and forward+backward at batch 4 x 8 frames, per resolution.

    python analysis/bench_denoiser.py                  # the shipped toy model (toy-random if not built)
    python analysis/bench_denoiser.py --model toy-random --sizes 16 32 64 --precision no bf16

Prints one row per (resolution, precision): median milliseconds over repeats, with LoRA adapters in
place as in training, measured side by side in one process so that the ratios hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from vaderbench.policy import Policy
from vaderbench.registry import MODELS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--precision", nargs="+", default=["no", "bf16"], choices=["no", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        model = MODELS.get(args.model)()
    except FileNotFoundError as error:
        print(f"{error}; benchmarking toy-random (same architecture) instead")
        model = MODELS.get("toy-random")()
    policy = Policy(model, lora_rank=8)
    denoiser_params = sum(p.numel() for p in model.denoiser.parameters())
    print(f"model {args.model}: denoiser {denoiser_params / 1e6:.3f} M parameters "
          f"({sum(p.numel() for p in policy.trainable_parameters())} LoRA), torch threads {torch.get_num_threads()}")
    print(f"{'size':>5} {'precision':>9} {'forward ms':>11} {'fwd+bwd ms':>11}")
    condition = model.encode_prompts(["a red circle moving left on a blue background"] * args.batch)
    t = torch.randint(0, 1000, (args.batch,), generator=torch.Generator().manual_seed(0))
    for size in args.sizes:
        x = torch.randn(args.batch, *model.latent_shape(args.frames, size, size))
        for precision in args.precision:
            def autocast():
                if precision == "no":
                    return contextlib.nullcontext()
                return torch.autocast(model.device.type, dtype=DTYPES[precision])

            def forward():
                with torch.no_grad(), autocast():
                    model.predict_noise(x, t, condition)

            def forward_backward():
                with autocast():
                    out = model.predict_noise(x, t, condition)
                out.float().square().mean().backward()

            print(f"{size:>5} {precision:>9} {median_ms(forward, args.repeats):>11.1f} "
                  f"{median_ms(forward_backward, args.repeats):>11.1f}")


if __name__ == "__main__":
    main()
