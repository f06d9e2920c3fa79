"""The sweep: Ray Tune over the trials, each trial a Ray Train `TorchTrainer` run.

Ray 2.60's Train V2 does not take a trainer as a Tune trainable; the supported pattern (Ray's
"hyperparameter optimization" guide) is a Tune *function* that builds and fits a `TorchTrainer`, with
`TuneReportCallback` forwarding the workers' reports to Tune. Metrics reach the driver through Tune,
where `TrialLogger` writes them to MLflow (the only process that does).

Resuming: each trial's Train run has a deterministic name and storage folder under the parent run, so
fitting it again continues from its latest checkpoint; `--resume` re-runs only the trials whose MLflow
run is not FINISHED, and their metrics continue after the last step they had logged.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaderbench.experiment.grid import Trial

if TYPE_CHECKING:  # mlflow is the driver's alone: Ray's workers import this module and should not pay for it
    from vaderbench.runner.tracking import Tracker

#: a custom resource the local Ray gets plenty of: each trial's driver function takes one, so that it
#: holds no CPU that its workers need (as Ray's own tests do it on small machines)
TRIAL_DRIVER = "vaderbench_trial_driver"
#: Tune's bookkeeping keys, never logged as metrics
TUNE_KEYS = {"training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "time_since_restore",
             "iterations_since_restore", "pid", "done", "checkpoint_path"}


def quiet_environment() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION", "0")
    # the Train controller polls its workers at this interval (default 2 s), which also paces reports;
    # shorter costs CPU in every trial's controller (0.2 s: about a tenth of a core per trial here)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")
    # every trial starts fresh worker processes; past 4x this number Ray prints a warning per trial
    os.environ.setdefault("RAY_worker_maximum_startup_concurrency", "16")


def start_ray(address: str | None) -> str:
    """Join `address` (or RAY_ADDRESS), else start a quiet local Ray with this machine's CPUs and GPUs."""
    import ray

    quiet_environment()
    if ray.is_initialized():
        return "already running"
    address = address or os.environ.get("RAY_ADDRESS")
    common = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    if address:
        ray.init(address=address, **common)
        return address
    # one machine is never preempted, and without a dashboard nobody reads Train's metrics: the watcher
    # is one more process per trial (each Ray process imports Ray Train: ~1.7 s of CPU here)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
    ray.init(include_dashboard=False, resources={TRIAL_DRIVER: 10_000}, **common)
    for name in ("ray", "ray.train", "ray.tune", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return "local"


def concurrency(workers: int, cpus: float, gpus: float, cap: int | None) -> int:
    """How many trials fit at once in the cluster (a Train run starts only when all its workers fit)."""
    import ray

    total = ray.cluster_resources()
    fits = [math.floor(total.get("CPU", 0) / (workers * cpus))]
    if gpus:
        fits.append(math.floor(total.get("GPU", 0) / (workers * gpus)))
    return max(1, min(fits + ([cap] if cap else [])))


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train's loop on each worker: the trial loop with Ray's report and checkpoints."""
    import ray.train
    import torch
    from ray.train import Checkpoint

    from vaderbench.runner.trial import run_trial

    torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    device = ray.train.torch.get_device() if config["gpus_per_worker"] else torch.device("cpu")

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None)

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        run_trial(config["trial"], report, None, device)
    else:
        with checkpoint.as_directory() as restored:
            run_trial(config["trial"], report, Path(restored), device)


def trial_driver(config: dict[str, Any]) -> None:
    """Tune's function trainable: one `TorchTrainer` fit per trial, its reports forwarded to Tune."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial = config["trial"]
    use_gpu = config["gpus_per_worker"] > 0
    resources = {"CPU": config["cpus_per_worker"], **({"GPU": config["gpus_per_worker"]} if use_gpu else {})}
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=trial["workers"], use_gpu=use_gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=config["collective_timeout_s"]),
        run_config=RunConfig(
            name=f"train-{trial['id']}",
            storage_path=config["storage_path"],
            failure_config=FailureConfig(max_failures=config["max_failures"]),
            checkpoint_config=CheckpointConfig(num_to_keep=trial["checkpoint"]["keep"]),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


@dataclass
class SweepOutcome:
    finished: list[str]
    failed: dict[str, str]
    interrupted: bool


def run_sweep(
    trials: list[Trial], tracker: "Tracker", parent_id: str, *, storage: Path, resources: dict[str, Any],
    progress=None, collective_timeout_s: int = 1800,
) -> SweepOutcome:
    """Run `trials` through Tune (as many at once as fit); every result goes to MLflow from here."""
    import ray
    from ray import tune

    from vaderbench.runner.logger import TrialLogger

    storage.mkdir(parents=True, exist_ok=True)
    logger = TrialLogger(tracker, parent_id, progress)
    driver = {TRIAL_DRIVER: 1} if TRIAL_DRIVER in ray.cluster_resources() else {"CPU": 1}
    shared = {
        "storage_path": str(storage.resolve()),
        "cpus_per_worker": resources["cpus_per_worker"],
        "gpus_per_worker": resources["gpus_per_worker"],
        "max_failures": resources["max_failures"],
        "collective_timeout_s": collective_timeout_s,
    }
    tuner = tune.Tuner(
        tune.with_resources(trial_driver, driver),
        param_space={**shared, "trial": tune.grid_search([t.to_dict() for t in trials])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=concurrency(
                resources["workers"], resources["cpus_per_worker"], resources["gpus_per_worker"],
                resources["max_concurrent_trials"],
            ),
            reuse_actors=True,  # the trial driver's process (and its imports) serves the next trial
        ),
        run_config=tune.RunConfig(
            # one Tune experiment per invocation; the trials' Train runs (and checkpoints) outlive it
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(storage.resolve()), callbacks=[logger], verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    try:
        tuner.fit()  # Tune handles Ctrl-C itself: it stops the trials and returns
    except KeyboardInterrupt:
        pass
    logger.close_open_runs("KILLED")
    unfinished = len(trials) - len(logger.finished) - len(logger.failed)
    return SweepOutcome(logger.finished, logger.failed, interrupted=unfinished > 0)
