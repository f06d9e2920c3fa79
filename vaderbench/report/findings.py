"""The report's first lines: what an efficiency study found, in words, with its numbers and intervals.

Every sentence is read off the summary (`efficiency.analyse`); a claim is stated as supported only when
its 95% interval excludes the null value (a difference of 0, a ratio of 1), and otherwise said not to be
supported at this study's power, with the smallest gap the study could have detected.
"""

from __future__ import annotations

import math

from vaderbench.report.markdown import estimate_text, interval_text, number
from vaderbench.report.select import method_display, method_order

TARGETS = {"best_baseline": "the best baseline's final reward", "half_headroom": "half of the base-to-oracle headroom"}
SPENDING = {"queries": "reward queries", "device_s": "device-seconds"}


def ordered(methods: dict) -> list:
    """(method, entry) pairs in the report's method order."""
    return [(m, methods[m]) for m in method_order(list(methods))]


def triple(values) -> tuple[float, float, float]:
    return tuple(math.nan if v is None else v for v in values)


def excludes(values, null: float) -> bool:
    _, low, high = triple(values)
    return not (math.isnan(low) or math.isnan(high)) and (low > null or high < null)


def headroom_line(label: str, summary: dict) -> str | None:
    room = summary["headroom"].get(label, {})
    if room.get("oracle") is None or room.get("base") is None:
        return None
    methods = summary["resolutions"][label]["methods"]
    closed = [f"{method_display(m)} "
              f"{estimate_text(*triple([100 * v if v is not None else None for v in e['headroom_closed']]))}%"
              for m, e in ordered(methods) if "headroom_closed" in e]
    chance = f"chance {number(room['chance'])}, " if room.get("chance") is not None else ""
    return (f"- {label} px ({chance}base {number(room['base'])}, oracle {number(room['oracle'])}): share of the "
            f"base-to-oracle headroom closed: " + ", ".join(closed) + ".")


def gold_line(label: str, summary: dict, reference: str) -> str | None:
    """The gold of every method after training against the base model's, and what it says of over-optimisation."""
    at, room = summary["resolutions"][label], summary["headroom"].get(label, {})
    methods = {m: e for m, e in ordered(at["methods"]) if "gold" in e}
    if not methods or room.get("gold_base") is None:
        return None
    base = room["gold_base"]
    values = ", ".join(f"{method_display(m)} {estimate_text(*triple(e['gold']))}" for m, e in methods.items())
    below = [method_display(m) for m, e in methods.items() if triple(e["gold"])[2] < base]
    above = [method_display(m) for m, e in methods.items() if triple(e["gold"])[1] > base]
    verdicts = []
    if below:
        verdicts.append(f"below the base model for {', '.join(below)}: the learned reward was over-optimised")
    if above:
        verdicts.append(f"above it for {', '.join(above)}")
    if not verdicts:
        verdicts.append("no method's gold differs from the base model's at this power")
    return f"- {label} px: base {number(base)}; after training {values}; " + "; ".join(verdicts) + "."


def ratio_lines(label: str, summary: dict, reference: str) -> list[str]:
    lines = []
    for pair, per_target in summary["ratios"].get(label, {}).items():
        other = pair.split("/")[1]
        for target, per_spending in per_target.items():
            parts = []
            for spending, cell in per_spending.items():
                if cell["ratio"] is None:
                    parts.append(f"{SPENDING[spending]}: no ratio ({cell['note']})")
                    continue
                mean, low, high = triple(cell["ratio"])
                if math.isnan(mean):
                    parts.append(f"{SPENDING[spending]}: no ratio (the target is no higher than the base model)")
                    continue
                text = interval_text(mean, low, high)
                if math.isnan(low):
                    parts.append(f"{SPENDING[spending]} x {text} (one seed: no interval)")
                elif cell["upper_bound"]:
                    parts.append(f"{SPENDING[spending]} <= {text} ({method_display(other)} did not reach it in "
                                 "every seed: its budget stands in, an upper bound)")
                else:
                    verdict = "fewer" if excludes(cell["ratio"], 1.0) and cell["ratio"][0] < 1 else (
                        "more" if excludes(cell["ratio"], 1.0) else "not distinguishable from 1")
                    parts.append(f"{SPENDING[spending]} x {text} ({verdict})")
            lines.append(f"  - {method_display(reference)} / {method_display(other)} to reach {TARGETS[target]}: "
                         + "; ".join(parts) + ".")
    return lines


def findings(summary: dict, reward: str | None = None, budget: str | None = None) -> list[str]:
    """Markdown lines stating the study's findings."""
    reference = summary["reference"]
    name = method_display(reference)
    lines = ["## Findings", ""]
    if reward or budget:
        lines.append(" ".join(filter(None, [f"Reward `{reward}`." if reward else None, budget])) + "")
        lines.append("")
    for label, at in summary["resolutions"].items():
        finals = ", ".join(f"{method_display(m)} {estimate_text(*triple(e['final']))} (n={e['seeds']})"
                           for m, e in ordered(at["methods"]))
        lines.append(f"- {label} px, held-out reward after training: {finals}.")
        gap = at.get("gap")
        if gap is not None:
            best = method_display(gap["best_baseline"])
            detectable = gap["detectable"]
            verdict = (f"the smallest gap this study could detect here (80% power) is {number(detectable)}"
                       if not math.isnan(detectable) else "too few seeds for an interval")
            lines.append(f"  - {name} − {best} (the best baseline) = {number(gap['difference'])}; {verdict}.")
        lines.extend(ratio_lines(label, summary, reference))
    truth = [line for label in summary["resolutions"] if (line := gold_line(label, summary, reference))]
    if truth:
        lines += ["", "Gold (the truth the learned reward stands for, read from the pixels; base = the untrained "
                  "model):", *truth]
    room = [line for label in summary["resolutions"] if (line := headroom_line(label, summary))]
    if room:
        lines += ["", "Headroom (the reward of chance videos, of the base model and of the oracle render of each "
                  "evaluation prompt):", *room]
    if "gap_slope" in summary:
        slope = summary["gap_slope"]
        if excludes(slope, 0.0):
            verdict = "it grows with resolution" if slope[0] > 0 else "it shrinks with resolution"
        else:
            verdict = "no trend with resolution is supported at this power (the interval includes 0)"
        lines += ["", f"Resolution gap: {name} minus the best baseline changes by {interval_text(*triple(slope))} "
                  f"per doubling of resolution: {verdict}."]
    return lines
