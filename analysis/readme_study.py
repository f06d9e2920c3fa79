"""Write the README's "What the default study shows" from a report in docs/results (or check that it is current).

    python analysis/readme_study.py docs/results/efficiency          # rewrite the README block
    python analysis/readme_study.py docs/results/efficiency --check  # exit 1 if the README is stale

The block between `<!-- study:begin -->` and `<!-- study:end -->` is the report's resolution-gap figure, the
report's findings at a glance (`vaderbench.report.findings.at_a_glance`: the table and the verdict, the same lines
as the report's Findings) read off its `summary.json`, and the header line of its `report.md` (when, commit,
machine, wall time).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vaderbench.report.findings import at_a_glance
from vaderbench.report.summary import Summary

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"


def block(report: Path) -> str:
    summary = Summary.from_json((report / "summary.json").read_text())
    provenance = next(line for line in (report / "report.md").read_text().splitlines() if line.startswith("Study "))
    relative = report.resolve().relative_to(ROOT).as_posix()
    return "\n".join(
        [
            BEGIN,
            f"![Resolution gap: held-out reward per method and resolution]({relative}/resolution_gap.png)",
            "",
            *at_a_glance(summary),
            "",
            f"{provenance} Full report: [{relative}/report.md]({relative}/report.md).",
            END,
        ]
    )


def with_block(readme: str, text: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block")
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + text + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a report folder under docs/results")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's block is not current")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    readme = args.readme.read_text()
    updated = with_block(readme, block(args.report))
    if args.check:
        if updated != readme:
            print(
                f"{args.readme}: the study block is stale: run python analysis/readme_study.py {args.report}",
                file=sys.stderr,
            )
            return 1
        return 0
    args.readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
