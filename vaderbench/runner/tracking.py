"""MLflow, written from one process only: the sweep's driver.

One MLflow experiment per experiment file, one parent run per `vaderbench run` (reused by `--resume`),
one child run per trial (tag `vaderbench.trial_id`). Trials report their metrics through Ray Tune to the
driver, where `TrialLogger` writes them; nothing in a Ray worker opens the store. A single writer is what
keeps an sqlite store whole under concurrent trials (several processes writing one sqlite file lose
writes to "database is locked"), and it works the same with an MLflow server.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from vaderbench.experiment.grid import Trial
from vaderbench.metrics import REWARD_QUERIES

ROLE_TAG = "vaderbench.role"
TRIAL_TAG = "vaderbench.trial_id"
#: the tag of a failed trial's run: what went wrong (the report reads it)
ERROR_TAG = "vaderbench.error"
#: the prefix of a trial run's tags naming the Ray node each worker ran on (`<prefix><rank>`; the latest attempt's)
NODE_TAG = "vaderbench.node.rank"
#: mlflow's limit on the params, metrics and tags of one log_batch call
BATCH_LIMIT = 1000
#: seconds a run's metrics wait in the driver before they are written together
FLUSH_S = 5.0
#: MLflow's experiment tag that decides which page of the UI an experiment opens on: without it, MLflow
#: 3.17 opens a new experiment on its GenAI "Overview" (traces) page; this value opens it on the runs
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


#: the parent run's param: how many last evaluations a tuning trial's score averages
TUNE_SCORE_EVALUATIONS = "tune.score_evaluations"


def default_store(output: Path) -> str:
    return f"sqlite:///{output.resolve() / 'mlflow.db'}"


def create_sqlite_store(uri: str, artifact_root: Path | None) -> None:
    """Create a new sqlite store whole, under a temporary name, before anything else can open it.

    MLflow builds its tables by migrating an empty file; a second process (`mlflow ui`, a script polling
    the store) that opens the file meanwhile starts the same migrations, and one of the two fails
    ("table _alembic_tmp_... already exists"). A hard link publishes the finished file atomically and never
    replaces a store another process published first.
    """
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///").split("?")[0])
    if path.name in ("", ":memory:") or path.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        root = (artifact_root or path.parent / "mlartifacts").resolve().as_uri()
        SqlAlchemyStore(f"sqlite:///{partial}", root).engine.dispose()
        os.link(partial, path)
    except FileExistsError:
        pass  # another process published its store first: use that one
    finally:
        partial.unlink(missing_ok=True)


def versions() -> dict[str, str]:
    """Versions of what decides a run's numbers, recorded with every run."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("vaderbench", "torch", "diffusers", "transformers", "peft", "open_clip_torch", "ray", "mlflow"):
        try:
            found[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            found[f"version.{package}"] = "not installed"
    return found


class Tracker:
    def __init__(self, uri: str, experiment: str, artifact_root: Path | None):
        self.uri = uri
        create_sqlite_store(uri, artifact_root)
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            # created here, in the driver, with an absolute artifact location: an experiment created in a
            # Ray worker would put its artifacts in the worker's temporary folder
            location = artifact_root.resolve().as_uri() if artifact_root is not None else None
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND])
            )
        else:
            self.experiment_id = found.experiment_id
            if EXPERIMENT_KIND[0] not in found.tags:  # a store from before the tag; a kind chosen in the UI stays
                self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND)
        self.experiment = experiment
        #: run id -> (metrics not written yet, when the first of them was queued)
        self.queued: dict[str, tuple[list[Metric], float]] = {}

    # -- the parent run -----------------------------------------------------------------------------
    def latest_parent(self) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def start_parent(self, config_path: Path, config_text: str, trials: int) -> str:
        from vaderbench.provenance import provenance

        name = f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
        run = self.client.create_run(
            self.experiment_id, tags={ROLE_TAG: "sweep", MLFLOW_RUN_NAME: name, **versions(), **provenance()}
        )
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param("config_file", str(config_path)), Param("trials", str(trials))])
        self.client.log_text(run_id, config_text, f"config/{config_path.name}")
        return run_id

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    # -- child runs ---------------------------------------------------------------------------------
    def children(self, parent_id: str) -> dict[str, Any]:
        """This parent's trial runs by trial id."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'", max_results=50000
        )
        return {run.data.tags[TRIAL_TAG]: run for run in runs if TRIAL_TAG in run.data.tags}

    def metric_values(self, run_id: str, key: str) -> list[float]:
        """A run's values of metric `key`, one per step (the last logged where a resumed trial logged it again)."""
        history = sorted(self.client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
        by_step = {m.step: m.value for m in history}
        return [by_step[step] for step in sorted(by_step)]

    def trial_run(self, parent_id: str, trial: Trial) -> tuple[str, int]:
        """(run id, last step logged): the trial's existing child run when resuming, else a new one."""
        existing = self.children(parent_id).get(trial.id)
        if existing is not None:
            self.client.update_run(existing.info.run_id, status="RUNNING")
            steps = [m.step for m in self.client.get_metric_history(existing.info.run_id, REWARD_QUERIES)]
            return existing.info.run_id, max(steps, default=-1)
        tags = {MLFLOW_PARENT_RUN_ID: parent_id, TRIAL_TAG: trial.id, MLFLOW_RUN_NAME: trial.id, **versions()}
        if trial.variant:
            tags["variant"] = trial.variant
        run_id = self.client.create_run(self.experiment_id, tags=tags).info.run_id
        params = [Param(k, v[:6000]) for k, v in trial.params().items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[start : start + 100])
        self.client.log_text(run_id, json.dumps(trial.to_dict(), indent=2, default=str), "config/trial.json")
        return run_id, -1

    def log_step(self, run_id: str, step: int, metrics: dict[str, Any]) -> None:
        """Queue one step's metrics; a run's queue is written when it is `FLUSH_S` old, and when the run ends.

        Writing every step of every trial at once cost the driver a tenth of a core on 2 cores (an sqlite
        transaction per step). What is queued when the driver dies is not lost: a resumed trial replays its
        reports up to its checkpoint, and the steps after it run again.
        """
        now = time.time()
        points = [
            Metric(key, float(value), int(now * 1000), step)
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
        ]
        queued, since = self.queued.setdefault(run_id, ([], now))
        queued.extend(points)
        if now - since >= FLUSH_S:
            self.flush(run_id)

    def flush(self, run_id: str) -> None:
        points, _ = self.queued.pop(run_id, ([], 0.0))
        for start in range(0, len(points), BATCH_LIMIT):
            self.client.log_batch(run_id, metrics=points[start : start + BATCH_LIMIT])

    def log_choice(self, parent_id: str, chosen: dict, score_evaluations: int) -> None:
        """The tuning stage's choice on the parent run: `tuning/chosen.json`, a param per setting and the
        evaluations a tuning score averages (`TUNE_SCORE_EVALUATIONS`, which the report's tuning regret reads)."""
        rows = [
            {"method": method, "resolution": resolution, "setting": setting}
            for (method, resolution), setting in chosen.items()
        ]
        self.client.log_text(parent_id, json.dumps(rows, indent=2, default=str), "tuning/chosen.json")
        params = [
            Param(f"tuned.{method}.r{resolution}.{key}", str(value)[:6000])
            for (method, resolution), setting in chosen.items()
            for key, value in setting.items()
        ]
        params.append(Param(TUNE_SCORE_EVALUATIONS, str(score_evaluations)))
        existing = self.client.get_run(parent_id).data.params
        fresh = [p for p in params if p.key not in existing]  # a resumed run logged them already
        for start in range(0, len(fresh), 100):
            self.client.log_batch(parent_id, params=fresh[start : start + 100])

    def log_artifacts(self, run_id: str, directory: Path) -> None:
        if directory.is_dir():
            self.client.log_artifacts(run_id, str(directory))

    def set_worker_nodes(self, run_id: str, nodes: list[str]) -> None:
        """Tags naming the Ray node of each worker, by rank: where a trial's attempt ran."""
        self.client.log_batch(run_id, tags=[RunTag(f"{NODE_TAG}{rank}", node) for rank, node in enumerate(nodes)])

    def set_error(self, run_id: str, message: str) -> None:
        """Why a trial failed, on its run (the report lists it)."""
        self.client.set_tag(run_id, ERROR_TAG, message[:5000])

    def log_usage(self, parent_id: str, wall_s: float, machine_busy: float, study_busy: float) -> None:
        """The study's wall time and the cores' busy shares, one step per invocation (a resumed study has several)."""
        step = len(self.client.get_metric_history(parent_id, "study_wall_time_s"))
        stamp = int(time.time() * 1000)
        metrics = {"study_wall_time_s": wall_s, "cores_busy": machine_busy, "cores_busy_by_study": study_busy}
        self.client.log_batch(parent_id, metrics=[Metric(k, float(v), stamp, step) for k, v in metrics.items()])

    def finish(self, run_id: str, status: str) -> None:
        self.flush(run_id)
        self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.from_string(status)))


#: where `mlflow_ui_command` serves the UI
UI_ADDRESS = "http://127.0.0.1:5000"


def mlflow_ui_command(uri: str) -> str:
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def runs_page_url(uri: str, experiment_id: str) -> str:
    """The UI's page of the experiment's runs: on the tracking server itself, else on `mlflow_ui_command`'s."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_id}/runs"
