"""The numbers behind the findings' verdict, tabulated: the gap on each measure and its slope, the precision, the
cost ratios to both targets, the truths against the base model's, the headroom closed and the baselines'
movement. Read off the typed summary, like the findings (`findings`)."""

from __future__ import annotations

import math

import pandas as pd

from vaderbench.report.findings import MEASURE_NAMES, ordered, text_of
from vaderbench.report.markdown import interval_text, markdown_table, number
from vaderbench.report.select import method_display
from vaderbench.report.summary import Interval, Ratio, Summary

TARGETS = {"best_baseline": "the best baseline's final reward", "half_headroom": "half the base-to-oracle headroom"}
SPENDING = {"queries": "reward queries", "device_s": "device-seconds"}
#: what a truth's value below the base model's says
FELL = {"gold": "over-optimised", "fidelity": "drifted from the captions"}


def gaps_table(summary: Summary) -> pd.DataFrame:
    """Per resolution and measure: the best baseline on it, the reference minus it, the smallest gap detectable;
    then each measure's slope against log2(resolution)."""
    rows = []
    for label, at in summary.resolutions.items():
        row = {"resolution": f"{label} px"}
        for measure, gap in at.gaps.items():
            difference = gap.difference
            row[f"{measure}: best baseline"] = method_display(gap.best_baseline)
            row[f"{measure}: difference"] = interval_text(difference.mean, difference.low, difference.high)
            row[f"{measure}: detectable"] = "—" if gap.detectable is None else number(gap.detectable)
        rows.append(row)
    if summary.slopes:
        rows.append(
            {"resolution": "slope per doubling"}
            | {f"{m}: difference": interval_text(s.mean, s.low, s.high) for m, s in summary.slopes.items()}
        )
    return pd.DataFrame(rows).fillna("")


def precision_table(summary: Summary) -> pd.DataFrame:
    rows = []
    for label, at in summary.resolutions.items():
        p = at.precision
        if p.met is None:
            continue
        rows.append(
            {
                "resolution": f"{label} px",
                "widest half-width": number(p.widest_half_width),
                "target (a tenth of the headroom)": number(p.target),
                "met": "yes" if p.met else "no",
                "seeds per method to meet it": "—" if p.seeds_needed is None else str(p.seeds_needed),
            }
        )
    return pd.DataFrame(rows)


def ratio_text(ratio: Ratio, other: str) -> str:
    """One ratio of costs: its value and what it supports."""
    if ratio.ratio is None:
        return f"no ratio ({ratio.note})"
    value = ratio.ratio
    if math.isnan(value.mean):
        return "no ratio (the target is no higher than the base model)"
    text = interval_text(value.mean, value.low, value.high)
    if math.isnan(value.low):
        return f"{text} (one seed: no interval)"
    if ratio.upper_bound:
        return f"≤ {text} ({method_display(other)} missed it in some seed: its budget stands in)"
    verdict = "not distinguishable from 1"
    if value.excludes(1.0):
        verdict = "fewer" if value.mean < 1 else "more"
    return f"{text} ({verdict})"


def ratios_table(summary: Summary) -> pd.DataFrame:
    rows = [
        {
            "resolution": f"{label} px",
            "baseline": method_display(other),
            "target": TARGETS[target],
            **{SPENDING[spending]: ratio_text(ratio, other) for spending, ratio in per_spending.items()},
        }
        for label, at in summary.resolutions.items()
        for other, per_target in at.ratios.items()
        for target, per_spending in per_target.items()
    ]
    return pd.DataFrame(rows)


def truth_table(summary: Summary, key: str) -> pd.DataFrame:
    """Per resolution: the base model's value of truth `key`, each method's after training, and who fell below."""
    rows = []
    for label, at in summary.resolutions.items():
        if (truth := at.truth(key)) is None:
            continue
        after = ordered(truth.after)
        below = [method_display(m) for m, value in after if value.high < truth.base]
        above = [method_display(m) for m, value in after if value.low > truth.base]
        rows.append(
            {
                "resolution": f"{label} px",
                "base model": number(truth.base),
                **{method_display(m): text_of(value) for m, value in after},
                f"below the base ({FELL[key]})": ", ".join(below) or "none",
                "above the base": ", ".join(above) or "none",
            }
        )
    return pd.DataFrame(rows)


def headroom_table(summary: Summary) -> pd.DataFrame:
    rows = []
    for label, at in summary.resolutions.items():
        room = at.headroom
        if room.span is None:
            continue
        row = {"resolution": f"{label} px", "chance": number(room.chance) if room.chance is not None else "—"}
        row |= {"base": number(room.base), "oracle": number(room.oracle)}
        for method, result in ordered(at.methods):
            closed = result.headroom_closed
            if closed is not None:
                row[f"{method_display(method)} closed (%)"] = text_of(
                    Interval(100 * closed.mean, 100 * closed.low, 100 * closed.high)
                )
        rows.append(row)
    return pd.DataFrame(rows)


def movement_table(summary: Summary) -> pd.DataFrame:
    rows = []
    for label, at in summary.resolutions.items():
        if at.movement is None:
            continue
        needed = at.movement.queries_to_move
        row = {"resolution": f"{label} px"}
        for method, gain in ordered(at.movement.methods):
            moved = "moved" if gain.moved else "did not move"
            row[method_display(method)] = f"{text_of(gain.gain)} ({moved}; {number(gain.queries)} queries)"
        if summary.reference:
            row[f"{method_display(summary.reference)}'s queries to move"] = (
                "never" if needed is None else number(needed)
            )
        rows.append(row)
    return pd.DataFrame(rows)


def details(summary: Summary) -> list[str]:
    """Markdown: the findings' numbers in tables, each with what it holds."""
    name = method_display(summary.reference) if summary.reference else "the reference"
    parts = [
        (
            f"{name} minus the best baseline on each measure ({', '.join(MEASURE_NAMES.values())}; Welch's 95% "
            "interval, and the smallest difference this study could detect at 80% power); last row: each gap's "
            "least-squares slope against log2(resolution), bootstrap 95% interval",
            gaps_table(summary),
        ),
        (
            "Precision: the widest 95% interval of a final reward against a tenth of the base-to-oracle headroom, "
            "and the seeds per method that would meet it at the spread seen",
            precision_table(summary),
        ),
        (
            f"{name}'s cost to a target over a baseline's (bootstrap 95% interval)",
            ratios_table(summary),
        ),
        ("Gold (the truth the learned reward stands for) before and after training", truth_table(summary, "gold")),
        (
            "Caption fidelity (colour, shape, direction and background seen as the caption names them) before and "
            "after training",
            truth_table(summary, "fidelity"),
        ),
        (
            "Headroom: the reward of chance videos, of the base model and of the oracle render of each evaluation "
            "prompt, and the share of base-to-oracle each method closed",
            headroom_table(summary),
        ),
        (
            "Movement: the final learned reward minus the same trial's step-0 reward (paired per seed, 95% "
            "t-interval), with the queries spent; moved: the interval lies above 0",
            movement_table(summary),
        ),
    ]
    lines = ["## Findings in detail"]
    for caption, table in parts:
        if not table.empty:
            lines += ["", caption, "", markdown_table(table)]
    return lines
