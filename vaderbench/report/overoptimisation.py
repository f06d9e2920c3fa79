"""Reward over-optimisation as Gao et al. (2022) measure it: the truth against the proxy and against the KL.

Per series (a method at one setting) and resolution, over the evaluations of its seeds:
- the gold of the evaluation videos at step 0 (the base model's), at its peak (the step whose mean over
  seeds is highest) and at the last evaluation;
- the rise: gold at the peak minus gold at step 0, paired by seed, with its 95% t-interval. The peak is
  chosen on the same runs, so this interval is optimistic; the last evaluation's change is not;
- the fall after the peak: gold at the last evaluation minus gold at the peak, paired by seed, and whether
  the learned reward still rose over the same steps (over-optimisation: the proxy up, the truth down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vaderbench.metrics import EVAL_GOLD_MEAN, EVAL_KL
from vaderbench.report.select import method_rank, metric_points, with_resolution
from vaderbench.report.stats import Estimate, t_interval
from vaderbench.report.tables import FINAL_METRIC, require_metric, with_series


def trajectories(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run and evaluation step: `proxy`, `gold` and `path_kl` (the policy's KL from the base model), with
    the run's method, series, side and seed."""
    require_metric(metrics, EVAL_GOLD_MEAN, trials)
    require_metric(metrics, EVAL_KL, trials)
    trials = with_series(with_resolution(trials), exclude=("resolution",))
    ids = trials["run_id"]
    points = metric_points(metrics, FINAL_METRIC, ids).rename(columns={"value": "proxy"})
    for name, metric in (("gold", EVAL_GOLD_MEAN), ("path_kl", EVAL_KL)):
        values = metric_points(metrics, metric, ids).rename(columns={"value": name})
        points = points.merge(values, on=["run_id", "step"])
    return points.merge(trials[["run_id", "method", "series", "side", "resolution_label", "seed"]])


@dataclass(frozen=True)
class Curve:
    """One series' over-optimisation at one resolution."""

    method: str
    series: str
    side: float
    resolution_label: str
    base_gold: float
    peak_step: int
    peak_gold: float
    last_step: int
    #: gold at the peak minus at step 0, paired by seed
    rise: Estimate
    #: gold at the last evaluation minus at the peak, paired by seed
    fall: Estimate
    #: the learned reward at the last evaluation minus at the peak (mean over seeds)
    proxy_after_peak: float
    kl_at_peak: float
    kl_last: float

    @property
    def rose(self) -> bool:
        """Gold rose above the base model's: the rise's interval lies above 0."""
        return self.rise.low > 0

    @property
    def over_optimised(self) -> bool:
        """Gold fell below its peak (interval below 0) while the learned reward kept rising."""
        return self.fall.high < 0 and self.proxy_after_peak > 0


def paired(by_step: pd.DataFrame, later: int, earlier: int, column: str) -> Estimate:
    """t-interval over seeds of `column` at step `later` minus at step `earlier` (seeds that logged both)."""
    if later == earlier:
        seeds = len(by_step.loc[later])
        return Estimate(0.0, 0.0, 0.0, seeds)
    both = by_step.loc[[earlier, later], column].unstack(level=0).dropna()
    return t_interval((both[later] - both[earlier]).to_numpy())


def curves(points: pd.DataFrame) -> list[Curve]:
    out = []
    for (method, series, side, label), rows in points.groupby(["method", "series", "side", "resolution_label"]):
        by_step = rows.set_index(["step", "seed"]).sort_index()
        means = rows.groupby("step")[["proxy", "gold", "path_kl"]].mean()
        peak, last = int(means["gold"].idxmax()), int(means.index.max())
        out.append(
            Curve(
                method=method,
                series=series,
                side=side,
                resolution_label=label,
                base_gold=float(means.loc[0, "gold"]) if 0 in means.index else np.nan,
                peak_step=peak,
                peak_gold=float(means.loc[peak, "gold"]),
                last_step=last,
                rise=paired(by_step, peak, 0, "gold"),
                fall=paired(by_step, last, peak, "gold"),
                proxy_after_peak=float(means.loc[last, "proxy"] - means.loc[peak, "proxy"]),
                kl_at_peak=float(means.loc[peak, "path_kl"]),
                kl_last=float(means.loc[last, "path_kl"]),
            )
        )
    return sorted(out, key=lambda curve: method_rank(curve.method))  # stable: series in their order within a method


def means(points: pd.DataFrame) -> pd.DataFrame:
    """Per series, resolution and step: the mean over seeds of `proxy`, `gold` and `path_kl` (the figure's lines)."""
    columns = ["method", "series", "side", "resolution_label", "step"]
    return points.groupby(columns, as_index=False)[["proxy", "gold", "path_kl"]].mean()
