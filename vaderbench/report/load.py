"""Read an experiment's runs back from MLflow into tidy pandas frames: the report's only input.

The layout `vaderbench run` writes: one MLflow experiment per YAML file, one parent run per invocation,
one child run per trial (tag `mlflow.parentRunId`) whose params name its point in the sweep (`method`,
`resolution`, `K`, `lr`, `seed`, ...) and whose metrics are logged per training step (one aligner round). A
trial is any run with a `method` param; every other run is a parent (or unrelated) run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import ViewType

from vaderbench.runner.tracking import ERROR_TAG

PARENT_TAG = "mlflow.parentRunId"
#: the columns every trial row has; the run's params follow under their own names
TRIAL_COLUMNS = ["run_id", "run_name", "parent_run_id", "status", "start_time", "error"]


@dataclass
class Runs:
    """One experiment's runs: trials (one row per child run) and their metric histories (long format)."""

    experiment: str
    tracking_uri: str
    #: run_id, run_name, parent_run_id, status, start_time, then one column per param (strings as logged)
    trials: pd.DataFrame
    #: run_id, metric, step, value: every logged point of every trial's metrics
    metrics: pd.DataFrame
    #: run ids of the parent runs, newest first
    parent_run_ids: list[str]
    client: MlflowClient


def default_tracking_uri(output_dir: Path) -> str:
    """`vaderbench run`'s default store: an sqlite file in the output folder (absolute, as Ray workers need)."""
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def resolve_store(output_dir: Path | None, tracking_uri: str | None) -> str:
    if tracking_uri:
        return tracking_uri
    if output_dir is None:
        raise ValueError("give an output folder (with its mlflow.db) or a tracking URI")
    database = Path(output_dir) / "mlflow.db"
    if not database.is_file():
        raise FileNotFoundError(
            f"no MLflow store at {database}: give the output folder of a `vaderbench run`, or --tracking-uri"
        )
    return default_tracking_uri(Path(output_dir))


def find_experiment(client: MlflowClient, name: str | None):
    """The experiment called `name`; without a name, the store's only experiment that holds runs."""
    if name is not None:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
            raise ValueError(f"no MLflow experiment named {name!r} in the store; it has: {', '.join(known) or 'none'}")
        return experiment
    with_runs = [
        e
        for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        if client.search_runs([e.experiment_id], max_results=1)
    ]
    if len(with_runs) != 1:
        names = ", ".join(sorted(e.name for e in with_runs)) or "none with runs"
        raise ValueError(
            f"the store holds {len(with_runs)} experiments with runs ({names}): choose one with --experiment"
        )
    return with_runs[0]


def all_runs(client: MlflowClient, experiment_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], page_token=token, order_by=["attributes.start_time DESC"])
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def method_of(params: dict[str, str]) -> str | None:
    """The `method` param, logged plain or flattened under a prefix (`config/method`, `aligner.method`)."""
    if "method" in params:
        return params["method"]
    found = [v for k, v in params.items() if re.search(r"[./]method$", k)]
    return found[0] if len(found) == 1 else None


def trial_row(run) -> dict:
    row = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "parent_run_id": run.data.tags.get(PARENT_TAG),
        "status": run.info.status,
        "start_time": run.info.start_time,
        "error": run.data.tags.get(ERROR_TAG),
    }
    # params keep their logged strings; the report parses the few it interprets (select.py)
    row.update({k: v for k, v in run.data.params.items() if k not in row})
    row["method"] = method_of(run.data.params)
    if "variant" not in row and "variant" in run.data.tags:  # a variant (e.g. on-policy DDPO) may be a tag
        row["variant"] = run.data.tags["variant"]
    return row


def metric_history(client: MlflowClient, run) -> list[dict]:
    return [
        {"run_id": run.info.run_id, "metric": key, "step": point.step, "value": point.value}
        for key in run.data.metrics
        for point in client.get_metric_history(run.info.run_id, key)
    ]


def metric_histories(client: MlflowClient, runs: list) -> list[dict]:
    """Every logged point of every metric of `runs`: one query per metric on a database store (sqlite,
    PostgreSQL, ...), else one per run and metric (an MLflow server's REST API has no bulk history)."""
    store = client._tracking_client.store
    if not hasattr(store, "get_metric_history_bulk"):
        return [p for r in runs for p in metric_history(client, r)]
    ids = [r.info.run_id for r in runs]
    keys = sorted({key for r in runs for key in r.data.metrics})
    return [
        {"run_id": point.run_id, "metric": key, "step": point.step, "value": point.value}
        for key in keys
        for start in range(0, len(ids), 500)
        for point in store.get_metric_history_bulk(ids[start : start + 500], key, max_results=None)
    ]


def load_runs(
    output_dir: Path | None = None, *, experiment: str | None = None, tracking_uri: str | None = None
) -> Runs:
    uri = resolve_store(output_dir, tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    found = find_experiment(client, experiment)
    runs = all_runs(client, found.experiment_id)
    trials = [r for r in runs if method_of(r.data.params) is not None]
    trial_ids = {r.info.run_id for r in trials}
    referenced = {r.data.tags.get(PARENT_TAG) for r in trials}
    parents = [r.info.run_id for r in runs if r.info.run_id not in trial_ids and r.info.run_id in referenced]
    trial_frame = pd.DataFrame([trial_row(r) for r in trials], columns=None if trials else [*TRIAL_COLUMNS, "method"])
    points = metric_histories(client, trials)
    metric_frame = pd.DataFrame(points, columns=["run_id", "metric", "step", "value"])
    return Runs(found.name, uri, trial_frame, metric_frame, parents, client)
