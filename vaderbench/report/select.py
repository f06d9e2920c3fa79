"""Which trials count, what they are called, and the metric values the figures and tables take from them.

Only FINISHED trials are averaged. FAILED or KILLED trials are "failed", RUNNING or SCHEDULED ones
"unfinished"; when several trials have the same params, seed included (the same sweep point run again by
a second invocation), the newest finished one counts and the others are "superseded". All three are
listed in the report, never averaged in.

A *series* is a set of trials that differ only in their seed: its label is the method's name plus every
param that takes more than one value among that method's trials (except the seed and the figure's own
axis), so trials of different settings are never averaged together.

Methods are named, ordered and compared as their registered aligners say (`title`, `family`): the base
model first, then the registered aligners by family (reward gradients, policy gradients, preferences) and
name, then any method no aligner here registers, by name.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from vaderbench.aligner import registered_aligners
from vaderbench.registry import ALIGNERS
from vaderbench.report.load import TRIAL_COLUMNS

FAILED_STATUSES = {"FAILED", "KILLED"}


class MissingRuns(Exception):
    """The runs a figure or table needs are not in the store; the message says which."""


#: columns the report adds to the trial frame (not params)
DERIVED_COLUMNS = ("state", "side", "resolution_label", "series")
#: params that identify a run rather than a setting: never a reason to split a series
IDENTITY_PARAMS = re.compile(r"(^|[._/])(seed|trial_id|trial_name|run_name|experiment_tag|logdir|output|config_path)$")


def param_column(trials: pd.DataFrame, key: str) -> str | None:
    """The column of param `key`, logged plain (`K`) or flattened under a prefix (`aligner.K`, `policy/K`)."""
    if key in trials.columns:
        return key
    matches = [c for c in trials.columns if c not in TRIAL_COLUMNS and re.search(rf"[./]{re.escape(key)}$", str(c))]
    return matches[0] if len(matches) == 1 else None


def parse_resolution(value) -> tuple[float, str]:
    """A `resolution` param as (side length in pixels, label): "64" and "64x64" are 64; "64x32" is √(64·32)."""
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", str(value))]
    if not numbers or len(numbers) > 2:
        raise ValueError(f"cannot read resolution {value!r}: expected a side length like 64 or HxW like 64x64")
    height, width = (numbers[0], numbers[0]) if len(numbers) == 1 else numbers
    label = f"{height:g}" if height == width else f"{height:g}×{width:g}"
    return math.sqrt(height * width), label


def status_class(status: str) -> str:
    if status == "FINISHED":
        return "finished"
    return "failed" if status in FAILED_STATUSES else "unfinished"


def param_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c not in TRIAL_COLUMNS and c not in DERIVED_COLUMNS]


def setting_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in param_columns(trials) if not IDENTITY_PARAMS.search(str(c))]


def mark_superseded(trials: pd.DataFrame) -> pd.Series:
    """True for every trial that shares its exact params (seed included) with a newer finished trial."""
    params = param_columns(trials)
    superseded = pd.Series(False, index=trials.index)
    if trials.empty:
        return superseded
    key = trials[params].apply(lambda column: column.map(lambda v: "" if pd.isna(v) else str(v))).agg("|".join, axis=1)
    finished = trials["status"] == "FINISHED"
    for _, group in trials.groupby(key):
        done = group[finished.loc[group.index]]
        if done.empty:
            continue
        keep = done["start_time"].idxmax()
        superseded.loc[[i for i in group.index if i != keep]] = True
    return superseded


def classify(trials: pd.DataFrame) -> pd.DataFrame:
    """Adds `state` (finished / failed / unfinished / superseded) and `seed` (the seed param, wherever logged)."""
    superseded = mark_superseded(trials)
    trials = trials.copy()
    trials["state"] = trials["status"].map(status_class)
    trials.loc[superseded, "state"] = "superseded"
    seed = param_column(trials, "seed")
    trials["seed"] = trials[seed] if seed else None
    return trials


def method_display(method: str) -> str:
    """The aligner's `title` ("VADER"), or the logged name of a method no aligner here registers."""
    return ALIGNERS.get(method).title if method in ALIGNERS else method


def method_rank(method: str) -> tuple[int, str]:
    known = ["base", *registered_aligners()]
    return (known.index(method), "") if method in known else (len(known), method)


def method_order(methods: list[str]) -> list[str]:
    """Methods in the report's order (see the module's docstring)."""
    return sorted(methods, key=method_rank)


