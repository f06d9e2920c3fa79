"""Does the reward-gradient method beat the others, per reward query and per device-second, and how does the
gap move with resolution? The numbers behind the report's findings and `summary.json`.

Per resolution, from the finished final trials (one trial per method and seed):
- a method's *final* reward: held-out `eval_reward_mean` at its last step, mean and 95% t-interval over
  seeds; beside it the truths of the same videos where the world knows them: *gold* (`eval_gold_mean`, what the
  learned reward stands for) and *fidelity* (`eval_fidelity`, the caption seen right), each with the base
  model's value (`headroom`: `gold_base`, `fidelity_base`);
- *headroom*: chance, base and oracle values of the reward on the evaluation prompts (logged by every
  trial at step 0; base = the untrained model), and each method's share of base-to-oracle it closed;
- *targets*: the best baseline's final mean reward, and base + `HEADROOM_TARGET` x (oracle - base);
- *cost to a target*: per trial, the reward queries (and device-seconds) spent when its held-out reward
  first reached the target, interpolated linearly between the evaluations around the crossing; a trial
  that never reached it is "not reached", and what it spent by its last evaluation is a lower bound;
- *ratios*: reference method (the reward-gradient one, by its aligner's `family`) / each other method of the
  mean cost to a target, with a percentile
  bootstrap interval over seeds; if some trial of the other method never reached the target, its
  budget stands in for its cost and the ratio is an upper bound ("<="); if the reference never reached
  it, there is no ratio;
- the *gap*: reference minus the best baseline at each resolution, with Welch's interval and the smallest
  difference the study could detect; the *resolution gap*: that gap against log2(resolution), with a
  least-squares slope and its bootstrap interval;
- *precision*: the widest half-width of a method's final-reward interval against `PRECISION_TARGET` of
  the headroom (the study's power target), and the seeds per method that would meet it at the spread
  seen across seeds (that of the most variable method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vaderbench.metrics import DEVICE_TIME, EVAL_CHANCE_REWARD, EVAL_ORACLE_REWARD, REWARD_QUERIES
from vaderbench.registry import ALIGNERS
from vaderbench.report.select import MissingRuns, metric_points, reference_method, step_zero_mean, with_resolution
from vaderbench.report.stats import (
    Estimate,
    detectable_difference,
    gap_slope,
    ratio_of_means,
    seeds_for_half_width,
    t_interval,
    welch_interval,
)
from vaderbench.report.tables import FINAL_METRIC, TRUTHS

#: the share of the base-to-oracle headroom that the second target asks for
HEADROOM_TARGET = 0.5
#: a final reward's 95% interval should be narrower (half-width) than this share of the headroom
PRECISION_TARGET = 0.1
SPENDING = {"queries": REWARD_QUERIES, "device_s": DEVICE_TIME}


@dataclass
class Cost:
    """What one trial spent when it first reached a target, or (not reached) by its last evaluation."""

    spent: float
    reached: bool


def evaluations(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """run_id, step, reward and the ledger at every evaluation of the trials (nothing spent at step 0)."""
    ids = trials["run_id"]
    points = metric_points(metrics, FINAL_METRIC, ids).rename(columns={"value": "reward"})
    for name, metric in SPENDING.items():
        spent = metric_points(metrics, metric, ids).rename(columns={"value": name})
        points = points.merge(spent, on=["run_id", "step"], how="left")
        points.loc[points["step"] == 0, name] = points.loc[points["step"] == 0, name].fillna(0.0)
    return points.sort_values(["run_id", "step"])


def cost_to(points: pd.DataFrame, target: float, spending: str) -> Cost:
    """`spending` when the reward first reached `target` (linear between evaluations), else the last value."""
    previous = None
    for row in points.itertuples():
        if row.reward >= target:
            if previous is None or row.reward == previous.reward:
                return Cost(float(getattr(row, spending)), True)
            fraction = (target - previous.reward) / (row.reward - previous.reward)
            before, after = getattr(previous, spending), getattr(row, spending)
            return Cost(float(before + fraction * (after - before)), True)
        previous = row
    return Cost(float(getattr(points.iloc[-1], spending)), False)


def estimate_list(estimate: Estimate) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in (estimate.mean, estimate.low, estimate.high)]


def analyse(trials: pd.DataFrame, metrics: pd.DataFrame, reference: str | None = None) -> dict:
    """The summary of an efficiency study (the layout of `summary.json`): see the module's docstring.

    `reference` defaults to the reward-gradient method; the baselines are the methods of other families."""
    if trials.empty:
        raise MissingRuns("no finished trials")
    reference = reference or reference_method(trials["method"])
    trials = with_resolution(trials)
    if not metrics["metric"].eq(FINAL_METRIC).any():
        raise MissingRuns(f"no finished trial logged `{FINAL_METRIC}`")
    evals = evaluations(trials, metrics)
    summary: dict = {"reference": reference, "resolutions": {}, "ratios": {}, "headroom": {}}
    gap_rows = []
    for side, at in trials.groupby("side"):
        label = at["resolution_label"].iloc[0]
        ids = at["run_id"]
        finals = evals[evals["run_id"].isin(ids)].groupby("run_id").last()["reward"]
        headroom = {
            "chance": step_zero_mean(metrics, EVAL_CHANCE_REWARD, ids),
            "base": step_zero_mean(metrics, FINAL_METRIC, ids),
            "oracle": step_zero_mean(metrics, EVAL_ORACLE_REWARD, ids),
        }
        summary["headroom"][label] = headroom
        truths = {key: metric_points(metrics, metric, ids) for key, metric in TRUTHS.items()}
        truths = {key: points for key, points in truths.items() if not points.empty}
        truth_last = {key: p.sort_values("step").groupby("run_id").last()["value"] for key, p in truths.items()}
        methods: dict = {}
        seeds_of: dict[str, pd.Series] = {}
        for method, group in at.groupby("method"):
            values = finals.reindex(group["run_id"]).dropna()
            seeds_of[method] = values
            entry = {"final": estimate_list(t_interval(values)), "seeds": int(values.size)}
            for key, last in truth_last.items():
                entry[key] = estimate_list(t_interval(last.reindex(group["run_id"]).dropna()))
            if headroom["oracle"] is not None and headroom["base"] is not None:
                span = headroom["oracle"] - headroom["base"]
                entry["headroom_closed"] = estimate_list(t_interval((values - headroom["base"]) / span))
            methods[method] = entry
        for key in truths:
            if (base := step_zero_mean(metrics, TRUTHS[key], ids)) is not None:
                headroom[f"{key}_base"] = base
        baselines = {m: v for m, v in seeds_of.items() if m != reference and v.size and not reward_gradient(m)}
        targets = {}
        best = max(baselines, key=lambda m: baselines[m].mean()) if baselines else None
        if best is not None:
            targets["best_baseline"] = float(baselines[best].mean())
        if headroom["oracle"] is not None and headroom["base"] is not None:
            targets["half_headroom"] = headroom["base"] + HEADROOM_TARGET * (headroom["oracle"] - headroom["base"])
        costs = {}
        for method, group in at.groupby("method"):
            per_target = {}
            for target_name, target in targets.items():
                per_spending = {}
                for spending in SPENDING:
                    trial_costs = [cost_to(evals[evals["run_id"] == rid], target, spending) for rid in group["run_id"]]
                    per_spending[spending] = trial_costs
                    reached = [c.spent for c in trial_costs if c.reached]
                    methods[method].setdefault(f"{spending}_to_target", {})[target_name] = {
                        "reached": f"{len(reached)}/{len(trial_costs)}",
                        "mean_of_reached": float(np.mean(reached)) if reached else None,
                    }
                per_target[target_name] = per_spending
            costs[method] = per_target
        summary["ratios"][label] = ratios(costs, reference)
        summary["resolutions"][label] = {"targets": targets, "methods": methods}
        if reference in seeds_of and best is not None:
            gap_rows.append((side, seeds_of[reference].to_numpy(), baselines[best].to_numpy(), best))
            summary["resolutions"][label]["gap"] = {
                "best_baseline": best,
                "difference": estimate_list(welch_interval(seeds_of[reference], baselines[best])),
                "detectable": detectable_difference(seeds_of[reference], baselines[best]),
            }
        summary["resolutions"][label]["precision"] = precision(methods, headroom, seeds_of)
    if len(gap_rows) >= 2:
        x = [math.log2(side) for side, *_ in gap_rows]
        estimate = gap_slope(x, [ours for _, ours, _, _ in gap_rows], [theirs for _, _, theirs, _ in gap_rows])
        summary["gap_slope"] = estimate_list(estimate)
    return summary


def precision(methods: dict, headroom: dict, seeds_of: dict[str, pd.Series]) -> dict:
    """The widest half-width of the methods' final-reward intervals, against the precision target, and the
    seeds per method that the most variable method needs to meet it."""
    halves = [(e["final"][2] - e["final"][1]) / 2 for e in methods.values() if e["final"][1] is not None]
    widest = max(halves) if halves and len(halves) == len(methods) else None
    target = None
    if headroom["oracle"] is not None and headroom["base"] is not None:
        target = PRECISION_TARGET * (headroom["oracle"] - headroom["base"])
    met = None if widest is None or target is None else bool(widest < target)
    needed = None
    if target is not None and all(v.size >= 2 for v in seeds_of.values()):
        needed = max(seeds_for_half_width(v, target) for v in seeds_of.values())
    return {"widest_half_width": widest, "target": target, "met": met, "seeds_needed": needed}


def reward_gradient(method: str) -> bool:
    return method in ALIGNERS and ALIGNERS.get(method).family == "reward-gradient"


def ratios(costs: dict, reference: str) -> dict:
    """reference / other of the mean cost to each target, per spending, with bounds where targets were missed."""
    out = {}
    if reference not in costs:
        return out
    for other, per_target in costs.items():
        if other == reference:
            continue
        for target_name, per_spending in per_target.items():
            for spending, theirs in per_spending.items():
                ours = costs[reference][target_name][spending]
                key = f"{reference}/{other}"
                cell = out.setdefault(key, {}).setdefault(target_name, {})
                if not all(c.reached for c in ours):
                    cell[spending] = {"ratio": None, "note": f"{reference} did not reach the target in every seed"}
                    continue
                estimate = ratio_of_means([c.spent for c in ours], [c.spent for c in theirs])
                bound = not all(c.reached for c in theirs)
                cell[spending] = {"ratio": estimate_list(estimate), "upper_bound": bound}
    return out
