"""How far a trial moves when PyTorch's CPU kernels change instruction set, against how far another seed moves it.

A study's verdicts should hold on any CPU of its machine kind, but CPUs of one kind differ in their instruction
sets (AVX-512 with bf16, AVX-512 without, AVX2 only) and PyTorch picks its kernels by them: sums come out in a
different order, rounded differently. A method that amplifies such differences (DDPO at a learning rate near
its instability) follows another trajectory on another CPU. This script runs one trial of an experiment file
three times, each in a child process of its own on the torch threads of a study's worker
(`resources.cpus_per_worker`):

    native    PyTorch's kernels for this CPU
    avx2      the same, with ATen's kernels limited to AVX2 (`ATEN_CPU_CAPABILITY=avx2`, read when torch is
              imported, hence the child process); `--limit-blas` also limits MKL's and oneDNN's (the matmuls
              and convolutions), as a CPU without AVX-512 would
    seed+1    native kernels, the next seed: the scale that a difference between CPUs is measured against

and prints, per evaluation, the held-out learned reward and gold of each, |native - avx2| and
|native - seed+1|. A rounding difference far below the seed difference leaves the verdicts alone; one of
the same size means the trial's result on another CPU is as good as another draw. On a CPU without AVX-512
the native kernels already are AVX2: the first two runs are the same, and the check says so.

    python analysis/cpu_rounding.py                                   # ddpo of experiments/efficiency.yaml
    python analysis/cpu_rounding.py --resolution 16 --set lr=1e-3 --json runs/cpu_rounding.json
    python analysis/cpu_rounding.py experiments/efficiency_flow.yaml --method grpo --resolution 16

The trial is the study's grid trial of the method, resolution and seed (the file's first when not given),
with `--set key=value` applied as sweep keys are (`lr`, `policy.precision`, `methods.ddpo.inner_epochs`, ...)
and its budget cut to `--evaluations` evaluations (`eval.every` steps each) unless `--steps` says otherwise.
A tuned method runs at the learning rate its entry gives, not at the tuning stage's choice: set it with
`--set lr=...` to check the choice a study made.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from vaderbench.experiment.grid import Trial, resolve
from vaderbench.experiment.load import load_experiment
from vaderbench.experiment.yamlfile import SettingsLoader
from vaderbench.metrics import EVAL_GOLD_MEAN, EVAL_REWARD_MEAN
from vaderbench.provenance import cpu_flags, cpu_model

REPO = Path(__file__).resolve().parent.parent
#: the environment variable PyTorch reads, on import, for the highest instruction set of its ATen kernels
ATEN_CAPABILITY = "ATEN_CPU_CAPABILITY"
#: MKL's and oneDNN's own limits, for `--limit-blas`
BLAS_LIMITS = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
#: what `torch.backends.cpu.get_cpu_capability()` reports when the AVX2 kernels run
AVX2 = "AVX2"
#: the evaluation metrics compared: the learned reward a method optimises and, in the toy world, the gold
COMPARED = (EVAL_REWARD_MEAN, EVAL_GOLD_MEAN)
NATIVE, LIMITED, NEXT_SEED = "native", "avx2", "seed+1"


def variant_environment(capability: str | None, limit_blas: bool = False) -> dict[str, str]:
    """This process's environment for a child whose ATen kernels go up to `capability` (None: the CPU's own)."""
    env = {k: v for k, v in os.environ.items() if k != ATEN_CAPABILITY and k not in BLAS_LIMITS}
    if capability is not None:
        env[ATEN_CAPABILITY] = capability
        if limit_blas:
            env |= BLAS_LIMITS
    return env


def run_variant(
    trial: Trial, capability: str | None = None, *, threads: int = 1, limit_blas: bool = False
) -> dict[str, Any]:
    """`trial` run whole on `threads` torch threads in a child process (this script's `--child`): the kernel
    capability torch reports there and {step: {metric: value}} of every evaluation."""
    with tempfile.TemporaryDirectory(prefix="cpu-rounding-") as folder:
        trial_path, result_path = Path(folder) / "trial.json", Path(folder) / "result.json"
        trial_path.write_text(json.dumps({"trial": trial.to_dict(), "threads": threads}))
        finished = subprocess.run(
            [sys.executable, __file__, "--child", str(trial_path), str(result_path)],
            env=variant_environment(capability, limit_blas),
            cwd=REPO,
        )
        if finished.returncode != 0:
            raise SystemExit(f"the run of {trial.id} with kernels {capability or 'native'} failed (above)")
        result = json.loads(result_path.read_text())
    result["evaluations"] = {int(step): values for step, values in result["evaluations"].items()}
    return result


def child(trial_path: Path, result_path: Path) -> None:
    """The trial in this process as a study's one-worker trial runs it, without Ray; writes what `run_variant`
    returns."""
    import torch

    from vaderbench.runner.checkpoint import CheckpointStore
    from vaderbench.runner.trial import run_trial

    given = json.loads(trial_path.read_text())
    torch.set_num_threads(given["threads"])
    reports = []
    with tempfile.TemporaryDirectory(prefix="cpu-rounding-checkpoints-") as checkpoints:
        run_trial(Trial.from_dict(given["trial"]), reports.append, CheckpointStore(Path(checkpoints)))
    evaluations = {
        report["step"]: {key: report[key] for key in COMPARED if key in report}
        for report in reports
        if EVAL_REWARD_MEAN in report
    }
    result_path.write_text(
        json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "evaluations": evaluations})
    )


def compare(
    native: dict[int, dict[str, float]], limited: dict[int, dict[str, float]], next_seed: dict[int, dict[str, float]]
) -> list[dict[str, Any]]:
    """Per evaluation step and compared metric: the three runs' values, the rounding difference |native - avx2|
    and the seed difference |native - seed+1|."""
    rows = []
    for step in sorted(set(native) & set(limited) & set(next_seed)):
        for metric in COMPARED:
            if not all(metric in run[step] for run in (native, limited, next_seed)):
                continue
            here = native[step][metric]
            rows.append(
                {
                    "step": step,
                    "metric": metric,
                    NATIVE: here,
                    LIMITED: limited[step][metric],
                    NEXT_SEED: next_seed[step][metric],
                    "rounding": abs(here - limited[step][metric]),
                    "seed": abs(here - next_seed[step][metric]),
                }
            )
    return rows


def largest(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per metric, the largest rounding and seed differences over the evaluations after step 0 (the base
    model's evaluation is the same for every seed: no training has happened)."""
    found: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["step"] == 0:
            continue
        worst = found.setdefault(row["metric"], {"rounding": 0.0, "seed": 0.0})
        worst["rounding"] = max(worst["rounding"], row["rounding"])
        worst["seed"] = max(worst["seed"], row["seed"])
    return found


def chosen_trials(args: argparse.Namespace) -> tuple[Trial, Trial, int]:
    """The grid trial of `--method` at `--resolution` and `--seed` (the file's first of each when not given),
    with the overrides and the cut budget applied the way sweep keys are; the same at the next seed; and the
    torch threads of the study's workers (`resources.cpus_per_worker`)."""
    study = load_experiment(args.experiment, force=True)
    candidates = [t for t in study.trials if t.method == args.method]
    if not candidates:
        methods = ", ".join(dict.fromkeys(t.method for t in study.trials))
        raise SystemExit(f"{args.experiment}: no trial of method {args.method!r} in its grid ({methods})")
    first = candidates[0]
    point = dict(first.point)
    if args.resolution is not None:
        point["resolution"] = args.resolution
    seed = first.seed if args.seed is None else args.seed
    every_queries = None if args.eval_every else first.eval.every_queries
    point["seed"] = seed
    if every_queries:  # the file evaluates by reward queries: the budget is cut in them
        point |= (
            {"budget.steps": args.steps} if args.steps else {"budget.reward_queries": every_queries * args.evaluations}
        )
    else:
        every = args.eval_every or first.eval.every
        point |= {"eval.every": every, "budget.steps": args.steps or every * args.evaluations}
    point |= dict(args.set)
    base = study.experiment.model_dump(mode="python")
    threads = max(1, int(study.experiment.resources.cpus_per_worker))
    try:
        trials = [resolve(base, first.method, first.aligner, {**point, "seed": s}) for s in (seed, seed + 1)]
    except ValueError as error:
        raise SystemExit(f"{args.experiment}: {error}") from None
    return trials[0], trials[1], threads


def schedule(trial: Trial) -> str:
    every_queries = trial.eval.every_queries
    return f"{every_queries} reward queries" if every_queries else f"{trial.eval.every} steps"


def key_value(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), parsed(value)


def parsed(text: str) -> Any:
    """A value as an experiment file would hold it (`SettingsLoader`: `no` stays a word), but `1e-3` a number (the
    loader's YAML 1.1 float rule reads it as a string)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.load(text, Loader=SettingsLoader)  # SettingsLoader is a SafeLoader


def cpu_line() -> str:
    present = set(cpu_flags())
    flags = ", ".join(f"{flag} {'yes' if flag in present else 'no'}" for flag in ("avx2", "avx512f", "avx512_bf16"))
    return f"{cpu_model()}; {flags}; {os.cpu_count() or 1} cores"


def notes(capabilities: dict[str, str]) -> list[str]:
    """What the kernels the children reported mean for the comparison."""
    found = []
    if capabilities[LIMITED] != AVX2:
        found.append(f"the avx2 run reported {capabilities[LIMITED]}: this CPU has no AVX2, nothing was limited")
    elif capabilities[NATIVE] == AVX2:
        found.append(
            "the native kernels already are AVX2 (no AVX-512 here): native and avx2 ran the same kernels, so their "
            "difference says nothing; run the check on a CPU with AVX-512"
        )
    return found


def table(rows: list[dict[str, Any]]) -> str:
    header = f"{'step':>5}  {'metric':<17}{NATIVE:>10}{LIMITED:>10}{NEXT_SEED:>10}  {'|native-avx2|':>14}"
    lines = [header + f"  {'|native-seed+1|':>16}"]
    for row in rows:
        values = "".join(f"{row[name]:10.4f}" for name in (NATIVE, LIMITED, NEXT_SEED))
        lines.append(f"{row['step']:>5}  {row['metric']:<17}{values}  {row['rounding']:14.2e}  {row['seed']:16.2e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", default=str(REPO / "experiments" / "efficiency.yaml"))
    parser.add_argument("--method", default="ddpo", help="method entry of the file (default: ddpo)")
    parser.add_argument("--resolution", type=int, help="pixels (default: the first of the file's grid)")
    parser.add_argument("--seed", type=int, help="the trial's seed (default: the first of the file's grid)")
    parser.add_argument(
        "--set", action="append", type=key_value, default=[], metavar="KEY=VALUE", help="a sweep key, e.g. lr=1e-3"
    )
    parser.add_argument("--evaluations", type=int, default=2, help="evaluations after step 0 (default: 2)")
    parser.add_argument("--eval-every", type=int, help="steps between evaluations (default: the file's)")
    parser.add_argument("--steps", type=int, help="the budget in steps (default: evaluations x eval-every)")
    parser.add_argument("--limit-blas", action="store_true", help="limit MKL and oneDNN to AVX2 too")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)  # TRIAL_JSON RESULT_JSON
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    trial, other_seed, threads = chosen_trials(args)
    print(f"CPU: {cpu_line()}")
    lr = trial.settings.get("lr", "the method's default")
    print(
        f"trial: {trial.id} ({trial.method}, {trial.resolution} px, seed {trial.seed}, lr {lr}, "
        f"{trial.steps} steps, evaluated every {schedule(trial)}), {threads} thread(s)",
        flush=True,
    )
    runs = {
        NATIVE: run_variant(trial, threads=threads),
        LIMITED: run_variant(trial, "avx2", threads=threads, limit_blas=args.limit_blas),
        NEXT_SEED: run_variant(other_seed, threads=threads),
    }
    capabilities = {name: run["capability"] for name, run in runs.items()}
    rows = compare(*(runs[name]["evaluations"] for name in (NATIVE, LIMITED, NEXT_SEED)))
    worst = largest(rows)
    print("kernels: " + ", ".join(f"{name} {capability}" for name, capability in capabilities.items()))
    print(table(rows))
    for metric, found in worst.items():
        share = f"{found['rounding'] / found['seed']:.2g} of it" if found["seed"] else "no seed difference"
        print(
            f"largest after step 0, {metric}: |native-avx2| {found['rounding']:.2e} against |native-seed+1| "
            f"{found['seed']:.2e} ({share})"
        )
    found_notes = notes(capabilities)
    for note in found_notes:
        print(f"note: {note}")
    if args.json:
        figures = {
            "cpu": cpu_line(),
            "trial": {
                "id": trial.id,
                "method": trial.method,
                "resolution": trial.resolution,
                "seed": trial.seed,
                "lr": lr,
                "steps": trial.budget.steps,
                "eval_every": schedule(trial),
                "threads": threads,
                "limit_blas": args.limit_blas,
            },
            "capabilities": capabilities,
            "rows": rows,
            "largest": worst,
            "notes": found_notes,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
