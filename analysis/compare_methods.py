"""Two methods of a study head to head: the efficiency analysis with the first as the reference and the second as
its only baseline.

Per resolution: each one's final held-out reward (mean and 95% interval over seeds), the first minus the second
(Welch's 95% interval), each one's gain over its own base model (whether it moved beyond its seeds' noise), and the
reward queries and device-seconds the first spent to reach the second's final reward over what the second spent
(percentile bootstrap over seeds; `≤` where the second missed its own final reward in some seed and is charged its
budget). Every number is read from the study's MLflow runs, as `vaderbench report` reads them; the report itself
compares each baseline with the reward-gradient method only.

    python analysis/compare_methods.py runs/efficiency_flow nft grpo    # DiffusionNFT against Flow-GRPO
    python analysis/compare_methods.py runs/efficiency dpo ddpo
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from vaderbench.cli import UserError
from vaderbench.report.build import finished_only
from vaderbench.report.commands import add_store_arguments, check_store_arguments
from vaderbench.report.details import SPENDING, ratio_text
from vaderbench.report.efficiency import analyse
from vaderbench.report.findings import text_of
from vaderbench.report.load import load_runs
from vaderbench.report.markdown import markdown_table
from vaderbench.report.select import MissingRuns, classify, method_display
from vaderbench.report.summary import Interval, Summary

TARGET = "best_baseline"  # with one baseline: the second method's final reward


def head_to_head(first: str, second: str, output_dir=None, *, experiment=None, tracking_uri=None) -> Summary:
    """The summary of `first` against `second` alone (`efficiency.analyse` with `first` as the reference)."""
    runs = load_runs(output_dir, experiment=experiment, tracking_uri=tracking_uri)
    final = finished_only(classify(runs.trials))
    missing = sorted({first, second} - set(final["method"]))
    if missing:
        known = ", ".join(sorted(set(final["method"])))
        raise ValueError(f"no finished trials of {', '.join(missing)} (the study has {known})")
    return analyse(final[final["method"].isin([first, second])], runs.metrics, reference=first)


def interval_cell(value: Interval | None) -> str:
    return "—" if value is None else text_of(value)


def table(summary: Summary, first: str, second: str) -> str:
    rows = []
    for label, at in summary.resolutions.items():
        ratios = at.ratios.get(second, {}).get(TARGET, {})
        movement, gap = at.movement, at.gaps.get("reward")
        row = {"resolution": f"{label} px"}
        for method in (first, second):
            result = at.methods.get(method)
            row[f"{method_display(method)} reward"] = interval_cell(result.final if result else None)
            gain = movement.methods.get(method) if movement else None
            row[f"{method_display(method)} gain"] = interval_cell(gain.gain if gain else None)
        row["difference"] = interval_cell(gap.difference if gap else None)
        for spending, name in SPENDING.items():
            ratio = ratios.get(spending)
            row[f"{name}, {method_display(first)} / {method_display(second)}"] = (
                "—" if ratio is None else ratio_text(ratio, second)
            )
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument("first", help="the method whose costs are divided (the reference)")
    parser.add_argument("second", help="the method it is compared with: its final reward is the target")
    args = parser.parse_args(argv)
    try:
        check_store_arguments(args)
        summary = head_to_head(
            args.first, args.second, args.output_dir, experiment=args.experiment, tracking_uri=args.tracking_uri
        )
    except (UserError, ValueError, FileNotFoundError, MissingRuns) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(table(summary, args.first, args.second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
