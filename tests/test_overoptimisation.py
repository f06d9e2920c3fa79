"""The over-optimisation analysis on rigged trajectories: where gold peaks, whether it rose above the base
model's and whether it fell while the learned reward kept rising, with intervals paired by seed."""

import pandas as pd
import pytest

from vaderbench.report.overoptimisation import curves, means
from vaderbench.report.stats import t_interval


def points(series: str, golds_by_seed: dict[int, list[float]], proxies: list[float]) -> pd.DataFrame:
    rows = []
    for seed, golds in golds_by_seed.items():
        for index, (gold, proxy) in enumerate(zip(golds, proxies)):
            step = 5 * index
            rows.append(
                {"run_id": f"{series}{seed}", "step": step, "proxy": proxy + seed / 100, "gold": gold,
                 "path_kl": float(step**2), "method": "vader", "series": series, "side": 32.0,
                 "resolution_label": "32", "seed": seed}
            )  # fmt: skip
    return pd.DataFrame(rows)


RISE_THEN_FALL = {0: [0.30, 0.34, 0.36, 0.28], 1: [0.31, 0.34, 0.35, 0.25], 2: [0.30, 0.33, 0.37, 0.27]}
FALLS_AT_ONCE = {0: [0.30, 0.25, 0.20, 0.15], 1: [0.31, 0.24, 0.22, 0.16], 2: [0.30, 0.26, 0.21, 0.14]}
REWARD_UP = [0.5, 0.6, 0.7, 0.8]


def test_a_rise_then_a_fall_while_the_reward_rises_is_found_with_paired_intervals():
    (curve,) = curves(points("moderate", RISE_THEN_FALL, REWARD_UP))
    assert (curve.peak_step, curve.last_step) == (10, 15)
    assert curve.peak_gold == pytest.approx((0.36 + 0.35 + 0.37) / 3)
    rise = t_interval([0.36 - 0.30, 0.35 - 0.31, 0.37 - 0.30])
    fall = t_interval([0.28 - 0.36, 0.25 - 0.35, 0.27 - 0.37])
    assert (curve.rise.mean, curve.rise.low, curve.rise.high) == pytest.approx((rise.mean, rise.low, rise.high))
    assert (curve.fall.mean, curve.fall.low, curve.fall.high) == pytest.approx((fall.mean, fall.low, fall.high))
    assert curve.proxy_after_peak == pytest.approx(0.1) and (curve.kl_at_peak, curve.kl_last) == (100.0, 225.0)
    assert curve.rose and curve.over_optimised


def test_gold_that_falls_from_the_start_has_its_peak_at_step_0_and_no_rise():
    (curve,) = curves(points("high", FALLS_AT_ONCE, REWARD_UP))
    assert curve.peak_step == 0 and curve.rise.mean == 0 and not curve.rose
    assert curve.over_optimised  # below its peak (the base model) while the reward rose


def test_a_fall_while_the_reward_falls_too_is_not_over_optimisation():
    (curve,) = curves(points("collapse", FALLS_AT_ONCE, REWARD_UP[::-1]))
    assert curve.fall.high < 0 and curve.proxy_after_peak < 0 and not curve.over_optimised


def test_the_figure_s_lines_are_means_over_seeds():
    table = means(points("moderate", RISE_THEN_FALL, REWARD_UP))
    assert table["gold"].tolist() == pytest.approx([0.3033333, 0.3366667, 0.36, 0.2666667], abs=1e-6)
