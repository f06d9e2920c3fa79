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
from dataclasses import dataclass
from typing import Sequence

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
        rows.append({**dict(zip(by, key)),  # grouping by a list gives tuple keys
                     "mean": estimate.mean, "low": estimate.low, "high": estimate.high, "n": estimate.n})
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])
