"""The studies the tests run, and what the end-to-end ones (`vaderbench run` through Ray and MLflow) read back.

Every study runs on the smallest world that still exercises every mechanism: 2 frames of 8x8 pixels, 3 DDIM steps.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from mlflow import MlflowClient
from safetensors.torch import load_file

from vaderbench.experiment.grid import Trial
from vaderbench.runner.checkpoint import CheckpointStore
from vaderbench.runner.sweep import run_worker
from vaderbench.runner.tracking import ROLE_TAG, TRIAL_TAG, default_store
from vaderbench.runner.trial import TrialLoop

TINY_WORLD = {"video": {"frames": 2, "resolution": 8}, "sampler": {"num_steps": 3}}


def tiny_study(
    name: str,
    methods: dict[str, dict[str, Any]],
    steps: int,
    *,
    eval_every: int | None = None,
    sample_videos: int = 0,
    checkpoint_every: int | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A study of `steps` training steps on the tiny world, evaluated and checkpointed at the end (and every
    `eval_every`, `checkpoint_every` steps); `sections` adds or replaces top-level keys (sweep, resources, ...)."""
    return {
        "name": name,
        **TINY_WORLD,
        "methods": methods,
        "budget": {"steps": steps},
        "eval": {"every": eval_every or steps, "videos": 2, "sample_videos": sample_videos},
        "checkpoint": {"every": checkpoint_every or steps},
        **sections,
    }


#: two trials one after the other, long enough for a test to interrupt the second between its checkpoints
INTERRUPTED_STEPS = 40
INTERRUPTED = tiny_study(
    "interrupted",
    {"vader": {"batch_size": 2}, "dpo": {"batch_size": 2}},
    INTERRUPTED_STEPS,
    eval_every=INTERRUPTED_STEPS // 2,
    sample_videos=1,
    checkpoint_every=2,
    sweep={"method": ["vader", "dpo"]},
    resources={"max_concurrent_trials": 1},
)


def write_study(folder: Path, study: dict[str, Any]) -> Path:
    path = folder / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def start_run(config: Path, output: Path, address: str, *more: str) -> subprocess.Popen:
    """`vaderbench run` in a process of its own (to be interrupted or killed), joining the Ray at `address`."""
    command = ["run", str(config), "--output", str(output), "--address", address, "--no-report", *more]
    return subprocess.Popen(
        [sys.executable, "-m", "vaderbench.cli", *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def checkpoint_steps(output: Path) -> list[list[int]]:
    """The complete checkpoints of every trial on disk, by step."""
    return [
        sorted(int(c.name.split("-")[1]) for c in folder.glob("checkpoint-*") if "." not in c.name)
        for folder in output.glob("ray/*/trials/*")
    ]


def one_finished_and_one_checkpointed(process: subprocess.Popen, output: Path, steps: int) -> bool:
    """Waits until one trial has checkpointed its last step and another one an earlier step (watched on disk:
    the trials log their metrics to MLflow in batches, seconds late); False if the run ends first or 300 s pass."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        found = checkpoint_steps(output)
        if [steps] in [s[-1:] for s in found] and any(s and s[-1] < steps for s in found):
            return True
    return False


def trial_runs(output: Path, experiment: str):
    """(client, the parent runs, the trial runs) of `experiment` in the MLflow store under `output`."""
    client = MlflowClient(default_store(output))
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "sweep"]
    return client, parents, [r for r in runs if TRIAL_TAG in r.data.tags]


def steps_of(client, run, metric):
    return [m.step for m in client.get_metric_history(run.info.run_id, metric)]


def artifacts_of(client, run_id, path=None):
    found = []
    for info in client.list_artifacts(run_id, path):
        found.extend(artifacts_of(client, run_id, info.path) if info.is_dir else [info.path])
    return found


def final_lora(trial: Trial, storage: Path) -> dict[str, torch.Tensor]:
    last = storage / "trials" / trial.id / f"checkpoint-{trial.budget.steps:06d}" / "artifacts" / "lora"
    return load_file(last / "pytorch_lora_weights.safetensors")


def trained_by_workers(trials: list[Trial], storage: Path, workers: int) -> dict[str, tuple[dict, list[dict]]]:
    """Each of `trials` run by `workers` processes in one gloo process group, as a Ray Train trial's workers run
    it (`run_worker` on every rank, one thread each; without Ray's start-up per trial): trial id -> (its final
    LoRA weights, rank 0's metrics reports in order)."""
    storage.mkdir(parents=True, exist_ok=True)
    torch.multiprocessing.spawn(
        train_on_rank, args=(workers, str(storage), [t.to_dict() for t in trials]), nprocs=workers, join=True
    )
    return {t.id: (final_lora(t, storage), pickle.loads((storage / f"{t.id}.reports").read_bytes())) for t in trials}


def train_on_rank(rank: int, workers: int, storage: str, trials: list[dict[str, Any]]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{storage}/process-group", rank=rank, world_size=workers)
    try:
        for trial in trials:
            reports = []
            run_worker(
                {"storage_path": storage, "cpus_per_worker": 1, "gpus_per_worker": 0, "trial": trial}, reports.append
            )
            if rank == 0:
                (Path(storage) / f"{trial['id']}.reports").write_bytes(pickle.dumps(reports))
    finally:
        dist.destroy_process_group()


def trained_in_this_process(trial: Trial, storage: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """`trial` run whole in this process as a one-worker trial's process runs it (`run_worker`, one thread), with
    its checkpoints under `storage`: (its final LoRA weights, every metrics report in order)."""
    reports = []
    run_worker(
        {"storage_path": str(storage), "cpus_per_worker": 1, "gpus_per_worker": 0, "trial": trial.to_dict()},
        reports.append,
    )
    return final_lora(trial, storage), reports


def trial_loop(trial: Trial, folder: Path) -> TrialLoop:
    """`trial`'s loop without Ray, its one kept checkpoint under `folder/store` and its scratch under `folder`."""
    return TrialLoop(trial, CheckpointStore(folder / "store", keep=1), scratch=folder / "scratch")
