"""Denoiser speed of a base model: time, counted FLOPs, GFLOP/s and the share of this machine's fp32 matmul peak.

    python analysis/bench_denoiser.py                        # the shipped toy model, 1 thread (as in the study)
    python analysis/bench_denoiser.py --baseline main        # side by side with toy.py as it is at a revision
    python analysis/bench_denoiser.py --baseline main --aligners vader ddpo dpo   # also whole aligner steps
    python analysis/bench_denoiser.py --model toy-random --threads 2 --sizes 64 --precision no bf16

One row per (size, batch, pass, precision): "fwd" is a forward without gradient (sampling, evaluation),
"fwd+bwd" a forward and a backward to the LoRA adapters (in place as in training). The FLOPs are counted
by `torch.utils.flop_counter` (matmuls, convolutions, attention; not the elementwise ops) and the peak
is a large fp32 `torch.mm` timed in the same run at the same thread count. Times are medians over
repeats, the variants run interleaved in one process so that their ratio holds on a shared machine;
`--clock cpu` times the process's CPU time instead of the wall clock (steadier while others run).

`--baseline REV` loads `vaderbench/models/toy.py` as it is at git revision REV into a temporary module
(`git show`), builds the same model from it (same weights, same adapters) and times both; the last
column is the largest difference of its output (fwd) or LoRA gradients (fwd+bwd) from the baseline's,
relative to the baseline's largest value. `--aligners` times one whole `step` of each named method with
the settings of `--study` (the efficiency study: batch 4, 10 DDIM steps, 4 frames) at `--aligner-size`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from vaderbench.policy import Policy
from vaderbench.registry import ALIGNERS, MODELS

REPO = Path(__file__).resolve().parent.parent
TOY_SOURCE = "vaderbench/models/toy.py"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PROMPT = "a red circle moving left on a blue background"


def cpu_description() -> str:
    """The CPU model and whether it has the instructions that decide which kernels run."""
    model, flags = platform.processor() or "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return f"{model}; " + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, clock: str) -> dict[str, float]:
    """Median seconds of each function, run in turn (after one warm-up each) so drifts hit all alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = CLOCKS[clock]()
            fn()
            times[name].append(CLOCKS[clock]() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_peak_gflops(clock: str, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / interleaved_medians({"mm": lambda: torch.mm(a, b)}, repeats, clock)["mm"] / 1e9


def counted_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def models_at_revision(rev: str) -> dict[str, Callable]:
    """The model factories `toy.py` registers at git revision `rev`, loaded without registering them."""
    shown = subprocess.run(["git", "show", f"{rev}:{TOY_SOURCE}"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode:
        sys.exit(f"--baseline {rev}: git cannot show {TOY_SOURCE} there ({shown.stderr.strip()})")
    module = types.ModuleType(f"toy_at_{rev}")
    sys.modules[module.__name__] = module
    factories = {}
    # the old file registers its factories under the names the current one holds: collect them instead
    register = lambda name, summary=None: lambda factory: factories.setdefault(name, factory)  # noqa: E731
    with mock.patch.object(MODELS, "register", register):
        exec(compile(shown.stdout, f"{rev}:{TOY_SOURCE}", "exec"), module.__dict__)
    return factories


def build_variants(args) -> dict[str, Callable]:
    """Variant label -> model factory: the current code, and the baseline revision's if asked for."""
    name = args.model
    try:
        MODELS.get(name)()
    except FileNotFoundError as error:
        print(f"{error}; benchmarking toy-random (same architecture) instead")
        name = "toy-random"
    variants = {"now": MODELS.get(name)}
    if args.baseline:
        old = models_at_revision(args.baseline)
        if name not in old:
            sys.exit(f"--baseline {args.baseline}: {TOY_SOURCE} there does not register model {name!r}")
        variants[args.baseline] = old[name]
    return variants


def relative_difference(value: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    scale = max(r.abs().max().item() for r in reference)
    return max((v - r).abs().max().item() for v, r in zip(value, reference)) / max(scale, 1e-30)


def bench_denoiser(args, variants: dict[str, Callable], peak: float) -> None:
    policies = {label: Policy(factory(), lora_rank=8) for label, factory in variants.items()}
    now = policies["now"]
    for policy in policies.values():  # random adapters (not B = 0 as initialised): every LoRA gradient is non-zero
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for p in policy.trainable_parameters():
                p.normal_(0, 0.02)
    lora = sum(p.numel() for p in now.trainable_parameters())
    print(
        f"denoiser {sum(p.numel() for p in now.model.denoiser.parameters()) / 1e6:.3f} M parameters "
        f"({lora} LoRA), {args.frames} frames"
    )
    labels = list(policies)
    base = labels[-1] if len(labels) > 1 else None
    header = f"{'size':>4} {'batch':>5} {'pass':>7} {'prec':>4} {'GFLOP':>7} | "
    header += " ".join(f"{label[:10] + ' ms':>13}" for label in labels)
    header += f" {'speedup':>7} | " if base else " | "
    header += " ".join(f"{label[:10] + ' GF/s':>15}" for label in labels) + " | "
    header += " ".join(f"{label[:10] + ' %pk':>14}" for label in labels)
    print(header + (f" | {'rel diff':>8}" if base else ""))
    for size in args.sizes:
        for batch in args.batches:
            generator = torch.Generator().manual_seed(size * 1000 + batch)
            x = torch.randn(batch, *now.model.latent_shape(args.frames, size, size), generator=generator)
            t = torch.randint(0, 1000, (batch,), generator=generator)
            condition = now.model.encode_prompts([PROMPT] * batch)
            for precision in args.precision:
                autocast = (
                    (lambda: contextlib.nullcontext())
                    if precision == "no"
                    else (lambda: torch.autocast("cpu", dtype=DTYPES[precision]))
                )

                def forward(policy):
                    with torch.no_grad(), autocast():
                        return [policy.model.predict_noise(x, t, condition).float()]

                def forward_backward(policy):
                    params = policy.trainable_parameters()
                    with autocast():
                        out = policy.model.predict_noise(x, t, condition)
                    return list(torch.autograd.grad(out.float().square().mean(), params))

                for name, run in (("fwd", forward), ("fwd+bwd", forward_backward)):
                    flops = counted_flops(lambda: run(now))
                    took = interleaved_medians(
                        {k: (lambda p=p: run(p)) for k, p in policies.items()}, args.repeats, args.clock
                    )
                    row = f"{size:>4} {batch:>5} {name:>7} {precision:>4} {flops / 1e9:>7.2f} | "
                    row += " ".join(f"{1000 * took[k]:>13.1f}" for k in labels)
                    row += f" {took[base] / took['now']:>6.2f}x | " if base else " | "
                    row += " ".join(f"{flops / took[k] / 1e9:>15.1f}" for k in labels) + " | "
                    row += " ".join(f"{100 * flops / took[k] / 1e9 / peak:>13.1f}%" for k in labels)
                    if base:
                        row += f" | {relative_difference(run(now), run(policies[base])):>8.1e}"
                    print(row, flush=True)


def bench_aligners(args, variants: dict[str, Callable]) -> None:
    """One whole `step` of each method, with the study's settings, per variant (the model swapped in by name)."""
    from vaderbench.experiment.load import load_experiment
    from vaderbench.prompts import load_prompts
    from vaderbench.runner.trial import build_trial_aligner, train_batch

    names = {}
    for label, factory in variants.items():
        names[label] = f"bench-{label}"
        MODELS.register(names[label])(factory)
    trials = [
        trial
        for trial in load_experiment(args.study, force=True).trials
        if trial.height == args.aligner_size and trial.seed == 0 and trial.aligner in args.aligners
    ]
    print(
        f"\none aligner step, {args.study} at {args.aligner_size} px "
        f"(median of {args.aligner_repeats}, s, {args.clock} clock)"
    )
    header = f"{'method':>8} " + " ".join(f"{label[:10]:>10}" for label in variants)
    print(header + (" speedup" if len(variants) > 1 else ""))
    for trial in trials:
        aligners = {
            label: build_trial_aligner(dataclasses.replace(trial, model=name), torch.device("cpu"))
            for label, name in names.items()
        }
        prompts = train_batch(load_prompts(trial.prompts.train), aligners["now"].prompts_per_step, trial.seed, 0)
        took = interleaved_medians(
            {k: (lambda a=a: a.step(prompts)) for k, a in aligners.items()}, args.aligner_repeats, args.clock
        )
        row = f"{trial.aligner:>8} " + " ".join(f"{took[k]:>10.2f}" for k in variants)
        if len(variants) > 1:
            row += f" {took[list(variants)[-1]] / took['now']:>6.2f}x"
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy", help="a registered model (toy-random if toy's weights are missing)")
    parser.add_argument("--baseline", metavar="REV", help="also time toy.py as it is at this git revision")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study runs each trial on 1)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[8, 16],
        help="denoiser batch: 8 = 4 videos x guidance (training), 16 = evaluation's 8 videos x 2",
    )
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--precision", nargs="+", default=["no"], choices=["no", "bf16", "fp16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="time by the wall clock or CPU time")
    parser.add_argument("--aligners", nargs="*", default=[], choices=ALIGNERS.names())
    parser.add_argument("--study", default=str(REPO / "experiments" / "efficiency.yaml"))
    parser.add_argument("--aligner-size", type=int, default=64)
    parser.add_argument("--aligner-repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_description()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    peak = matmul_peak_gflops(args.clock)
    print(f"fp32 matmul peak (2048^3 torch.mm, {args.clock} clock): {peak:.1f} GFLOP/s")
    variants = build_variants(args)
    bench_denoiser(args, variants, peak)
    if args.aligners:
        bench_aligners(args, variants)
    print(f"fp32 matmul peak again at the end: {matmul_peak_gflops(args.clock):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
