"""The report's intervals against reference computations: exact bootstrap distributions by enumeration,
least squares from numpy, and normal theory where the bootstrap should reach it."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from vaderbench.report.stats import detectable_difference, gap_slope, ratio_of_means, seeds_for_half_width, slope


def exact_bootstrap(groups, statistic):
    """The statistic over every equally likely resample of every group: the exact bootstrap distribution."""
    per_group = [[np.mean(pick) for pick in itertools.product(g, repeat=len(g))] for g in groups]
    return np.array([statistic(*means) for means in itertools.product(*per_group)])


def test_ratio_interval_is_the_percentile_interval_of_the_exact_bootstrap():
    queries_vader, queries_ddpo = [40.0, 52.0, 61.0], [180.0, 240.0, 150.0]
    estimate = ratio_of_means(queries_vader, queries_ddpo)
    exact = exact_bootstrap([queries_vader, queries_ddpo], lambda a, b: a / b)
    low, high = np.percentile(exact, [2.5, 97.5])
    assert estimate.mean == pytest.approx(np.mean(queries_vader) / np.mean(queries_ddpo))
    # 10 000 random resamples against the 19 683 equally likely ones: percentiles agree to a few thousandths
    assert estimate.low == pytest.approx(low, abs=0.01) and estimate.high == pytest.approx(high, abs=0.01)
    assert estimate.n == 3


def test_slope_is_least_squares():
    x, y = [4.0, 5.0, 6.0], [0.01, 0.05, 0.07]
    assert slope(x, y) == pytest.approx(np.polyfit(x, y, 1)[0])


def test_gap_slope_interval_reaches_normal_theory_with_many_seeds():
    rng = np.random.default_rng(1)
    x = np.log2([16, 32, 64])
    sigma, seeds, true_gap = 0.02, 400, np.array([0.01, 0.03, 0.05])
    ours = [true_gap[i] + 0.5 + rng.normal(0, sigma, seeds) for i in range(3)]
    theirs = [0.5 + rng.normal(0, sigma, seeds) for _ in range(3)]
    estimate = gap_slope(x, ours, theirs)
    gaps = [np.mean(a) - np.mean(b) for a, b in zip(ours, theirs)]
    assert estimate.mean == pytest.approx(np.polyfit(x, gaps, 1)[0])
    # each gap has variance 2 sigma^2 / seeds; the slope is sum(w_i gap_i) with w = dx / sum(dx^2)
    dx = x - x.mean()
    half_width = 1.96 * math.sqrt(((dx / (dx**2).sum()) ** 2).sum() * 2 * sigma**2 / seeds)
    assert (estimate.high - estimate.low) / 2 == pytest.approx(half_width, rel=0.06)
    assert estimate.low < 0.02 < estimate.high


def test_detectable_difference_is_the_power_formula():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)
    # large samples: (z_0.975 + z_0.8) x sqrt(2 / n) for unit variances
    expected = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(2 / 5000)
    assert detectable_difference(a, b) == pytest.approx(expected, rel=0.03)
    # small samples use t quantiles at Welch's degrees of freedom: wider than the normal formula
    small_a, small_b = [0.50, 0.52, 0.55], [0.40, 0.47, 0.41]
    se = math.sqrt(np.var(small_a, ddof=1) / 3 + np.var(small_b, ddof=1) / 3)
    assert detectable_difference(small_a, small_b) > (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se
    assert math.isnan(detectable_difference([0.5], [0.4, 0.3]))


def test_cost_to_a_target_interpolates_between_the_evaluations_around_the_crossing():
    import pandas as pd

    from vaderbench.report.efficiency import cost_to

    points = pd.DataFrame(
        {"step": [0, 10, 20, 30], "reward": [0.50, 0.55, 0.65, 0.70], "queries": [0.0, 40.0, 80.0, 120.0]}
    )
    # 0.60 lies halfway between the evaluations at 40 and 80 queries
    assert cost_to(points, 0.60, "queries").spent == pytest.approx(60.0)
    assert cost_to(points, 0.60, "queries").reached
    assert cost_to(points, 0.50, "queries").spent == 0.0  # the base model is there already
    missed = cost_to(points, 0.80, "queries")
    assert not missed.reached and missed.spent == 120.0  # what it spent by its last evaluation: a lower bound


def test_seeds_for_a_half_width_is_the_first_count_whose_t_interval_is_narrow_enough():
    values = [0.50, 0.62, 0.41, 0.58]  # sample std 0.0926
    n = seeds_for_half_width(values, 0.02)
    half = lambda k: stats.t.ppf(0.975, k - 1) * np.std(values, ddof=1) / np.sqrt(k)  # noqa: E731
    assert half(n) < 0.02 <= half(n - 1)
    assert 80 < n < 100  # about (1.96 x 0.0926 / 0.02)^2 = 82, a little more for t
    assert seeds_for_half_width([0.5, 0.5, 0.5], 0.02) == 2
    assert seeds_for_half_width([0.5], 0.02) is None
