"""Calibration of `vaderbench.experiment.memory`: measured peak memory of one aligner step against the estimate.

Each point runs in a fresh process: load the base model, build the trial's aligner (reward: colourfulness,
which has no weights, as the estimate leaves rewards out; DPO's buffer holds one batch, so that one step
reaches the steady state the estimate describes), take one `step`, and read the peak resident set
size (`getrusage`). The same point's estimate comes from the experiment file's loader. At the end the two
constants of the estimate (BASE_BYTES, ACTIVATION_FACTOR) are fitted by least squares to

    measured - weights - stored = BASE_BYTES + ACTIVATION_FACTOR * kept

and the relative error of every point is printed, with the constants in use and the fitted ones.

    python analysis/calibrate_memory.py            # about 15 minutes on 2 cores
    python analysis/calibrate_memory.py --quick    # three toy points
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tiny real models of the tests

COMMON = {"budget": {"steps": 1}, "eval": {"videos": 1}, "reward": "colourfulness", "seed": 0}


def point(model, method, frames, resolution, steps=4, guidance=2.0, **settings):
    return {
        "model": model,
        "video": {"frames": frames, "resolution": resolution},
        "sampler": {"num_steps": steps, "guidance_scale": guidance},
        "methods": {method: settings},
    }


def points(models: dict[str, str]) -> list[dict]:
    toy, scope, cog, svd = (
        "toy",
        {"name": "modelscope", "path": models["modelscope"]},
        {"name": "cogvideox", "path": models["cogvideox"]},
        {"name": "svd", "path": models["svd"]},
    )
    return [
        point(toy, "vader", 8, 64, batch_size=2),
        point(toy, "vader", 8, 128, batch_size=2, truncation={"k": 2}),
        point(toy, "vader", 8, 256, batch_size=1),
        point(toy, "vader", 16, 128, batch_size=2, micro_batch_size=1, truncation={"k": 3}),
        point(toy, "ddpo", 8, 128, batch_size=4),
        point(toy, "ddpo", 8, 256, batch_size=2, num_steps=2),
        point(toy, "dpo", 8, 128, batch_size=4, group_size=2, pairs_per_update=2, buffer_capacity=4),
        point(toy, "dpo", 8, 256, batch_size=2, group_size=2, pairs_per_update=2, num_steps=2, buffer_capacity=2),
        point(scope, "vader", 8, 128, batch_size=2),
        point(scope, "vader", 8, 128, batch_size=1, truncation={"k": 3}),
        point(scope, "ddpo", 8, 128, batch_size=2),
        point(scope, "dpo", 8, 128, batch_size=2, group_size=2, pairs_per_update=2, buffer_capacity=2),
        point("modelscope-small", "vader", 8, 128, batch_size=2),
        point("modelscope-small", "ddpo", 8, 128, batch_size=2),
        point(cog, "vader", 9, 128, batch_size=2),
        point(cog, "vader", 9, 256, batch_size=1),
        point({**svd, "image_size": [64, 64]}, "vader", 8, 64, batch_size=1),
        point({**svd, "image_size": [64, 64]}, "ddpo", 8, 64, batch_size=2),
    ]


def measure(trial_json: str, prompts_json: str) -> None:
    """In the child process: one step of the trial's aligner; prints the peak resident bytes."""
    import importlib
    import resource

    from vaderbench.aligner import build_aligner
    from vaderbench.experiment.grid import Trial
    from vaderbench.policy import Policy
    from vaderbench.registry import MODELS
    from vaderbench.rewards.base import build_reward

    trial = Trial.from_dict(json.loads(trial_json))
    for module in trial.modules:  # what a trial's worker imports
        importlib.import_module(module)
    policy = Policy(MODELS.get(trial.model_name)(**trial.model_options), **trial.policy.model_dump())
    aligner = build_aligner(
        trial.aligner,
        policy,
        build_reward(trial.reward),
        trial.settings,
        frames=trial.frames,
        height=trial.height,
        width=trial.width,
        seed=trial.seed,
    )
    prompts = json.loads(prompts_json)
    aligner.step([prompts[i % len(prompts)] for i in range(aligner.prompts_per_step)])
    print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def save_models(folder: Path) -> dict[str, str]:
    import numpy as np
    import tiny_models as tm
    from PIL import Image

    if not (folder / "svd" / "scheduler").is_dir():
        tm.save_tiny_modelscope(folder / "modelscope")
        tm.save_tiny_cogvideox(folder / "cogvideox")
        tm.save_tiny_svd(folder / "svd")
    image = folder / "image.png"
    Image.fromarray((np.random.default_rng(0).random((128, 128, 3)) * 255).astype("uint8")).save(image)
    return {name: str(folder / name) for name in ("modelscope", "cogvideox", "svd")} | {"image": str(image)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="three toy points only")
    parser.add_argument("--only", help="the points of this method only (vader, ddpo, dpo)")
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "vaderbench-memory-calibration")
    args = parser.parse_args(argv)

    import numpy as np

    from vaderbench.experiment import memory
    from vaderbench.experiment.load import load_experiment

    models = save_models(args.models)
    chosen = points(models)[:3] if args.quick else points(models)
    chosen = [p for p in chosen if args.only is None or args.only in p["methods"]]
    rows = []
    for data in chosen:
        path = args.models / "point.yaml"
        path.write_text(yaml.safe_dump({**COMMON, **data}))
        (trial,) = load_experiment(path, force=True)[1]
        estimate = memory.estimate_trial_memory(trial)
        prompts = [models["image"]] if "svd" in json.dumps(trial.model) else ["a red circle moving left", "a cat"]
        child = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(trial.to_dict()), json.dumps(prompts)],
            capture_output=True,
            text=True,
        )
        if child.returncode:
            sys.exit(f"{trial.id}: the measurement failed:\n{child.stderr[-3000:]}")
        peak = json.loads(child.stdout.strip().splitlines()[-1])["peak"]
        kept = estimate.activations / memory.ACTIVATION_FACTOR
        rows.append((trial, estimate, kept, peak))
        print(
            f"{trial.id:40s} {trial.frames:3d}x{trial.height:<4d} measured {peak / 2**20:8.0f} MiB  "
            f"estimated {estimate.total / 2**20:8.0f} MiB  ({estimate.total / peak - 1:+.1%})",
            flush=True,
        )

    design = np.array([[1.0, kept] for _, _, kept, _ in rows])
    target = np.array([peak - e.weights - e.stored for _, e, _, peak in rows])
    (base, factor), *_ = np.linalg.lstsq(design, target, rcond=None)
    fitted = [(base + e.weights + factor * kept + e.stored) / peak - 1 for _, e, kept, peak in rows]
    in_use = [e.total / peak - 1 for _, e, _, peak in rows]
    print(
        f"\nin use: BASE_BYTES {memory.BASE_BYTES / 2**20:.0f} MiB, "
        f"ACTIVATION_FACTOR {memory.ACTIVATION_FACTOR:.2f}: errors {min(in_use):+.1%} .. {max(in_use):+.1%}"
    )
    print(
        f"fitted: BASE_BYTES {base / 2**20:.0f} MiB, ACTIVATION_FACTOR {factor:.2f}: "
        f"errors {min(fitted):+.1%} .. {max(fitted):+.1%}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        measure(sys.argv[2], sys.argv[3])
    else:
        main()
