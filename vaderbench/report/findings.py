"""The report's first lines: what an efficiency study found, in words, with its numbers and intervals.

Every sentence is read off the typed summary (`summary.Summary`: `efficiency.analyse`'s, or `summary.json`
read back); a claim is stated as supported only when its 95% interval excludes the null value (a difference
of 0, a ratio of 1), and otherwise said not to be supported at this study's power, with the smallest gap the
study could have detected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from vaderbench.report.markdown import estimate_text, interval_text, number
from vaderbench.report.select import method_display, method_order
from vaderbench.report.summary import Gap, Interval, Precision, Ratio, Resolution, Summary, TruthAt

T = TypeVar("T")

TARGETS = {"best_baseline": "the best baseline's final reward", "half_headroom": "half of the base-to-oracle headroom"}
SPENDING = {"queries": "reward queries", "device_s": "device-seconds"}


@dataclass(frozen=True)
class Truth:
    """How the findings speak of one truth of the evaluation videos (a summary key: `gold`, `fidelity`)."""

    title: str  # the report's paragraph
    name: str  # the README's line
    fell: str  # what a value below the base model's says


TRUTHS = {
    "gold": Truth(
        "Gold (the truth the learned reward stands for, read from the pixels; base = the untrained model):",
        "Gold reward (the truth the learned reward stands for)",
        "the learned reward was over-optimised",
    ),
    "fidelity": Truth(
        "Caption fidelity (colour, shape, direction and background seen as the caption names them, by the toy "
        "world's detectors; base = the untrained model):",
        "Caption fidelity (the caption seen right)",
        "the videos drifted from their captions",
    ),
}


def ordered(methods: dict[str, T]) -> list[tuple[str, T]]:
    """(method, value) pairs in the report's method order."""
    return [(m, methods[m]) for m in method_order(list(methods))]


def headroom_line(label: str, at: Resolution) -> str | None:
    room = at.headroom
    if room.span is None:
        return None
    closed = [
        f"{method_display(m)} "
        f"{estimate_text(100 * r.headroom_closed.mean, 100 * r.headroom_closed.low, 100 * r.headroom_closed.high)}%"
        for m, r in ordered(at.methods)
        if r.headroom_closed is not None
    ]
    chance = f"chance {number(room.chance)}, " if room.chance is not None else ""
    return (
        f"- {label} px ({chance}base {number(room.base)}, oracle {number(room.oracle)}): share of the "
        f"base-to-oracle headroom closed: " + ", ".join(closed) + "."
    )


def truth_at(at: Resolution, key: str) -> TruthAt | None:
    """Truth `key` at one resolution with its methods in the report's order; None where it was not logged."""
    found = at.truth(key)
    return None if found is None else TruthAt(found.base, dict(ordered(found.after)))


def truth_values(truth: TruthAt) -> str:
    return ", ".join(f"{method_display(m)} {text_of(value)}" for m, value in truth.after.items())


def below_base(truth: TruthAt) -> list[str]:
    """The methods whose interval lies wholly below the base model's value."""
    return [method_display(m) for m, value in truth.after.items() if value.high < truth.base]


def text_of(value: Interval) -> str:
    return estimate_text(value.mean, value.low, value.high)


def truth_line(label: str, at: Resolution, key: str) -> str | None:
    """Every method's value of truth `key` after training against the base model's, and what it says."""
    if (truth := truth_at(at, key)) is None:
        return None
    below = below_base(truth)
    above = [method_display(m) for m, value in truth.after.items() if value.low > truth.base]
    verdicts = []
    if below:
        verdicts.append(f"below the base model for {', '.join(below)}: {TRUTHS[key].fell}")
    if above:
        verdicts.append(f"above it for {', '.join(above)}")
    if not verdicts:
        verdicts.append(f"no method's {key} differs from the base model's at this power")
    return (
        f"- {label} px: base {number(truth.base)}; after training {truth_values(truth)}; " + "; ".join(verdicts) + "."
    )


def precision_line(precision: Precision) -> list[str]:
    if precision.met is None:
        return []
    state = "met" if precision.met else "NOT met: these finals cannot separate methods that close under a tenth"
    if not precision.met and precision.seeds_needed:
        state += f"; at the spread seen across seeds, {precision.seeds_needed} seeds per method would meet it"
    return [
        f"  - precision: the widest 95% interval of a final reward is ± {number(precision.widest_half_width)}"
        f", against a tenth of the headroom ({number(precision.target)}): {state}."
    ]


def ratio_text(spending: str, ratio: Ratio, other: str) -> str:
    """One ratio of costs in words: its value, and what it supports."""
    name = SPENDING[spending]
    if ratio.ratio is None:
        return f"{name}: no ratio ({ratio.note})"
    value = ratio.ratio
    if math.isnan(value.mean):
        return f"{name}: no ratio (the target is no higher than the base model)"
    text = interval_text(value.mean, value.low, value.high)
    if math.isnan(value.low):
        return f"{name} x {text} (one seed: no interval)"
    if ratio.upper_bound:
        return (
            f"{name} <= {text} ({method_display(other)} did not reach it in every seed: its budget stands in, "
            "an upper bound)"
        )
    verdict = "not distinguishable from 1"
    if value.excludes(1.0):
        verdict = "fewer" if value.mean < 1 else "more"
    return f"{name} x {text} ({verdict})"


def ratio_lines(at: Resolution, reference: str) -> list[str]:
    return [
        f"  - {method_display(reference)} / {method_display(other)} to reach {TARGETS[target]}: "
        + "; ".join(ratio_text(spending, ratio, other) for spending, ratio in per_spending.items())
        + "."
        for other, per_target in at.ratios.items()
        for target, per_spending in per_target.items()
    ]


