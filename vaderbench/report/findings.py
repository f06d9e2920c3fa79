"""The report's first lines and the README's study block: one table of the study at a glance, then at most five
sentences of verdict.

Every number is read off the typed summary (`summary.Summary`: `efficiency.analyse`'s, or `summary.json` read
back). A claim is stated as holding only where its 95% interval excludes the null value (a difference or slope of
0, a ratio of 1); otherwise it is undecided at this study's power. The numbers behind the verdict, tabulated, are
`details.details`.
"""

from __future__ import annotations

import math
from typing import TypeVar

import pandas as pd

from vaderbench.report.markdown import estimate_text, interval_text, markdown_table, number
from vaderbench.report.movement import BUDGET_MULTIPLE
from vaderbench.report.select import method_display, method_order
from vaderbench.report.summary import CostToTarget, Interval, Ratio, Resolution, Summary

T = TypeVar("T")

#: a measure's name in the verdict
MEASURE_NAMES = {"reward": "the learned reward", "gold": "gold", "fidelity": "caption fidelity"}
SPENDING_COLUMNS = {"queries": "queries", "device_s": "device-s"}


def ordered(methods: dict[str, T]) -> list[tuple[str, T]]:
    """(method, value) pairs in the report's method order."""
    return [(m, methods[m]) for m in method_order(list(methods))]


def text_of(value: Interval) -> str:
    return estimate_text(value.mean, value.low, value.high)


def baselines(summary: Summary) -> list[str]:
    """The methods compared with the reference, in the report's order, over every resolution."""
    others = {m for at in summary.resolutions.values() for m in at.methods if m != summary.reference}
    return method_order(list(others))


def ratio_cell(ratio: Ratio | None, cost: CostToTarget | None, reference: str) -> str:
    """The reference's cost to the best baseline's final reward over a baseline's: "≤" where the baseline missed
    it in some seed (its budget stands in), "not reached" where in every seed."""
    if ratio is None or cost is None:
        return "—"
    if ratio.ratio is None:
        return f"— ({method_display(reference)} missed it)"
    value = ratio.ratio
    if math.isnan(value.mean):
        return "—"
    text = interval_text(value.mean, value.low, value.high)
    if not ratio.upper_bound:
        return text
    reached = "not reached" if cost.reached == 0 else f"{cost.reached}/{cost.trials} reached"
    return f"≤ {text} ({reached})"


def glance_row(label: str, at: Resolution, methods: list[str], others: list[str], reference: str) -> dict[str, str]:
    row = {"resolution": f"{label} px"}
    for method in methods:
        result = at.methods.get(method)
        row[f"{method_display(method)} reward"] = text_of(result.final) if result else "—"
        for key in ("gold", "fidelity"):  # means only: their intervals are in the details, the verdict reads them
            if any(key in r.truths for r in at.methods.values()):
                value = result.truths.get(key) if result else None
                row[f"{method_display(method)} {key}"] = number(value.mean) if value else "—"
    for other in others:
        for spending, column in SPENDING_COLUMNS.items():
            ratio = at.ratios.get(other, {}).get("best_baseline", {}).get(spending)
            result = at.methods.get(other)
            cost = result.costs.get(spending, {}).get("best_baseline") if result else None
            row[f"{column} {method_display(reference)} / {method_display(other)}"] = ratio_cell(ratio, cost, reference)
    return row


def glance_table(summary: Summary) -> str:
    """One row per resolution: each method's final reward, gold and fidelity (mean ± 95% interval over seeds), and
    the reference's reward queries and device-seconds to the best baseline's final reward over each baseline's."""
    methods = method_order(list({m for at in summary.resolutions.values() for m in at.methods}))
    others = baselines(summary) if summary.reference else []
    rows = [glance_row(label, at, methods, others, summary.reference) for label, at in summary.resolutions.items()]
    return markdown_table(pd.DataFrame(rows).fillna("—"))


# -- the verdict ----------------------------------------------------------------------------------------------------
def trend(slope: Interval) -> str:
    """What a slope's interval supports: grows, shrinks, or undecided."""
    if not slope.excludes(0.0):
        return "undecided"
    return "grows" if slope.mean > 0 else "shrinks"


def per_doubling(slope: Interval) -> str:
    return f"{interval_text(slope.mean, slope.low, slope.high)} per doubling"


def claim_sentence(summary: Summary, name: str) -> str:
    """Whether the paper's Figure 3 claim holds on the learned reward: the reward slope's interval above 0."""
    claim = f"The paper's Figure 3 claim ({name}'s lead over the best baseline grows with resolution)"
    slope = summary.slopes.get("reward")
    if slope is None:
        return f"{claim} cannot be tested here: the study has no gap at two resolutions."
    verdict = {"grows": "holds here", "shrinks": "fails here", "undecided": "is undecided here"}[trend(slope)]
    return f"{claim} {verdict} on the learned reward: {per_doubling(slope)}."


def truth_sentence(summary: Summary) -> str | None:
    """The same trend on the truths (a lead won by exploiting the learned reward is not one won on the truth)."""
    parts = []
    for measure in ("gold", "fidelity"):
        if (slope := summary.slopes.get(measure)) is not None:
            found = trend(slope)
            # "the lead grows" would misread a gap below 0 that closes: say which way the difference moves
            said = {"grows": "the difference rises", "shrinks": "the difference falls"}.get(found, found)
            parts.append(f"{MEASURE_NAMES[measure]}: {said} ({per_doubling(slope)})")
    if not parts:
        return None
    reference = method_display(summary.reference) if summary.reference else "the reference"
    return f"On the truth, {reference} minus the best baseline: " + "; ".join(parts) + "."


