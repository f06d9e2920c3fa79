"""Peak memory of one VADER step under the paper's memory switches (its Table 7), on ModelScope.

One step = sample with DDIM (gradient kept through the last K steps), decode frames through the VAE,
score them with a reward, backpropagate into the LoRA weights. The combinations, cumulative as in the
paper: LoRA + mixed precision; + frame subsampling; + truncated backprop; + gradient checkpointing.

Each combination runs in a fresh subprocess, so peaks do not mix: on CPU the peak resident set size
(`getrusage`), minus the resident size before the step (weights, imports) as the step's own share; on
a GPU `torch.cuda.max_memory_allocated`.

    python analysis/memory_ablation.py                               # random ModelScope at small size, CPU
    python analysis/memory_ablation.py --model damo-vilab/text-to-video-ms-1.7b --device cuda \\
        --frames 16 --height 256 --width 256 --steps 25                # the real model on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from vaderbench.models.modelscope import save_small_modelscope

# (label, switches) cumulative, as in the paper's Table 7
COMBINATIONS = [
    ("LoRA + mixed precision", {}),
    ("+ frame subsampling", {"subsample": True}),
    ("+ truncated backprop (K=1)", {"subsample": True, "truncate": True}),
    ("+ gradient checkpointing", {"subsample": True, "truncate": True, "checkpointing": True}),
]


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def run_one(args, switches: dict) -> dict:
    """One VADER step with the given switches; returns the memory it took."""
    from vaderbench.models.modelscope import load_modelscope
    from vaderbench.policy import Policy, SamplerSettings
    from vaderbench.rewards import build_reward

    half = "fp16" if args.device == "cuda" else "bf16"
    model = load_modelscope(args.model, weight_dtype=half, device=args.device)
    policy = Policy(model, lora_rank=4, precision=half, gradient_checkpointing=switches.get("checkpointing", False))
    reward = build_reward(args.reward, args.device)
    sampler = SamplerSettings(num_steps=args.steps, eta=1.0, guidance_scale=7.5)
    grad_from = args.steps - 1 if switches.get("truncate") else 0
    frame_index = torch.tensor([args.frames // 2]) if switches.get("subsample") else None
    prompts = ["a red cat"] * args.batch
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = current_rss_bytes()
    trajectory = policy.sample(
        prompts,
        list(range(args.batch)),
        sampler,
        frames=args.frames,
        height=args.height,
        width=args.width,
        grad_from=grad_from,
    )
    frames = policy.decode(trajectory.final, frame_index)
    (-reward(frames, prompts).mean()).backward()
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": peak, "step_bytes": peak - before}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="ModelScope id or folder (default: a small random one, saved to a temp dir)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reward", default="colourfulness")
    parser.add_argument("--run-one", type=int, help=argparse.SUPPRESS)  # a child process: one combination
    args = parser.parse_args(argv)
    if args.run_one is not None:
        print(json.dumps(run_one(args, COMBINATIONS[args.run_one][1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or save_small_modelscope(Path(tmp) / "modelscope")
        child = [f"--{k}={v}" for k, v in vars(args).items() if k not in ("model", "run_one")]
        results = []
        for i, (label, _) in enumerate(COMBINATIONS):
            out = subprocess.run(
                [sys.executable, __file__, "--model", model, "--run-one", str(i), *child],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append((label, json.loads(out.stdout.strip().splitlines()[-1])))
    base = results[0][1]
    unit = "CUDA peak allocated" if args.device == "cuda" else "peak RSS"
    print(f"{unit}; step = peak minus memory before the step; ratios relative to the first row")
    print(f"{'combination':32s} {'peak MiB':>9s} {'step MiB':>9s} {'peak x':>7s} {'step x':>7s}")
    for label, r in results:
        print(
            f"{label:32s} {r['peak_bytes'] / 2**20:9.1f} {r['step_bytes'] / 2**20:9.1f} "
            f"{r['peak_bytes'] / base['peak_bytes']:7.2f} {r['step_bytes'] / base['step_bytes']:7.2f}"
        )


if __name__ == "__main__":
    main()
