"""The sweep: Ray Tune over the trials; a trial runs in its Tune process (one worker) or on Ray Train (several).

A trial with one worker runs the trial loop inside its Tune function, whose process Tune reuses for the
next trial: Ray's worker start and the imports of torch, diffusers and the reward libraries are paid once
per process (they happen as the process starts: `preload`), not once per trial. A trial with several
workers is a `TorchTrainer` fit inside the Tune function (Ray 2.60's Train V2 does not take a trainer as a
Tune trainable; Ray's "hyperparameter optimization" guide fits one inside a Tune function), with
`TuneReportCallback` forwarding its workers' reports. Both run the same loop (`runner/trial.py`) and
report through Tune to the driver, where `TrialLogger` writes them to MLflow (the only process that does).

Checkpoints and resuming: every trial checkpoints into its own folder under the parent run's storage
(`trials/<trial id>/`), whichever way it runs. A failed attempt (a worker killed) is retried by Tune
(`resources.max_failures`) from the latest checkpoint there; `--resume` re-runs only the trials whose
MLflow run is not FINISHED, which continue from the same folder, and their metrics continue after the
last step they had logged.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaderbench.experiment.grid import Trial
from vaderbench.runner.placement import alive_nodes, trials_at_once

if TYPE_CHECKING:  # mlflow is the driver's alone: Ray's workers import this module and should not pay for it
    from vaderbench.runner.tracking import Tracker

#: what the Tune function of a trial with several workers holds while its workers train: a placement
#: group needs a non-empty bundle, and one byte of memory holds no CPU or GPU that a worker needs (a CPU,
#: Tune's default, left a 2-node cluster of 1 CPU each unable ever to place a trial of 2 workers)
DRIVER_BUNDLE = {"memory": 1}


def quiet_environment() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION", "0")
    # the Train controller polls its workers at this interval (default 2 s), which also paces reports;
    # shorter costs CPU in every trial's controller (0.2 s: about a tenth of a core per trial here)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # a trial stopped early finishes its step before its process is reused for the next trial (default 2 s)
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
    # worker processes start (and import) as Ray needs them; past 4x this number Ray prints a warning
    os.environ.setdefault("RAY_worker_maximum_startup_concurrency", "16")


#: the environment variable that names the modules `preload` imports
PRELOAD = "VADERBENCH_PRELOAD"


def preload() -> None:
    """Run by every Ray worker process as it starts (Ray's `worker_process_setup_hook`): the trials' heavy
    imports (torch, diffusers, peft, the reward libraries) happen once per process, before it runs a trial."""
    for module in filter(None, os.environ.get(PRELOAD, "").split(",")):
        importlib.import_module(module)


def start_ray(address: str | None, preload_modules: tuple[str, ...] = ()) -> str:
    """Join `address` (or RAY_ADDRESS), else start a quiet local Ray with this machine's CPUs and GPUs.

    Ray's worker processes import `preload_modules` (the trials' registering modules) as they start.
    """
    import ray

    quiet_environment()
    if ray.is_initialized():
        return "already running"
    address = address or os.environ.get("RAY_ADDRESS")
    modules = ("vaderbench.runner.trial", "peft", *preload_modules)
    runtime_env = {"worker_process_setup_hook": f"{__name__}.preload", "env_vars": {PRELOAD: ",".join(modules)}}
    common = {
        "logging_level": logging.ERROR,
        "log_to_driver": False,
        "configure_logging": True,
        "runtime_env": runtime_env,
    }
    if address:
        ray.init(address=address, **common)
        return address
    # one machine is never preempted, and without a dashboard nobody reads Train's metrics: the watcher
    # is one more process per trial (each Ray process imports Ray Train: ~1.7 s of CPU here)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
    ray.init(include_dashboard=False, **common)
    for name in ("ray", "ray.train", "ray.tune", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return "local"


def trial_store(config: dict[str, Any]):
    """The trial's checkpoint folder under the sweep's storage: the same for every attempt and invocation."""
    from vaderbench.runner.checkpoint import CheckpointStore

    trial = Trial.from_dict(config["trial"])
    return CheckpointStore(Path(config["storage_path"]) / "trials" / trial.id, keep=trial.checkpoint.keep)


def run_worker(config: dict[str, Any], report, device=None) -> None:
    """The trial loop on this process, continuing from the trial's latest checkpoint if it has one."""
    import ray
    import torch

    from vaderbench.runner.trial import run_trial

    torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    if device is None:
        device = torch.device("cuda" if config["gpus_per_worker"] else "cpu")
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    run_trial(config["trial"], report, trial_store(config), device, node)


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train's loop on each worker of a trial with several workers."""
    import ray.train

    run_worker(config, ray.train.report, ray.train.torch.get_device() if config["gpus_per_worker"] else None)


