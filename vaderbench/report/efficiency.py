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
- the *gaps*: on each measure (the final learned reward, gold, fidelity), reference minus the best baseline on
  that measure at each resolution, with Welch's interval and the smallest difference the study could detect; the
  *slopes*: each measure's gap against log2(resolution), a least-squares slope with its bootstrap interval (the
  paper's Figure 3 claim: the reward-gradient method's advantage grows with resolution);
- *movement*: each method's gain over its own step-0 reward, and the reward queries the reference needed to move
  its own (`movement`);
- *tuning regret*, where the study had a tuning stage (`regret`);
- *precision*: the widest half-width of a method's final-reward interval against `PRECISION_TARGET` of
  the headroom (the study's power target), and the seeds per method that would meet it at the spread
  seen across seeds (that of the most variable method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vaderbench.experiment.schema import Tuning as TuneSection
from vaderbench.metrics import DEVICE_TIME, EVAL_CHANCE_REWARD, EVAL_ORACLE_REWARD, REWARD_QUERIES
from vaderbench.registry import ALIGNERS
from vaderbench.report.movement import movement
from vaderbench.report.regret import tuning_regret
from vaderbench.report.select import (
    MissingRuns,
    last_points,
    method_display,
    metric_points,
    reference_method,
    step_zero_mean,
    with_resolution,
)
from vaderbench.report.stats import (
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
#: what a gap is measured on: the learned reward after training, and each truth of the same videos
MEASURES = {"reward": FINAL_METRIC, **TRUTHS}
#: a tuning score's evaluations where the study's parent run does not say (the schema's default)
SCORE_EVALUATIONS = TuneSection.model_fields["score_evaluations"].default


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


def per_seed_finals(metrics: pd.DataFrame, at: pd.DataFrame) -> dict[str, dict[str, pd.Series]]:
    """measure -> method -> each trial's value at its last evaluation (indexed by run id), for the measures the
    trials logged."""
    finals = {}
    for measure, metric in MEASURES.items():
        last = last_points(metrics, metric, at["run_id"]).set_index("run_id")["value"]
        if not last.empty:
            finals[measure] = {method: last.reindex(group["run_id"]).dropna() for method, group in at.groupby("method")}
    return finals


def best_baseline(values_of: dict[str, pd.Series], reference: str | None) -> str | None:
    """The other method with the highest mean (None where there is none); a reward-gradient reference's baselines
    are the methods of other families (any reference's, in a head-to-head: `analysis/compare_methods.py`)."""
    baselines = [
        m
        for m, v in values_of.items()
        if m != reference and v.size and not (reward_gradient(m) and reward_gradient(reference or ""))
    ]
    return max(baselines, key=lambda m: values_of[m].mean()) if baselines else None


def gap(ours: pd.Series, best: str, theirs: pd.Series) -> Gap:
    return Gap(best, Interval.of(welch_interval(ours, theirs)), detectable_difference(ours, theirs))


def analyse(
    trials: pd.DataFrame,
    metrics: pd.DataFrame,
    reference: str | None = None,
    tuning_trials: pd.DataFrame | None = None,
    score_evaluations: int = SCORE_EVALUATIONS,
) -> Summary:
    """The summary of an efficiency study (`summary.json`): see the module's docstring.

    `reference` defaults to the reward-gradient method; the baselines are the methods of other families. With the
    study's finished tuning trials (and its `tune.score_evaluations`), the summary holds the tuning regret."""
    if trials.empty:
        raise MissingRuns("no finished trials")
    reference = reference or reference_method(trials["method"])
    trials = with_resolution(trials)
    if not metrics["metric"].eq(FINAL_METRIC).any():
        raise MissingRuns(f"no finished trial logged `{FINAL_METRIC}`")
    evals = evaluations(trials, metrics)
    resolutions: dict[str, Resolution] = {}
    gap_rows: dict[str, list] = {}  # measure -> (side, reference's finals, the best baseline's) per resolution
    for side, at in trials.groupby("side"):
        ids = at["run_id"]
        finals = per_seed_finals(metrics, at)
        headroom = Headroom(
            chance=step_zero_mean(metrics, EVAL_CHANCE_REWARD, ids),
            base=step_zero_mean(metrics, FINAL_METRIC, ids),
            oracle=step_zero_mean(metrics, EVAL_ORACLE_REWARD, ids),
            truth_bases={
                key: base for key in TRUTHS if (base := step_zero_mean(metrics, TRUTHS[key], ids)) is not None
            },
        )
        seeds_of = finals["reward"]
        targets = {}
        best = best_baseline(seeds_of, reference)
        if best is not None:
            targets["best_baseline"] = float(seeds_of[best].mean())
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
                final=Interval.of(t_interval(values)),
                seeds=int(values.size),
                truths={key: Interval.of(t_interval(finals[key][method])) for key in TRUTHS if key in finals},
                headroom_closed=(
                    Interval.of(t_interval((values - headroom.base) / headroom.span))
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
        gaps = {}
        for measure, values_of in finals.items():
            ahead = best_baseline(values_of, reference)
            if reference in values_of and values_of[reference].size and ahead is not None:
                gaps[measure] = gap(values_of[reference], ahead, values_of[ahead])
                gap_rows.setdefault(measure, []).append((side, values_of[reference], values_of[ahead]))
        points = evals[evals["run_id"].isin(ids)]
        resolutions[at["resolution_label"].iloc[0]] = Resolution(
            targets=targets,
            methods=methods,
            headroom=headroom,
            precision=precision(methods, headroom, seeds_of),
            gaps=gaps,
            ratios=ratios(costs, reference),
            movement=movement(points, at.set_index("run_id")["method"], reference),
        )
    slopes = {
        measure: Interval.of(
            gap_slope([math.log2(side) for side, _, _ in rows], [o for _, o, _ in rows], [t for _, _, t in rows])
        )
        for measure, rows in gap_rows.items()
        if len(rows) >= 2
    }
    tuning = None
    if tuning_trials is not None:
        tuning = tuning_regret(tuning_trials, metrics, score_evaluations)
    return Summary(reference, resolutions, slopes, tuning)


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
                    note = f"{method_display(reference)} did not reach the target in every seed"
                    cell[spending] = Ratio(None, note=note)
                    continue
                estimate = ratio_of_means([c.spent for c in ours], [c.spent for c in theirs])
                cell[spending] = Ratio(Interval.of(estimate), upper_bound=not all(c.reached for c in theirs))
    return out