def reference_method(methods) -> str | None:
    """The method the report compares with the others: the first reward-gradient method among `methods`."""
    gradient = [
        m for m in method_order(list(set(methods))) if m in ALIGNERS and ALIGNERS.get(m).family == "reward-gradient"
    ]
    return gradient[0] if gradient else None


def method_first(table: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    """Rows ordered by method (the report's order, see the module's docstring), then by `then`."""
    rank = table["method"].map(method_rank)
    return (
        table.assign(_rank=rank)
        .sort_values(["_rank", *then], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def varies(values: pd.Series) -> bool:
    """More than one value, a param missing from some trials counting as a value of its own (not logged = other)."""
    return values.map(lambda v: "" if pd.isna(v) else str(v)).nunique() > 1


def varying_within_method(trials: pd.DataFrame, exclude: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Per method, the setting params that take more than one value among its trials."""
    skip = {c for key in exclude if (c := param_column(trials, key))} | {"method"}
    varying = {}
    for method, group in trials.groupby("method"):
        varying[method] = [c for c in setting_columns(trials) if c not in skip and varies(group[c])]
    return varying


def short_name(column: str) -> str:
    """A flattened param's last component: `aligner.inner_epochs` -> `inner_epochs`."""
    return re.split(r"[./]", str(column))[-1]


def entry_of(trials: pd.DataFrame) -> pd.Series:
    """The method entry each trial ran: its `variant` param, else its method (the aligner)."""
    variant = param_column(trials, "variant")
    entry = trials["method"].astype(str)
    return entry if variant is None else trials[variant].where(trials[variant].notna(), entry).astype(str)


def settings_text(row: pd.Series, columns: list[str]) -> str:
    """`name=value, ...` of a trial's params in `columns` that it logged (a swept `methods.<entry>.lr` is also logged
    as the trial's `lr`: named once)."""
    return ", ".join(dict.fromkeys(f"{short_name(c)}={row[c]}" for c in columns if not pd.isna(row[c])))


def series_labels(trials: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.Series:
    """One label per trial naming its series: "VADER", or "DDPO (inner_epochs=1)" where settings vary; a variant's
    name stands for the settings its entry fixes (its reward, kl_coef, ...): besides it, only what varies among the
    entry's own trials."""
    if trials.empty:
        return pd.Series(dtype=str)
    varying = varying_within_method(trials, exclude)
    variant = param_column(trials, "variant")
    entries = entry_of(trials)
    within_entry = varying_within_method(trials.assign(method=entries), (*exclude, "variant"))

    def label(row) -> str:
        columns = varying[row["method"]]
        if variant in columns:
            columns = [variant, *within_entry[entries[row.name]]]
        settings = settings_text(row, columns)
        name = method_display(row["method"])
        return f"{name} ({settings})" if settings else name

    return trials.apply(label, axis=1)


def with_resolution(trials: pd.DataFrame) -> pd.DataFrame:
    """Adds `side` (pixels) and `resolution_label`; MissingRuns if no trial logs a readable `resolution` param."""
    column = param_column(trials, "resolution")
    if column is None:
        raise MissingRuns("the trials log no `resolution` param")
    try:
        parsed = trials[column].map(parse_resolution)
    except ValueError as error:
        raise MissingRuns(str(error)) from error
    return trials.assign(side=parsed.map(lambda p: p[0]), resolution_label=parsed.map(lambda p: p[1]))


def metric_points(metrics: pd.DataFrame, metric: str, run_ids=None) -> pd.DataFrame:
    """run_id, step, value of one metric (the last value logged at a step, if a step was logged twice)."""
    points = metrics[metrics["metric"] == metric]
    if run_ids is not None:
        points = points[points["run_id"].isin(set(run_ids))]
    return points.drop_duplicates(["run_id", "step"], keep="last")[["run_id", "step", "value"]]


def step_zero_mean(metrics: pd.DataFrame, metric: str, run_ids) -> float | None:
    """The mean of `metric` at step 0 (before any update: the base model's) over the runs; None if not logged."""
    points = metric_points(metrics, metric, run_ids)
    points = points[points["step"] == 0]
    return float(points["value"].mean()) if not points.empty else None


def last_points(metrics: pd.DataFrame, metric: str, run_ids=None) -> pd.DataFrame:
    """run_id, step, value at each run's last logged step of `metric`."""
    points = metric_points(metrics, metric, run_ids).sort_values(["run_id", "step"])
    return points.groupby("run_id", as_index=False).last()
