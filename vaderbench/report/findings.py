"""The report's first lines: what an efficiency study found, in words, with its numbers and intervals.

Every sentence is read off the summary (`efficiency.analyse`); a claim is stated as supported only when
its 95% interval excludes the null value (a difference of 0, a ratio of 1), and otherwise said not to be
supported at this study's power, with the smallest gap the study could have detected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaderbench.report.markdown import estimate_text, interval_text, number
from vaderbench.report.select import method_display, method_order

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
    closed = [
        f"{method_display(m)} "
        f"{estimate_text(*triple([100 * v if v is not None else None for v in e['headroom_closed']]))}%"
        for m, e in ordered(methods)
        if "headroom_closed" in e
    ]
    chance = f"chance {number(room['chance'])}, " if room.get("chance") is not None else ""
    return (
        f"- {label} px ({chance}base {number(room['base'])}, oracle {number(room['oracle'])}): share of the "
        f"base-to-oracle headroom closed: " + ", ".join(closed) + "."
    )


def truth_at(label: str, summary: dict, key: str) -> tuple[float, dict] | None:
    """(the base model's value, {method: entry}) of truth `key` at one resolution; None where it was not logged."""
    base = summary["headroom"].get(label, {}).get(f"{key}_base")
    methods = {m: e for m, e in ordered(summary["resolutions"][label]["methods"]) if key in e}
    return (base, methods) if methods and base is not None else None


def truth_values(methods: dict, key: str) -> str:
    return ", ".join(f"{method_display(m)} {estimate_text(*triple(e[key]))}" for m, e in methods.items())


def below_base(methods: dict, key: str, base: float) -> list[str]:
    """The methods whose interval of truth `key` lies wholly below the base model's value."""
    return [method_display(m) for m, e in methods.items() if triple(e[key])[2] < base]


def truth_line(label: str, summary: dict, key: str) -> str | None:
    """Every method's value of truth `key` after training against the base model's, and what it says."""
    if (found := truth_at(label, summary, key)) is None:
        return None
    base, methods = found
    below = below_base(methods, key, base)
    above = [method_display(m) for m, e in methods.items() if triple(e[key])[1] > base]
    verdicts = []
    if below:
        verdicts.append(f"below the base model for {', '.join(below)}: {TRUTHS[key].fell}")
    if above:
        verdicts.append(f"above it for {', '.join(above)}")
    if not verdicts:
        verdicts.append(f"no method's {key} differs from the base model's at this power")
    values = truth_values(methods, key)
    return f"- {label} px: base {number(base)}; after training {values}; " + "; ".join(verdicts) + "."


def precision_line(precision: dict | None) -> list[str]:
    if not precision or precision["met"] is None:
        return []
    state = "met" if precision["met"] else "NOT met: these finals cannot separate methods that close under a tenth"
    needed = precision.get("seeds_needed")
    if not precision["met"] and needed:
        state += f"; at the spread seen across seeds, {needed} seeds per method would meet it"
    return [
        f"  - precision: the widest 95% interval of a final reward is ± {number(precision['widest_half_width'])}"
        f", against a tenth of the headroom ({number(precision['target'])}): {state}."
    ]


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
                    parts.append(
                        f"{SPENDING[spending]} <= {text} ({method_display(other)} did not reach it in "
                        "every seed: its budget stands in, an upper bound)"
                    )
                else:
                    verdict = (
                        "fewer"
                        if excludes(cell["ratio"], 1.0) and cell["ratio"][0] < 1
                        else ("more" if excludes(cell["ratio"], 1.0) else "not distinguishable from 1")
                    )
                    parts.append(f"{SPENDING[spending]} x {text} ({verdict})")
            lines.append(
                f"  - {method_display(reference)} / {method_display(other)} to reach {TARGETS[target]}: "
                + "; ".join(parts)
                + "."
            )
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
        finals = ", ".join(
            f"{method_display(m)} {estimate_text(*triple(e['final']))} (n={e['seeds']})"
            for m, e in ordered(at["methods"])
        )
        lines.append(f"- {label} px, held-out reward after training: {finals}.")
        gap = at.get("gap")
        if gap is not None:
            best = method_display(gap["best_baseline"])
            detectable = gap["detectable"]
            difference = triple(gap["difference"])
            if math.isnan(difference[1]):
                verdict = "too few seeds for an interval"
            else:
                supported = (
                    f"{name} is {'ahead' if difference[0] > 0 else 'behind'}"
                    if excludes(difference, 0.0)
                    else "no difference is supported"
                )
                verdict = (
                    f"{supported}; the smallest gap this study could detect here (80% power) is {number(detectable)}"
                )
            lines.append(f"  - {name} − {best} (the best baseline) = {estimate_text(*difference)}: {verdict}.")
        lines.extend(precision_line(at.get("precision")))
        lines.extend(ratio_lines(label, summary, reference))
    for key, truth in TRUTHS.items():
        found = [line for label in summary["resolutions"] if (line := truth_line(label, summary, key))]
        if found:
            lines += ["", truth.title, *found]
    room = [line for label in summary["resolutions"] if (line := headroom_line(label, summary))]
    if room:
        lines += [
            "",
            "Headroom (the reward of chance videos, of the base model and of the oracle render of each "
            "evaluation prompt):",
            *room,
        ]
    if "gap_slope" in summary:
        slope = summary["gap_slope"]
        if excludes(slope, 0.0):
            verdict = "it grows with resolution" if slope[0] > 0 else "it shrinks with resolution"
        else:
            verdict = "no trend with resolution is supported at this power (the interval includes 0)"
        lines += [
            "",
            f"Resolution gap: {name} minus the best baseline changes by {interval_text(*triple(slope))} "
            f"per doubling of resolution: {verdict}.",
        ]
    return lines


def headline(summary: dict) -> list[str]:
    """The study's findings in a few lines (the README's): final rewards, the gap, the cost ratio to the best
    baseline's reward, gold and the trend with resolution; each claim only as far as its interval goes."""
    reference = summary["reference"]
    name = method_display(reference)
    finals, gaps, costs = [], [], []
    truths: dict[str, tuple[list, list]] = {key: ([], []) for key in TRUTHS}  # values per resolution, who fell
    for label, at in summary["resolutions"].items():
        methods = ordered(at["methods"])
        finals.append(
            f"{label} px " + ", ".join(f"{method_display(m)} {estimate_text(*triple(e['final']))}" for m, e in methods)
        )
        gap = at.get("gap")
        if gap is not None:
            difference = triple(gap["difference"])
            sign = "supported" if excludes(difference, 0.0) else "not supported"
            gaps.append(f"{label} px {interval_text(*difference)} ({sign})")
            pair = f"{reference}/{gap['best_baseline']}"
            cell = summary["ratios"].get(label, {}).get(pair, {}).get("best_baseline", {}).get("queries")
            if cell and cell["ratio"] is not None and not math.isnan(triple(cell["ratio"])[0]):
                bound = "<= " if cell["upper_bound"] else ""
                costs.append(
                    f"{label} px ({method_display(gap['best_baseline'])}) {bound}"
                    f"{interval_text(*triple(cell['ratio']))}"
                )
        for key, (values, fell) in truths.items():
            if (found := truth_at(label, summary, key)) is not None:
                base, with_truth = found
                fell.extend(below_base(with_truth, key, base))
                values.append(f"{label} px base {number(base)}: {truth_values(with_truth, key)}")
    seeds = max((e["seeds"] for at in summary["resolutions"].values() for e in at["methods"].values()), default=0)
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
    if "gap_slope" in summary:
        slope = triple(summary["gap_slope"])
        trend = ("grows" if slope[0] > 0 else "shrinks") if excludes(slope, 0.0) else "shows no supported trend"
        lines.append(f"- With resolution the gap {trend}: {interval_text(*slope)} per doubling.")
    precision = {
        resolution: at["precision"]
        for resolution, at in summary["resolutions"].items()
        if at.get("precision", {}).get("met") is not None
    }
    if precision and not all(p["met"] for p in precision.values()):
        needed = [f"{n} at {resolution} px" for resolution, p in precision.items() if (n := p.get("seeds_needed"))]
        lines.append(
            "- Precision: some final reward's 95% interval is wider than a tenth of the headroom; "
            "differences smaller than the detectable gap in the report are not resolved"
            + (f" (seeds per method that would meet it, at the spread seen: {', '.join(needed)})." if needed else ".")
        )
    return lines
