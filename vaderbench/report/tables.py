"""The numbers behind each figure and table, as tidy frames (one row per cell: mean, low, high, n).

Inputs are `classify`-ed finished trials and the metric history (`load.Runs.metrics`). What each one
takes from the runs:
- reward *after training*: a trial's `eval_reward_mean` (held-out prompts, the same evaluation noise for
  every method) at its last logged step;
- the *base model*: `eval_reward_mean` at step 0 (the evaluation before any update) and, on training
  prompts, `reward_mean` at the trial's first logged step (that batch is sampled before the first
  update). Trials of the same seed share the base model and evaluation noise, so the base values are
  first averaged per seed and the interval is over seeds;
- curves: a metric per logged step against the ledger (`reward_queries`, `device_time_s`) at that step;
  at step 0 (before the first update) nothing has been spent, so a missing ledger value there is 0.
"""

from __future__ import annotations

import re

import pandas as pd

from vaderbench.experiment.tuning import recent_mean
from vaderbench.metrics import (
    BUDGET_SPENT,
    EVAL_CHANCE_GOLD,
    EVAL_CHANCE_REWARD,
    EVAL_FIDELITY,
    EVAL_GOLD_MEAN,
    EVAL_ORACLE_GOLD,
    EVAL_ORACLE_REWARD,
    EVAL_REWARD_MEAN,
    PEAK_MEMORY,
    REWARD_MEAN,
    STARTUP_TIME,
    TUNING_SCORE,
    WALL_TIME,
)
from vaderbench.report.select import (
    MissingRuns,
    last_points,
    method_display,
    method_first,
    metric_points,
    param_column,
    reference_method,
    series_labels,
    setting_columns,
    short_name,
    step_zero_mean,
    varies,
    varying_within_method,
    with_resolution,
)
from vaderbench.report.stats import summarise, welch_interval
from vaderbench.timing import PHASES, metric_name

#: the reward a method is judged by (held-out prompts), and its training counterpart
FINAL_METRIC = EVAL_REWARD_MEAN
TRAIN_METRIC = REWARD_MEAN
#: the paper's Table 9 steps
K_ABLATION_STEPS = (1, 100, 200, 300)
#: params that switch memory savings on or off (the paper's Table 7); matched as a component of the name
MEMORY_SWITCHES = (
    "lora",
    "lora_rank",
    "precision",
    "weight_dtype",
    "decode_frames",
    "K",
    "truncation",
    "gradient_checkpointing",
    "offload_activations",
    "micro_batch_size",
)
#: params that make a baseline on- or off-policy (the paper's Figure 12: update-to-data ratio 1 = on-policy)
POLICY_SWITCHES = ("variant", "on_policy", "updates_per_round", "inner_epochs", "minibatches")


def require_metric(metrics: pd.DataFrame, metric: str, trials: pd.DataFrame) -> None:
    if trials.empty:
        raise MissingRuns("no finished trials")
    if not metrics[(metrics["metric"] == metric) & metrics["run_id"].isin(trials["run_id"])].shape[0]:
        raise MissingRuns(f"no finished trial logged `{metric}`")


