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
from vaderbench.report.summary import (
    CostToTarget,
    Gap,
    Headroom,
    Interval,
    MethodResult,
    Precision,
    Ratio,
    Resolution,
    Summary,
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


def interval(estimate: Estimate) -> Interval:
    return Interval(estimate.mean, estimate.low, estimate.high)


def analyse(trials: pd.DataFrame, metrics: pd.DataFrame, reference: str | None = None) -> Summary:
    """The summary of an efficiency study (`summary.json`): see the module's docstring.

    `reference` defaults to the reward-gradient method; the baselines are the methods of other families."""
    if trials.empty:
        raise MissingRuns("no finished trials")
    reference = reference or reference_method(trials["method"])
    trials = with_resolution(trials)
    if not metrics["metric"].eq(FINAL_METRIC).any():
        raise MissingRuns(f"no finished trial logged `{FINAL_METRIC}`")
    evals = evaluations(trials, metrics)
    resolutions: dict[str, Resolution] = {}
    gap_rows = []
    for side, at in trials.groupby("side"):
        ids = at["run_id"]
        finals = evals[evals["run_id"].isin(ids)].groupby("run_id").last()["reward"]
        truths = {key: metric_points(metrics, metric, ids) for key, metric in TRUTHS.items()}
        truths = {key: points for key, points in truths.items() if not points.empty}
        truth_last = {key: p.sort_values("step").groupby("run_id").last()["value"] for key, p in truths.items()}
        headroom = Headroom(
            chance=step_zero_mean(metrics, EVAL_CHANCE_REWARD, ids),
            base=step_zero_mean(metrics, FINAL_METRIC, ids),
            oracle=step_zero_mean(metrics, EVAL_ORACLE_REWARD, ids),
            truth_bases={
                key: base for key in truths if (base := step_zero_mean(metrics, TRUTHS[key], ids)) is not None
            },
        )
        seeds_of = {method: finals.reindex(group["run_id"]).dropna() for method, group in at.groupby("method")}
        baselines = {m: v for m, v in seeds_of.items() if m != reference and v.size and not reward_gradient(m)}
        targets = {}
        best = max(baselines, key=lambda m: baselines[m].mean()) if baselines else None
        if best is not None:
            targets["best_baseline"] = float(baselines[best].mean())
        if headroom.span is not None:
            targets["half_headroom"] = headroom.base + HEADROOM_TARGET * headroom.span
        # method -> spending -> target -> every trial's cost
        costs = {
            method: {
                spending: {
                    name: [cost_to(evals[evals["run_id"] == rid], target, spending) for rid in group["run_id"]]
                    for name, target in targets.items()
                }
                for spending in SPENDING
            }
            for method, group in at.groupby("method")
        }
        methods = {
            method: MethodResult(
                final=interval(t_interval(values)),
                seeds=int(values.size),
                truths={
                    key: interval(t_interval(last.reindex(at.loc[at["method"] == method, "run_id"]).dropna()))
                    for key, last in truth_last.items()
                },
                headroom_closed=(
                    interval(t_interval((values - headroom.base) / headroom.span))
                    if headroom.span is not None
                    else None
                ),
                costs={
                    spending: {name: reached(trial_costs) for name, trial_costs in per_target.items()}
                    for spending, per_target in costs[method].items()
                    if targets
                },
            )
            for method, values in seeds_of.items()
        }
        gap = None
        if reference in seeds_of and best is not None:
            gap_rows.append((side, seeds_of[reference].to_numpy(), baselines[best].to_numpy()))
            gap = Gap(
                best_baseline=best,
                difference=interval(welch_interval(seeds_of[reference], baselines[best])),
                detectable=detectable_difference(seeds_of[reference], baselines[best]),
            )
        resolutions[at["resolution_label"].iloc[0]] = Resolution(
            targets=targets,
            methods=methods,
            headroom=headroom,
            precision=precision(methods, headroom, seeds_of),
            gap=gap,
            ratios=ratios(costs, reference),
        )
    slope = None
    if len(gap_rows) >= 2:
        x = [math.log2(side) for side, _, _ in gap_rows]
        slope = interval(gap_slope(x, [ours for _, ours, _ in gap_rows], [theirs for _, _, theirs in gap_rows]))
    return Summary(reference, resolutions, slope)


def reached(costs: list[Cost]) -> CostToTarget:
    spent = [c.spent for c in costs if c.reached]
    return CostToTarget(len(spent), len(costs), float(np.mean(spent)) if spent else None)


def precision(methods: dict[str, MethodResult], headroom: Headroom, seeds_of: dict[str, pd.Series]) -> Precision:
    """The widest half-width of the methods' final-reward intervals, against the precision target, and the
    seeds per method that the most variable method needs to meet it."""
    halves = [(r.final.high - r.final.low) / 2 for r in methods.values() if r.final.bounded]
    widest = max(halves) if halves and len(halves) == len(methods) else None
    target = None if headroom.span is None else PRECISION_TARGET * headroom.span
    met = None if widest is None or target is None else bool(widest < target)
    needed = None
    if target is not None and all(v.size >= 2 for v in seeds_of.values()):
        needed = max(seeds_for_half_width(v, target) for v in seeds_of.values())
    return Precision(widest, target, met, needed)


def reward_gradient(method: str) -> bool:
    return method in ALIGNERS and ALIGNERS.get(method).family == "reward-gradient"


def ratios(costs: dict, reference: str | None) -> dict[str, dict[str, dict[str, Ratio]]]:
    """reference / other of the mean cost to each target, per spending, with bounds where targets were missed:
    other -> target -> spending -> ratio. `costs`: method -> spending -> target -> every trial's cost."""
    if reference not in costs:
        return {}
    out: dict[str, dict[str, dict[str, Ratio]]] = {}
    for other, per_spending in costs.items():
        if other == reference:
            continue
        for spending, per_target in per_spending.items():
            for target_name, theirs in per_target.items():
                ours = costs[reference][spending][target_name]
                cell = out.setdefault(other, {}).setdefault(target_name, {})
                if not all(c.reached for c in ours):
                    cell[spending] = Ratio(None, note=f"{reference} did not reach the target in every seed")
                    continue
                estimate = ratio_of_means([c.spent for c in ours], [c.spent for c in theirs])
                cell[spending] = Ratio(interval(estimate), upper_bound=not all(c.reached for c in theirs))
    return out