def gap_line(name: str, gap: Gap) -> str:
    difference = gap.difference
    if math.isnan(difference.low):
        verdict = "too few seeds for an interval"
    else:
        supported = (
            f"{name} is {'ahead' if difference.mean > 0 else 'behind'}"
            if difference.excludes(0.0)
            else "no difference is supported"
        )
        verdict = f"{supported}; the smallest gap this study could detect here (80% power) is {number(gap.detectable)}"
    return f"  - {name} − {method_display(gap.best_baseline)} (the best baseline) = {text_of(difference)}: {verdict}."


def findings(summary: Summary, reward: str | None = None, budget: str | None = None) -> list[str]:
    """Markdown lines stating the study's findings."""
    name = method_display(summary.reference)
    lines = ["## Findings", ""]
    if reward or budget:
        lines.append(" ".join(filter(None, [f"Reward `{reward}`." if reward else None, budget])) + "")
        lines.append("")
    for label, at in summary.resolutions.items():
        finals = ", ".join(f"{method_display(m)} {text_of(r.final)} (n={r.seeds})" for m, r in ordered(at.methods))
        lines.append(f"- {label} px, held-out reward after training: {finals}.")
        if at.gap is not None:
            lines.append(gap_line(name, at.gap))
        lines.extend(precision_line(at.precision))
        lines.extend(ratio_lines(at, summary.reference))
    for key, truth in TRUTHS.items():
        found = [line for label, at in summary.resolutions.items() if (line := truth_line(label, at, key))]
        if found:
            lines += ["", truth.title, *found]
    room = [line for label, at in summary.resolutions.items() if (line := headroom_line(label, at))]
    if room:
        lines += [
            "",
            "Headroom (the reward of chance videos, of the base model and of the oracle render of each "
            "evaluation prompt):",
            *room,
        ]
    if summary.gap_slope is not None:
        slope = summary.gap_slope
        if slope.excludes(0.0):
            verdict = "it grows with resolution" if slope.mean > 0 else "it shrinks with resolution"
        else:
            verdict = "no trend with resolution is supported at this power (the interval includes 0)"
        lines += [
            "",
            f"Resolution gap: {name} minus the best baseline changes by "
            f"{interval_text(slope.mean, slope.low, slope.high)} per doubling of resolution: {verdict}.",
        ]
    return lines


def headline(summary: Summary) -> list[str]:
    """The study's findings in a few lines (the README's): final rewards, the gap, the cost ratio to the best
    baseline's reward, gold and the trend with resolution; each claim only as far as its interval goes."""
    name = method_display(summary.reference)
    finals, gaps, costs = [], [], []
    truths: dict[str, tuple[list, list]] = {key: ([], []) for key in TRUTHS}  # values per resolution, who fell
    for label, at in summary.resolutions.items():
        finals.append(
            f"{label} px " + ", ".join(f"{method_display(m)} {text_of(r.final)}" for m, r in ordered(at.methods))
        )
        if at.gap is not None:
            difference = at.gap.difference
            sign = "supported" if difference.excludes(0.0) else "not supported"
            gaps.append(f"{label} px {interval_text(difference.mean, difference.low, difference.high)} ({sign})")
            ratio = at.ratios.get(at.gap.best_baseline, {}).get("best_baseline", {}).get("queries")
            if ratio is not None and ratio.ratio is not None and not math.isnan(ratio.ratio.mean):
                bound = "<= " if ratio.upper_bound else ""
                value = ratio.ratio
                costs.append(
                    f"{label} px ({method_display(at.gap.best_baseline)}) {bound}"
                    f"{interval_text(value.mean, value.low, value.high)}"
                )
        for key, (values, fell) in truths.items():
            if (truth := truth_at(at, key)) is not None:
                fell.extend(below_base(truth))
                values.append(f"{label} px base {number(truth.base)}: {truth_values(truth)}")
    seeds = max((r.seeds for at in summary.resolutions.values() for r in at.methods.values()), default=0)
    lines = [f"- Held-out reward after training (mean ± 95% interval over {seeds} seeds): " + "; ".join(finals) + "."]
    if gaps:
        lines.append(f"- {name} minus the best baseline (Welch 95% interval): " + "; ".join(gaps) + ".")
    if costs:
        lines.append(
            f"- Reward queries {name} needed to reach the best baseline's final reward, as a share of "
            "the baseline's (bootstrap 95% interval; `<=`: the baseline missed it in some seed and is "
            "charged its budget): " + "; ".join(costs) + "."
        )
    for key, (values, fell) in truths.items():
        if values:
            verdict = f" Below the base model's ({TRUTHS[key].fell}): {', '.join(dict.fromkeys(fell))}." if fell else ""
            lines.append(f"- {TRUTHS[key].name}, before and after: " + "; ".join(values) + "." + verdict)
    if summary.gap_slope is not None:
        slope = summary.gap_slope
        trend = ("grows" if slope.mean > 0 else "shrinks") if slope.excludes(0.0) else "shows no supported trend"
        lines.append(
            f"- With resolution the gap {trend}: {interval_text(slope.mean, slope.low, slope.high)} per doubling."
        )
    precision = {label: at.precision for label, at in summary.resolutions.items() if at.precision.met is not None}
    if precision and not all(p.met for p in precision.values()):
        needed = [f"{p.seeds_needed} at {label} px" for label, p in precision.items() if p.seeds_needed]
        lines.append(
            "- Precision: some final reward's 95% interval is wider than a tenth of the headroom; "
            "differences smaller than the detectable gap in the report are not resolved"
            + (f" (seeds per method that would meet it, at the spread seen: {', '.join(needed)})." if needed else ".")
        )
    return lines