def with_series(trials: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.DataFrame:
    return trials.assign(series=series_labels(trials, exclude))


def final_rewards(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = FINAL_METRIC) -> pd.DataFrame:
    """One row per trial: its settings and `value` = `metric` at its last logged step."""
    require_metric(metrics, metric, trials)
    last = last_points(metrics, metric, trials["run_id"])
    return trials.merge(last, on="run_id")


# -- Figure 3: the resolution gap -------------------------------------------------------------------
def resolution_gap(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = FINAL_METRIC) -> pd.DataFrame:
    """Per series and resolution: final reward mean, CI, n and the steps it was read at."""
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    finals = final_rewards(trials, metrics, metric)
    table = summarise(finals, ["method", "series", "side", "resolution_label"])
    steps = finals.groupby(["series", "side"])["step"].agg(lambda s: ", ".join(str(v) for v in sorted(set(s))))
    return method_first(table.join(steps.rename("steps"), on=["series", "side"]), ["series", "side"])


def resolution_gap_differences(
    trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = FINAL_METRIC, reference: str | None = None
) -> pd.DataFrame:
    """Per resolution: reference series (default: the reward-gradient method's) minus each other method's series,
    with Welch's interval."""
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    finals = final_rewards(trials, metrics, metric)
    reference = reference or reference_method(finals["method"])
    rows = []
    ours = finals[finals["method"] == reference]
    theirs = finals[finals["method"] != reference]
    for (mine, side), a in ours.groupby(["series", "side"]):
        for other, b in theirs[theirs["side"] == side].groupby("series"):
            estimate = welch_interval(a["value"], b["value"])
            rows.append(
                {
                    "comparison": f"{mine} − {other}",
                    "reference": reference,
                    "method": b["method"].iloc[0],
                    "side": side,
                    "resolution_label": a["resolution_label"].iloc[0],
                    "mean": estimate.mean,
                    "low": estimate.low,
                    "high": estimate.high,
                    "n": estimate.n,
                }
            )
    gaps = pd.DataFrame(
        rows, columns=["comparison", "reference", "method", "side", "resolution_label", "mean", "low", "high", "n"]
    )
    return method_first(gaps, ["comparison", "side"])


# -- Figure 5 and Figure 12: reward against spending ------------------------------------------------
def curves(
    trials: pd.DataFrame, metrics: pd.DataFrame, x: str, y: str = FINAL_METRIC, x_scale: float = 1.0
) -> pd.DataFrame:
    """Per series, resolution and step: mean `x` (times `x_scale`) and the mean and CI of `y` over seeds."""
    require_metric(metrics, y, trials)
    require_metric(metrics, x, trials)
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    ys = metric_points(metrics, y, trials["run_id"])
    xs = metric_points(metrics, x, trials["run_id"]).rename(columns={"value": "x"})
    points = ys.merge(xs, on=["run_id", "step"], how="left")
    points.loc[points["x"].isna() & (points["step"] == 0), "x"] = 0.0
    points = points.dropna(subset=["x"]).merge(trials[["run_id", "method", "series", "side", "resolution_label"]])
    keys = ["method", "series", "side", "resolution_label", "step"]
    table = summarise(points, keys)
    spent = points.groupby(keys)["x"].mean() * x_scale
    return method_first(table.join(spent.rename("x"), on=keys), ["series", "side", "step"])


def has_policy_variants(trials: pd.DataFrame) -> bool:
    """Whether some method was run both on- and off-policy (or with a named variant)."""
    columns = [c for key in POLICY_SWITCHES for c in trials.columns if component_match(c, key)]
    return any(varies(group[c]) for _, group in trials.groupby("method") for c in columns)


# -- Table 9: the K ablation ------------------------------------------------------------------------
def k_ablation(
    trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = TRAIN_METRIC, steps: tuple[int, ...] = K_ABLATION_STEPS
) -> pd.DataFrame:
    """Per series (K aside), K and step: mean, CI, n of `metric` at the paper's steps that were logged and the last."""
    column = param_column(trials, "K")
    if column is None:
        raise MissingRuns("the trials log no `K` param")
    ablated = [m for m, g in trials.groupby("method") if varies(g[column])]
    if not ablated:
        raise MissingRuns("no method was run with more than one K")
    trials = trials[trials["method"].isin(ablated)]
    require_metric(metrics, metric, trials)
    trials = with_series(trials, exclude=("K",)).assign(K=lambda t: t[column].astype(str))
    points = metric_points(metrics, metric, trials["run_id"]).merge(trials[["run_id", "method", "series", "K"]])
    last = int(points.groupby("run_id")["step"].max().min())
    wanted = sorted({s for s in steps if s <= last} | {last})
    points = points[points["step"].isin(wanted)]
    table = summarise(points, ["method", "series", "K", "step"])
    numeric_k = pd.to_numeric(table["K"], errors="coerce")  # K = 2 before K = 10
    table = method_first(table.assign(K_order=numeric_k), ["series", "K_order", "K", "step"])
    return table.drop(columns="K_order")


# -- Table 1: generalisation ------------------------------------------------------------------------
def generalisation(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per resolution and model (base, then each series): reward on training and held-out prompts."""
    for metric in (TRAIN_METRIC, FINAL_METRIC):
        require_metric(metrics, metric, trials)
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    ids = trials["run_id"]
    train = metric_points(metrics, TRAIN_METRIC, ids).sort_values("step")
    held_out = metric_points(metrics, FINAL_METRIC, ids)
    first_train = train.groupby("run_id", as_index=False).first()
    base_parts = {
        "train": first_train[first_train["step"] <= 1],
        "held-out": held_out[held_out["step"] == 0],
    }
    final_parts = {
        "train": last_points(metrics, TRAIN_METRIC, ids),
        "held-out": last_points(metrics, FINAL_METRIC, ids),
    }
    frames = []
    for prompts, points in base_parts.items():
        per_seed = (
            points.merge(trials[["run_id", "side", "resolution_label", "seed"]])
            .groupby(["side", "resolution_label", "seed"], as_index=False)["value"]
            .mean()
        )
        frames.append(per_seed.assign(model="Base model", method="base", prompts=prompts))
    for prompts, points in final_parts.items():
        per_trial = points.merge(trials[["run_id", "side", "resolution_label", "series", "method"]])
        frames.append(per_trial.rename(columns={"series": "model"}).assign(prompts=prompts))
    values = pd.concat(frames, ignore_index=True)
    table = summarise(values, ["side", "resolution_label", "method", "model", "prompts"])
    return method_first(table, ["model", "prompts"]).sort_values("side", kind="stable").reset_index(drop=True)


# -- Table 7: memory --------------------------------------------------------------------------------
def component_match(column: str, key: str) -> bool:
    return re.search(rf"(^|[._/]){re.escape(key)}([._/]|$)", str(column)) is not None


def memory(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str = PEAK_MEMORY) -> pd.DataFrame:
    """Per method and combination of the settings that vary (the memory switches first): a trial's peak of
    `metric`, over seeds. Other varying settings (resolution, variants) stay columns so that they never pool."""
    require_metric(metrics, metric, trials)
    varying = [c for c in setting_columns(trials) if c != "method" and varies(trials[c])]
    # a switch that only differs between methods (DPO's batch beside VADER's) is no ablation of it
    within = set().union(*varying_within_method(trials).values())
    switches = [c for c in varying if c in within and any(component_match(c, key) for key in MEMORY_SWITCHES)]
    if not switches:
        raise MissingRuns("no memory switch (" + ", ".join(MEMORY_SWITCHES) + ") varies among a method's trials")
    columns = switches + [c for c in varying if c not in switches]
    peaks = metric_points(metrics, metric, trials["run_id"]).groupby("run_id", as_index=False)["value"].max()
    rows = peaks.merge(trials[["run_id", "method", *columns]])
    rows[columns] = rows[columns].apply(lambda column: column.map(lambda v: "—" if pd.isna(v) else str(v)))
    table = method_first(summarise(rows, ["method", *columns]), columns)
    return table.assign(method=table["method"].map(method_display))


# -- where the time goes ----------------------------------------------------------------------------
#: the parts of a trial's time beside the phases: what the phases leave of its wall time, and its start-up
OTHER, STARTUP = "other", "start-up"


def time_breakdown(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per series, resolution and part (each phase, other, start-up): seconds per trial, mean over seeds.

    A phase's seconds are its cumulative `time_<phase>_s` at the trial's last logged step; "other" is
    `wall_time_s` there minus the phases (bookkeeping); "start-up" is `startup_s` (run time beyond the loop).
    """
    require_metric(metrics, metric_name(PHASES[0]), trials)
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    ids = trials["run_id"]
    parts = {phase: last_points(metrics, metric_name(phase), ids) for phase in PHASES}
    wall = last_points(metrics, WALL_TIME, ids).set_index("run_id")["value"]
    phase_sum = sum(points.set_index("run_id")["value"] for points in parts.values())
    parts[OTHER] = (wall - phase_sum).clip(lower=0).rename("value").reset_index()
    parts[STARTUP] = last_points(metrics, STARTUP_TIME, ids)
    rows = pd.concat([points.assign(part=part) for part, points in parts.items() if not points.empty])
    rows = rows.merge(trials[["run_id", "method", "series", "side", "resolution_label"]])
    table = summarise(rows, ["method", "series", "side", "resolution_label", "part"])
    order = {part: i for i, part in enumerate([*PHASES, OTHER, STARTUP])}
    table = table.assign(_part=table["part"].map(order)).sort_values(["side", "_part"], kind="stable")
    return method_first(table.drop(columns="_part"), ["series", "side"])


# -- the tuning stage -------------------------------------------------------------------------------
def tuned_keys(trials: pd.DataFrame) -> list[str]:
    """The param columns the tuning stage searched: settings that vary within some method and resolution
    (`trials`: tuning trials `with_resolution`); MissingRuns where none does."""
    fixed = {"method", "resolution", "seed", "stage", "trial_id"}
    keys = [
        c
        for c in setting_columns(trials)
        if short_name(c) not in fixed and any(varies(g[c]) for _, g in trials.groupby(["method", "side"]))
    ]
    if not keys:
        raise MissingRuns("the tuning trials of every method share one setting: nothing was tuned")
    return keys


def recent_means(metrics: pd.DataFrame, metric: str, run_ids, last: int) -> pd.Series:
    """run_id -> the mean of the run's values of `metric` at its last `last` logged steps."""
    points = metric_points(metrics, metric, run_ids).sort_values(["run_id", "step"])
    return points.groupby("run_id")["value"].agg(lambda values: recent_mean(values.tolist(), last))


def tuning(trials: pd.DataFrame, metrics: pd.DataFrame, evaluations: int) -> tuple[pd.DataFrame, list[str]]:
    """(rows, tuned keys): per tuning setting (method, resolution, values of the tuned keys), the validation
    reward at the last step and the tuning score as the stage scored it (the mean of each trial's last `evaluations`
    evaluations; both means over tuning seeds), whether every seed ran to the budget, the last step reached, and
    `chosen`: the setting with the best score among those that ran to the budget; with the truths the trials
    logged (`gold`, `fidelity`: not read by the choice) at the last step."""
    if trials.empty:
        raise MissingRuns("no tuning stage (no finished trials with stage `tune`)")
    require_metric(metrics, FINAL_METRIC, trials)
    trials = with_resolution(trials)
    ids = trials["run_id"]
    last = last_points(metrics, FINAL_METRIC, ids).rename(columns={"value": "validation"})
    score = recent_means(metrics, TUNING_SCORE, ids, evaluations).rename("score").reset_index()
    last = last.merge(score, on="run_id", how="left")
    truths = [name for name, metric in TRUTHS.items() if metrics["metric"].eq(metric).any()]
    for name in truths:  # what the choice does not read: the toy world's truths of the same validation videos
        values = last_points(metrics, TRUTHS[name], ids)[["run_id", "value"]].rename(columns={"value": name})
        last = last.merge(values, on="run_id", how="left")
    spent = metric_points(metrics, BUDGET_SPENT, ids)[["run_id"]].assign(reached=True)
    rows = trials.merge(last, on="run_id").merge(spent, on="run_id", how="left")
    rows["reached"] = rows["reached"].fillna(False).astype(bool)
    keys = tuned_keys(trials)
    group = ["method", "side", "resolution_label", *keys]
    table = rows.groupby(group, as_index=False, dropna=False).agg(
        reward=("validation", "mean"),
        score=("score", "mean"),
        seeds=("validation", "size"),
        reached=("reached", "all"),
        step=("step", "max"),
        started=("start_time", "min"),
        **{name: (name, "mean") for name in truths},
    )
    table["chosen"] = False
    for _, candidates in table[table["reached"]].groupby(["method", "side"]):
        table.loc[best_setting(candidates, "score"), "chosen"] = True
    return method_first(table.drop(columns="started"), ["side", *keys]), keys


def best_setting(candidates: pd.DataFrame, score: str):
    """The index of the candidate setting with the highest `score`; of equals, the one whose trials started first
    (the first drawn: the tuning stage's own rule, `experiment.tuning.choose`)."""
    return candidates.sort_values("started", kind="stable")[score].idxmax()


# -- headroom, gold and caption fidelity ---------------------------------------------------------------
HEADROOM_METRICS = {
    "chance": EVAL_CHANCE_REWARD,
    "oracle": EVAL_ORACLE_REWARD,
    "chance gold": EVAL_CHANCE_GOLD,
    "oracle gold": EVAL_ORACLE_GOLD,
}
#: the toy world's truths of the evaluation videos, where a trial logs them
TRUTHS = {"gold": EVAL_GOLD_MEAN, "fidelity": EVAL_FIDELITY}


def headroom(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per resolution: the reward (and gold) of chance and oracle videos of the evaluation prompts, and of the
    base model (`eval_reward_mean` at step 0); logged by every trial at step 0, averaged. Empty if not logged."""
    trials = with_resolution(trials)
    rows = []
    for (side, label), at in trials.groupby(["side", "resolution_label"]):
        row = {"side": side, "resolution_label": label}
        for name, metric in {**HEADROOM_METRICS, "base": FINAL_METRIC, "base gold": EVAL_GOLD_MEAN}.items():
            if (value := step_zero_mean(metrics, metric, at["run_id"])) is not None:
                row[name] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    return table if {"chance", "oracle"} <= set(table.columns) else pd.DataFrame()


def proxy_and_gold(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per series, resolution and evaluation step: mean over seeds of the reward, its gold and caption fidelity."""
    require_metric(metrics, EVAL_GOLD_MEAN, trials)
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    ids = trials["run_id"]
    points = metric_points(metrics, FINAL_METRIC, ids).rename(columns={"value": "proxy"})
    for name, metric in TRUTHS.items():
        points = points.merge(
            metric_points(metrics, metric, ids).rename(columns={"value": name}), on=["run_id", "step"], how="left"
        )
    points = points.merge(trials[["run_id", "method", "series", "side", "resolution_label"]])
    table = points.groupby(["method", "series", "side", "resolution_label", "step"], as_index=False)[
        ["proxy", "gold", "fidelity"]
    ].mean()
    return method_first(table, ["series", "side", "step"])