def trial_driver(config: dict[str, Any]) -> None:
    """Tune's function trainable: one trial.

    A trial with one worker runs in this process, which Tune keeps for the next trial (actor reuse): the
    imports of torch, diffusers and the reward libraries, and Ray's worker start, are paid once per
    process instead of once per trial. A trial with several workers fits a `TorchTrainer` (DDP over its
    workers), whose reports `TuneReportCallback` forwards to Tune. Both run the same trial loop and
    checkpoint into the same store; a failed attempt is retried by Tune from the latest checkpoint.
    """
    trial = config["trial"]
    if trial["workers"] == 1:
        from ray import tune

        run_worker(config, tune.report)
        return
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

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
            failure_config=FailureConfig(max_failures=0),  # Tune retries the whole trial (`resources.max_failures`)
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def trial_resources(config: dict[str, Any]):
    """What one trial holds while it runs: its worker's CPUs/GPUs in process, or the driver of its Train run."""
    from ray.tune import PlacementGroupFactory

    if config["trial"]["workers"] == 1:
        gpus = config["gpus_per_worker"]
        return PlacementGroupFactory([{"CPU": config["cpus_per_worker"], **({"GPU": gpus} if gpus else {})}])
    return PlacementGroupFactory([DRIVER_BUNDLE])


def asha(early_stopping, trials: list[Trial]):
    """Tune's ASHA on the tuning score (the validation reward, folded at the oracle's), its rungs in training
    steps (aligner rounds), one instance per method and
    resolution: a trial is stopped for falling behind the other settings of its own method, never for
    being a method whose rewards are lower."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from vaderbench.metrics import TUNING_SCORE

    steps = max(t.steps or 0 for t in trials)
    if not steps:
        raise ValueError(
            "early stopping needs a budget in steps (tune.budget.steps or budget.steps, or reward_queries)"
        )

    def new_asha():
        return ASHAScheduler(
            time_attr="step",
            metric=TUNING_SCORE,
            mode="max",
            max_t=steps,
            grace_period=early_stopping.grace,
            reduction_factor=early_stopping.reduction,
        )

    class PerMethodASHA(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.groups: dict[tuple[str, str], ASHAScheduler] = {}

        def group(self, trial):
            spec = trial.config["trial"]
            return self.groups.setdefault((spec["method"], f"{spec['height']}x{spec['width']}"), new_asha())

        def on_trial_add(self, controller, trial):
            self.group(trial).on_trial_add(controller, trial)

        def on_trial_result(self, controller, trial, result):
            return self.group(trial).on_trial_result(controller, trial, result)

        def on_trial_complete(self, controller, trial, result):
            self.group(trial).on_trial_complete(controller, trial, result)

        def on_trial_remove(self, controller, trial):
            self.group(trial).on_trial_remove(controller, trial)

        def on_trial_error(self, controller, trial):
            self.group(trial).on_trial_error(controller, trial)

    return PerMethodASHA()


@dataclass
class SweepOutcome:
    finished: list[str]
    failed: dict[str, str]
    interrupted: bool
    #: (trial id, seconds its run lasted, seconds of it that were start-up) of each finished trial
    durations: list[tuple[str, float, float]]

    def then(self, later: SweepOutcome) -> SweepOutcome:
        """This stage followed by `later` (the tuning draws, then their refinement): interrupted if `later` was."""
        return SweepOutcome(
            [*self.finished, *later.finished],
            {**self.failed, **later.failed},
            interrupted=later.interrupted,
            durations=[*self.durations, *later.durations],
        )


def run_sweep(
    trials: list[Trial],
    tracker: Tracker,
    parent_id: str,
    *,
    storage: Path,
    resources: dict[str, Any],
    progress=None,
    collective_timeout_s: int = 1800,
    early_stopping=None,
) -> SweepOutcome:
    """Run `trials` through Tune (as many at once as fit); every result goes to MLflow from here.

    With `early_stopping` (the experiment's `tune.early_stopping`), Tune's ASHA scheduler stops the trials
    whose held-out reward falls behind at its rungs (steps grace, grace x reduction, ...).
    """
    from ray import tune

    from vaderbench.runner.logger import TrialLogger

    storage.mkdir(parents=True, exist_ok=True)
    logger = TrialLogger(tracker, parent_id, progress)
    nodes = alive_nodes()
    at_once = max(
        1, trials_at_once(nodes, resources["workers"], resources["cpus_per_worker"], resources["gpus_per_worker"])
    )
    at_once = min(at_once, resources["max_concurrent_trials"] or at_once)
    # the trials that will run at once start their processes at once (Tune's default asks for one at a time)
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(at_once)
    shared = {
        "storage_path": str(storage.resolve()),
        "cpus_per_worker": resources["cpus_per_worker"],
        "gpus_per_worker": resources["gpus_per_worker"],
        "collective_timeout_s": collective_timeout_s,
    }
    tuner = tune.Tuner(
        tune.with_resources(trial_driver, trial_resources),
        param_space={**shared, "trial": tune.grid_search([t.to_dict() for t in trials])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=at_once,
            scheduler=asha(early_stopping, trials) if early_stopping else None,
            reuse_actors=True,  # a trial's process (its imports, its Ray worker) serves the next trial
        ),
        run_config=tune.RunConfig(
            # one Tune experiment per invocation; the trials' Train runs (and checkpoints) outlive it
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(storage.resolve()),
            callbacks=[logger],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=resources["max_failures"]),
        ),
    )
    try:
        tuner.fit()  # Tune handles Ctrl-C itself: it stops the trials and returns
    except KeyboardInterrupt:
        pass
    logger.close_open_runs("KILLED")
    unfinished = len(trials) - len(logger.finished) - len(logger.failed)
    return SweepOutcome(logger.finished, logger.failed, interrupted=unfinished > 0, durations=logger.durations)