def standing(summary: Summary, measure: str) -> str | None:
    """Where the reference is ahead of the best baseline on `measure` (its gap's interval above 0) and behind."""
    gaps = {label: at.gaps[measure] for label, at in summary.resolutions.items() if measure in at.gaps}
    if not gaps:
        return None
    sides = {
        "ahead": [label for label, g in gaps.items() if g.difference.excludes(0.0) and g.difference.mean > 0],
        "behind": [label for label, g in gaps.items() if g.difference.excludes(0.0) and g.difference.mean < 0],
    }
    found = [
        f"{side} at {'every resolution' if len(labels) == len(gaps) else px(labels)}"
        for side, labels in sides.items()
        if labels
    ]
    return ", ".join(found) or "neither ahead nor behind at any resolution"


def px(labels: list[str]) -> str:
    return ", ".join(labels) + " px"


def standing_sentence(summary: Summary, name: str) -> str | None:
    """Where the reference stands against the best baseline, measures alike in one clause."""
    alike: dict[str, list[str]] = {}  # standing -> the measures it holds on
    for measure, said in MEASURE_NAMES.items():
        if (found := standing(summary, measure)) is not None:
            alike.setdefault(found, []).append(said)
    parts = [f"{found} on {' and '.join(measures)}" for found, measures in alike.items()]
    return f"Against the best baseline {name} is " + "; ".join(parts) + "." if parts else None


def times(value: float) -> str:
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def not_moved(summary: Summary, other: str, name: str) -> str | None:
    """Where `other` did not move its reward, within how many queries, as a multiple of what the reference needed to
    move its own (flagged under `BUDGET_MULTIPLE`); "" where it moved everywhere, None where nothing was measured."""
    still: dict[str, list[str]] = {}  # clause -> the resolutions it holds at
    measured = [at.movement for at in summary.resolutions.values() if at.movement and other in at.movement.methods]
    for label, at in summary.resolutions.items():
        gain = at.movement.methods.get(other) if at.movement else None
        if gain is None or gain.moved:
            continue
        ratio = at.movement.budget_ratio(other)
        if ratio is None:
            clause = f"within {number(gain.queries)} queries{{where}}, where {name} did not move its own either"
        else:
            short = f", under the {BUDGET_MULTIPLE}x a fair budget needs" if ratio < BUDGET_MULTIPLE else ""
            needed = f"{times(ratio)} the {number(at.movement.queries_to_move)} {name} needed to move its own"
            clause = f"within {number(gain.queries)} queries{{where}}, {needed}{short}"
        still.setdefault(clause, []).append(label)
    if not measured:
        return None
    return "; ".join(
        clause.format(where=" at every resolution" if len(labels) == len(measured) else f" at {px(labels)}")
        for clause, labels in still.items()
    )


def movement_sentence(summary: Summary, name: str) -> str | None:
    """Which baselines did not move their reward beyond their seeds' noise (those alike in one clause)."""
    alike: dict[str, list[str]] = {}  # clause -> the baselines it holds for
    for other in baselines(summary):
        if (clause := not_moved(summary, other, name)) is not None:
            alike.setdefault(clause, []).append(method_display(other))
    parts = []
    for clause, who in alike.items():
        one = len(who) == 1
        names = " and ".join(who)
        if not clause:
            parts.append(
                f"{names} moved {'its' if one else 'their'} reward beyond the seeds' noise at every resolution"
            )
        else:
            parts.append(f"{names} did not move {'its' if one else 'their'} reward beyond the seeds' noise {clause}")
    return "; ".join(parts) + "." if parts else None


def regret_sentence(summary: Summary) -> str | None:
    if summary.tuning is None:
        return None
    regrets = [(label, m, r) for label, per in summary.tuning.regrets.items() for m, r in per.items()]
    same = sum(r.proxy.setting == r.truth.setting for _, _, r in regrets)
    label, method, worst = max(regrets, key=lambda found: found[2].regret)
    if worst.regret <= 0:
        return (
            "Tuning on the proxy cost no gold: it chose the setting the truth would have chosen for every method "
            "and resolution."
        )
    return (
        f"Tuning on the proxy rather than the truth cost up to {number(worst.regret)} gold (regret, "
        f"{method_display(method)} at {label} px); the two chose the same setting in {same} of {len(regrets)} cases."
    )


def verdict(summary: Summary) -> list[str]:
    """At most five sentences: the Figure 3 claim on the learned reward, the same on the truths, where the reference
    is ahead, the baselines' movement and the tuning regret (each where the summary has it)."""
    name = method_display(summary.reference) if summary.reference else "the reference"
    sentences = [
        claim_sentence(summary, name) if summary.reference else None,
        truth_sentence(summary),
        standing_sentence(summary, name),
        movement_sentence(summary, name) if summary.reference else None,
        regret_sentence(summary),
    ]
    return [s for s in sentences if s]


def at_a_glance(summary: Summary) -> list[str]:
    """The table and the verdict: the report's findings and the README's study block."""
    seeds = max((r.seeds for at in summary.resolutions.values() for r in at.methods.values()), default=0)
    name = method_display(summary.reference) if summary.reference else "the reference"
    caption = (
        f"Means over {seeds} seeds at the last evaluation (reward: learned, held-out prompts, ± 95%; gold, fidelity: "
        f"the truth of the same videos). queries, device-s: {name}'s cost to the best baseline's final reward over "
        "the baseline's (bootstrap 95%; ≤: the baseline missed it in some seed, charged its budget)."
    )
    return [glance_table(summary), "", caption, "", " ".join(verdict(summary))]


def findings(summary: Summary, reward: str | None = None) -> list[str]:
    """Markdown lines of the report's Findings."""
    lines = ["## Findings", ""]
    if reward:
        lines += [f"Reward `{reward}`.", ""]
    return lines + at_a_glance(summary)
