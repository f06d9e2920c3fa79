"""The findings at a glance (table and verdict), the baselines' movement and the tuning regret, on rigged summaries
and rigged metric frames: every expected number is written here or computed with scipy, never with the report's
own `stats`."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vaderbench.metrics import BUDGET_SPENT, EVAL_GOLD_MEAN, TUNING_SCORE
from vaderbench.report.findings import at_a_glance, verdict
from vaderbench.report.movement import movement
from vaderbench.report.regret import tuning_regret
from vaderbench.report.summary import (
    Choice,
    CostToTarget,
    Gain,
    Gap,
    Headroom,
    Interval,
    MethodResult,
    Movement,
    Precision,
    Ratio,
    Regret,
    Resolution,
    Summary,
    Tuning,
)

NO_PRECISION = Precision(None, None, None, None)


def method(final, gold, fidelity, reached=(3, 3)) -> MethodResult:
    cost = CostToTarget(reached[0], reached[1], 10.0 if reached[0] else None)
    return MethodResult(
        Interval(*final),
        seeds=3,
        truths={"gold": Interval(*gold), "fidelity": Interval(*fidelity)},
        costs={"queries": {"best_baseline": cost}, "device_s": {"best_baseline": cost}},
    )


def resolution(vader_final, ratios, movement=None, gaps=None) -> Resolution:
    return Resolution(
        targets={"best_baseline": 0.45},
        methods={
            "vader": method(vader_final, (0.30, 0.28, 0.32), (0.41, 0.385, 0.435)),
            "ddpo": method((0.44, 0.42, 0.46), (0.40, 0.39, 0.41), (0.61, 0.585, 0.635), reached=(0, 3)),
            "dpo": method((0.45, 0.43, 0.47), (0.39, 0.37, 0.41), (0.60, 0.58, 0.62), reached=(2, 3)),
        },
        headroom=Headroom(0.1, 0.3, 0.9, {"gold": 0.4, "fidelity": 0.6}),
        precision=NO_PRECISION,
        gaps=gaps or {},
        ratios=ratios,
        movement=movement,
    )


def ratios(ddpo, dpo) -> dict:
    return {
        "ddpo": {
            "best_baseline": {"queries": Ratio(Interval(*ddpo), upper_bound=True), "device_s": Ratio(None, note="x")}
        },
        "dpo": {
            "best_baseline": {"queries": Ratio(Interval(*dpo), upper_bound=True), "device_s": Ratio(Interval(*dpo))}
        },
    }


def rigged(slopes: dict[str, Interval], gaps: dict[str, dict[str, Gap]] | None = None, **extra) -> Summary:
    gaps = gaps or {}
    return Summary(
        reference="vader",
        resolutions={
            "16": resolution(
                (0.55, 0.50, 0.60), ratios((0.0064, 0.0060, 0.0068), (0.21, 0.12, 0.35)), gaps=gaps.get("16")
            ),
            "32": resolution((0.75, 0.70, 0.80), ratios((0.014, 0.0099, 0.0169), (0.5, 0.4, 0.7)), gaps=gaps.get("32")),
        },
        slopes=slopes,
        **extra,
    )


def table_rows(lines: list[str]) -> list[dict[str, str]]:
    """The first Markdown table of `lines` as one dict per row."""
    table = "\n".join(lines).split("\n\n")[0].splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in table[2:]]


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", text)]


def test_the_glance_table_shows_summary_json_s_values():
    summary = rigged({"reward": Interval(0.2, 0.1, 0.3)})
    saved = json.loads(summary.to_json())  # what a reader of summary.json sees
    rows = table_rows(at_a_glance(summary))
    assert [row["resolution"] for row in rows] == ["16 px", "32 px"]
    for row, label in zip(rows, ("16", "32")):
        for m, name in (("vader", "VADER"), ("ddpo", "DDPO"), ("dpo", "DPO")):
            mean, low, high = saved["resolutions"][label]["methods"][m]["final"]
            shown_mean, shown_half = numbers(row[f"{name} reward"])
            assert shown_mean == pytest.approx(mean, abs=1e-3) and shown_half == pytest.approx((high - low) / 2)
            for key in ("gold", "fidelity"):  # means: their intervals are in the details
                assert float(row[f"{name} {key}"]) == pytest.approx(saved["resolutions"][label]["methods"][m][key][0])
        pairs = saved["ratios"][label]
        ddpo, dpo = pairs["vader/ddpo"]["best_baseline"], pairs["vader/dpo"]["best_baseline"]
        # DDPO reached the target in no seed: an upper bound, "not reached"; DPO in two of three
        assert row["queries VADER / DDPO"].startswith("≤ ") and row["queries VADER / DDPO"].endswith("(not reached)")
        assert numbers(row["queries VADER / DDPO"])[:3] == pytest.approx(ddpo["queries"]["ratio"], rel=0.02)
        assert row["queries VADER / DPO"].endswith("(2/3 reached)")
        assert numbers(row["queries VADER / DPO"])[:3] == pytest.approx(dpo["queries"]["ratio"], rel=0.02)
        assert numbers(row["device-s VADER / DPO"]) == pytest.approx(dpo["device_s"]["ratio"], rel=0.02)
        assert row["device-s VADER / DDPO"] == "— (VADER missed it)"


@pytest.mark.parametrize(
    "slope, said",
    [
        ((0.05, 0.01, 0.09), "holds here"),
        ((-0.05, -0.09, -0.01), "fails here"),
        ((0.05, -0.01, 0.11), "is undecided here"),
        ((0.05, math.nan, math.nan), "is undecided here"),  # one seed: no interval, nothing decided
    ],
)
def test_the_verdict_says_whether_the_figure_3_claim_holds_fails_or_is_undecided(slope, said):
    summary = rigged({"reward": Interval(*slope), "gold": Interval(-0.02, -0.03, -0.01)})
    first, second = verdict(summary)[:2]
    assert first.startswith("The paper's Figure 3 claim (VADER's lead over the best baseline grows with resolution) ")
    assert f"{said} on the learned reward" in first
    assert second.startswith("On the truth, VADER minus the best baseline: gold: the difference falls (")


def test_the_verdict_says_where_the_reference_is_ahead_on_each_measure_in_at_most_five_sentences():
    def gap(mean, low, high):
        return Gap("dpo", Interval(mean, low, high), 0.05)

    gaps = {
        "16": {"reward": gap(0.1, 0.05, 0.15), "gold": gap(-0.1, -0.15, -0.05), "fidelity": gap(-0.2, -0.3, -0.1)},
        "32": {"reward": gap(0.3, 0.2, 0.4), "gold": gap(0.0, -0.05, 0.05), "fidelity": gap(0.1, 0.05, 0.15)},
    }
    sentences = verdict(rigged({"reward": Interval(0.2, 0.1, 0.3)}, gaps))
    assert len(sentences) <= 5
    assert (
        "Against the best baseline VADER is ahead at every resolution on the learned reward; behind at 16 px on "
        "gold; ahead at 32 px, behind at 16 px on caption fidelity." in sentences
    )


def rigged_evaluations() -> tuple[pd.DataFrame, pd.Series]:
    """Three seeds of VADER (8 queries an evaluation) and of DDPO (80), evaluations at steps 0, 1, 2."""
    base = [0.30, 0.32, 0.29]
    gains = {
        "vader": [[0.01, -0.01, 0.02], [0.05, 0.06, 0.055]],  # not above 0 at step 1; above at step 2
        "ddpo": [[0.0, 0.01, -0.005], [0.01, -0.01, 0.004]],  # never above 0
    }
    rows, method_of = [], {}
    for name, per_step in gains.items():
        for seed in range(3):
            run = f"{name}-{seed}"
            method_of[run] = name
            per_query = 8.0 if name == "vader" else 80.0
            rows.append({"run_id": run, "step": 0, "reward": base[seed], "queries": 0.0})
            for step, values in enumerate(per_step, start=1):
                reward = base[seed] + values[seed]
                rows.append({"run_id": run, "step": step, "reward": reward, "queries": per_query * step})
    return pd.DataFrame(rows), pd.Series(method_of)


def t95(values) -> tuple[float, float, float]:
    values = np.asarray(values)
    low, high = stats.t.interval(0.95, values.size - 1, loc=values.mean(), scale=stats.sem(values))
    return values.mean(), low, high


def test_movement_is_the_paired_gain_over_step_0_and_the_queries_the_reference_needed_to_move():
    points, method_of = rigged_evaluations()
    found = movement(points, method_of, "vader")
    assert found.queries_to_move == 16.0  # step 2: the first whose gain's interval lies above 0 (step 1's does not)
    assert t95([0.01, -0.01, 0.02])[1] < 0 < t95([0.05, 0.06, 0.055])[1]
    vader, ddpo = found.methods["vader"], found.methods["ddpo"]
    assert (vader.gain.mean, vader.gain.low, vader.gain.high) == pytest.approx(t95([0.05, 0.06, 0.055]))
    assert (ddpo.gain.mean, ddpo.gain.low, ddpo.gain.high) == pytest.approx(t95([0.01, -0.01, 0.004]))
    assert vader.moved and not ddpo.moved
    assert ddpo.queries == 160.0 and found.budget_ratio("ddpo") == 10.0


@pytest.mark.parametrize(
    "spent, dpo_moved, said",
    [
        (
            160.0,
            True,
            "DDPO did not move its reward beyond the seeds' noise within 160 queries at every resolution, 10x the 16 "
            "VADER needed to move its own; DPO moved its reward beyond the seeds' noise at every resolution.",
        ),
        (
            48.0,
            True,
            "within 48 queries at every resolution, 3.0x the 16 VADER needed to move its own, under the 4x a fair "
            "budget needs;",
        ),
        (160.0, False, "DDPO and DPO did not move their reward beyond the seeds' noise within 160 queries at every"),
    ],
)
def test_the_verdict_names_the_baselines_that_did_not_move_and_flags_a_budget_under_4x(spent, dpo_moved, said):
    moved = Gain(Interval(0.05, 0.02, 0.08), 160.0)
    still = Gain(Interval(0.0, -0.01, 0.01), spent)
    at = Movement({"vader": moved, "ddpo": still, "dpo": moved if dpo_moved else still}, queries_to_move=16.0)
    summary = rigged({})
    summary = Summary(
        "vader",
        {label: Resolution(**{**vars(r), "movement": at}) for label, r in summary.resolutions.items()},
    )
    assert said in " ".join(verdict(summary))


def tuning_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """VADER tuned at 32 px on two seeds: lr 1e-3 wins on gold, 1e-2 on the proxy; 1e-1, the best on both, was
    stopped early (no budget_spent) and does not compete."""
    proxy = {
        "0.001": [[0.1, 0.4, 0.5], [0.1, 0.5, 0.6]],
        "0.01": [[0.1, 0.6, 0.7], [0.1, 0.7, 0.7]],
        "0.1": [[0.9], [0.9]],
    }
    gold = {
        "0.001": [[0.3, 0.35, 0.36], [0.3, 0.33, 0.38]],
        "0.01": [[0.3, 0.31, 0.29], [0.3, 0.30, 0.32]],
        "0.1": [[0.9], [0.9]],
    }
    trials, points = [], []
    for order, lr in enumerate(proxy):
        for seed in range(2):
            run = f"{lr}-{seed}"
            trials.append(
                {
                    "run_id": run,
                    "start_time": order,
                    "method": "vader",
                    "resolution": "32",
                    "lr": lr,
                    "seed": str(1000 + seed),
                    "stage": "tune",
                }
            )
            for metric, values in ((TUNING_SCORE, proxy[lr][seed]), (EVAL_GOLD_MEAN, gold[lr][seed])):
                points += [{"run_id": run, "metric": metric, "step": 2 * i, "value": v} for i, v in enumerate(values)]
            if lr != "0.1":
                points.append({"run_id": run, "metric": BUDGET_SPENT, "step": 4, "value": 1.0})
    return pd.DataFrame(trials), pd.DataFrame(points)


def test_tuning_regret_is_the_gold_the_proxy_s_choice_gave_up():
    trials, metrics = tuning_frames()
    found = tuning_regret(trials, metrics, last=2)
    regret = found.regrets["32"]["vader"]
    # scores: the mean over the two seeds of each seed's last two evaluations
    assert regret.proxy == Choice({"lr": "0.01"}, pytest.approx(np.mean([(0.31 + 0.29) / 2, (0.30 + 0.32) / 2])))
    assert regret.truth == Choice({"lr": "0.001"}, pytest.approx(np.mean([(0.35 + 0.36) / 2, (0.33 + 0.38) / 2])))
    assert regret.regret == pytest.approx(0.355 - 0.305)
    assert found.score_evaluations == 2
    # on the last evaluation alone the proxy's choice is the same, and the gold it gave up larger
    assert tuning_regret(trials, metrics, last=1).regrets["32"]["vader"].regret == pytest.approx(0.37 - 0.305)


def test_the_summary_round_trips_with_gaps_slopes_movement_and_tuning():
    gaps = {
        label: {
            "reward": Gap("dpo", Interval(0.1, 0.05, 0.15), 0.04),
            "gold": Gap("ddpo", Interval(-0.1, math.nan, math.nan), None),
        }
        for label in ("16", "32")
    }
    summary = rigged(
        {"reward": Interval(0.2, 0.1, 0.3), "gold": Interval(-0.01, -0.02, 0.0)},
        gaps,
        tuning=Tuning(2, {"32": {"vader": Regret(Choice({"lr": "0.01"}, 0.3), Choice({"lr": "0.001"}, 0.35))}}),
    )
    summary = Summary(
        summary.reference,
        {
            label: Resolution(**{**vars(r), "movement": Movement({"ddpo": Gain(Interval(0.0, -0.1, 0.1), 80.0)}, None)})
            for label, r in summary.resolutions.items()
        },
        summary.slopes,
        summary.tuning,
    )
    text = summary.to_json()
    again = Summary.from_json(text)
    assert again.to_json() == text
    assert again.resolutions["16"].gaps["gold"].best_baseline == "ddpo" and again.slopes["gold"].high == 0.0
    assert again.resolutions["32"].movement.methods["ddpo"].queries == 80.0
    saved = json.loads(text)
    assert saved["movement"]["16"]["methods"]["ddpo"]["moved"] is False
    assert saved["tuning"]["regrets"]["32"]["vader"]["regret"] == pytest.approx(0.05)
