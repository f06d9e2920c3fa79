"""Means over seeds with 95% confidence intervals.

One seed is one independent trial, so a cell's interval is Student's t-interval over its seeds:
mean ± t(0.975, n-1) · s / √n, with s the sample standard deviation (n-1 in the denominator). A
difference of two methods' means (the resolution gap) gets Welch's interval: the two methods' seeds are
independent trials with possibly different spreads, so no pairing by seed and no pooled variance;
degrees of freedom by Welch–Satterthwaite. With fewer than two seeds behind a mean there is no interval
(NaN bounds), and the tables say n=1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    #: seeds behind the mean (for a difference: the smaller of the two groups)
    n: int


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return Estimate(mean, math.nan, math.nan, int(x.size))
    half = stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return Estimate(mean, mean - half, mean + half, int(x.size))


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Interval for mean(a) - mean(b) from two independent samples."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("welch_interval needs values in both groups")
    diff = float(a.mean() - b.mean())
    n = int(min(a.size, b.size))
    if n < 2:
        return Estimate(diff, math.nan, math.nan, n)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, diff, diff, n)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf((1 + confidence) / 2, dof) * se
    return Estimate(diff, diff - half, diff + half, n)


def summarise(frame: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, CI bounds and n of `value` per group of `by` (one row per group, groups in sorted order)."""
    rows = []
    for key, group in frame.groupby(by, sort=True, dropna=False):
        estimate = t_interval(group[value].to_numpy())
        rows.append(
            {
                **dict(zip(by, key)),  # grouping by a list gives tuple keys
                "mean": estimate.mean,
                "low": estimate.low,
                "high": estimate.high,
                "n": estimate.n,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


# -- bootstrap over seeds -----------------------------------------------------------------------------
#: resamples of a bootstrap interval, and the seed of its random resampling (a report is reproducible)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def resample_means(
    groups: Sequence[Sequence[float]], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Bootstrap replicates of each group's mean: [resamples, groups]; each group's seeds resampled on their own."""
    rng = np.random.default_rng(seed)
    columns = []
    for values in groups:
        x = np.asarray(values, dtype=float)
        if x.size == 0:
            raise ValueError("a bootstrap needs at least one value in every group")
        picks = rng.integers(0, x.size, size=(resamples, x.size))
        columns.append(x[picks].mean(axis=1))
    return np.stack(columns, axis=1)


def percentile_interval(replicates: np.ndarray, point: float, confidence: float = CONFIDENCE) -> Estimate:
    """The percentile bootstrap interval of `replicates` around the estimate `point` (n: the replicates)."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(float(point), float(low), float(high), int(replicates.size))


def ratio_of_means(
    numerator: Sequence[float], denominator: Sequence[float], confidence: float = CONFIDENCE
) -> Estimate:
    """mean(numerator) / mean(denominator) with a percentile bootstrap interval over the seeds of each.

    n is the smaller group's number of seeds. With fewer than two seeds in a group there is no interval;
    a denominator of mean 0 (a method that reached nothing) gives NaN, reported as undefined.
    """
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(a.mean() / b.mean())
    n = int(min(a.size, b.size))
    if n < 2:
        return Estimate(point, math.nan, math.nan, n)
    means = resample_means([a, b])
    with np.errstate(divide="ignore", invalid="ignore"):
        interval = percentile_interval(means[:, 0] / means[:, 1], point, confidence)
    return Estimate(point, interval.low, interval.high, n)


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The least-squares slope of y on x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx**2).sum())


def gap_slope(
    x: Sequence[float],
    ours: Sequence[Sequence[float]],
    theirs: Sequence[Sequence[float]],
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Slope over x of mean(ours[i]) - mean(theirs[i]) (the gap at each x), with a percentile bootstrap
    interval: every group's seeds resampled on their own. n: the fewest seeds of any group."""
    gaps = [np.mean(a) - np.mean(b) for a, b in zip(ours, theirs)]
    point = slope(x, gaps)
    n = int(min(len(g) for g in [*ours, *theirs]))
    if n < 2:
        return Estimate(point, math.nan, math.nan, n)
    means = resample_means([*ours, *theirs])
    k = len(ours)
    replicate_gaps = means[:, :k] - means[:, k:]
    dx = np.asarray(x, dtype=float) - np.mean(x)
    slopes = (replicate_gaps - replicate_gaps.mean(axis=1, keepdims=True)) @ dx / (dx**2).sum()
    return percentile_interval(slopes, point, confidence)


def detectable_difference(
    a: Sequence[float], b: Sequence[float], power: float = 0.8, confidence: float = CONFIDENCE
) -> float:
    """The smallest difference of two means that a two-sided Welch test at `confidence` would find with
    probability `power`, given these groups' spreads and sizes: (t_{1-alpha/2} + t_{power}) x standard error."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(a.size, b.size) < 2:
        return math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float((stats.t.ppf((1 + confidence) / 2, dof) + stats.t.ppf(power, dof)) * se)


def seeds_for_half_width(values: Sequence[float], half_width: float, confidence: float = CONFIDENCE) -> int | None:
    """The fewest seeds n whose 95% t-interval, t_{n-1} x s / sqrt(n), is narrower than `half_width` at the
    spread s of `values` (their sample standard deviation); None without a spread to go by."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or half_width <= 0:
        return None
    spread = float(values.std(ddof=1))
    n = 2
    while stats.t.ppf((1 + confidence) / 2, n - 1) * spread / math.sqrt(n) >= half_width:
        n += 1
    return n
