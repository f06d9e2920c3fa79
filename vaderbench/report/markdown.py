"""Markdown for the report: table cells "mean ± half-width (n=seeds)" and the document around the figures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

#: significant digits of an interval's half-width; the mean is printed to the same decimal place
HALF_WIDTH_DIGITS = 2
#: significant digits of a number that has no interval
PLAIN_DIGITS = 3
#: a half-width below this share of the mean is float32 rounding between seeds that agree, not a spread
ROUNDING = 1e-6


def number(value: float) -> str:
    """A number without an interval: three significant digits."""
    return f"{value:.{PLAIN_DIGITS}g}"


def decimals_for(half_width: float) -> int:
    """Decimal places that give the half-width two significant digits (none for half-widths of 10 and more)."""
    return max(0, HALF_WIDTH_DIGITS - 1 - math.floor(math.log10(abs(half_width))))


def estimate_text(mean: float, low: float, high: float) -> str:
    """ "0.813 ± 0.092": the mean to the precision its 95% interval supports; just the mean without an interval."""
    if math.isnan(low) or math.isnan(high):
        return number(mean)
    half = (high - low) / 2
    if half <= ROUNDING * abs(mean):
        return f"{number(mean)} (no spread)"
    places = decimals_for(half)
    return f"{mean:.{places}f} ± {half:.{places}f}"


def interval_text(mean: float, low: float, high: float) -> str:
    """ "0.21 [0.12, 0.35]": for asymmetric (bootstrap) intervals, at the precision of the narrower side."""
    if math.isnan(low) or math.isnan(high):
        return number(mean)
    if high - low <= ROUNDING * abs(mean):
        return f"{number(mean)} (no spread)"
    narrower = min(mean - low, high - mean)
    places = decimals_for(narrower if narrower > ROUNDING * abs(mean) else high - low)
    return f"{mean:.{places}f} [{low:.{places}f}, {high:.{places}f}]"


def cell(mean: float, low: float, high: float, n: int) -> str:
    """One table cell: the mean over seeds with its 95% CI as ± half-width, and how many seeds are behind it."""
    return f"{estimate_text(mean, low, high)} (n={n})"


def cells(table: pd.DataFrame) -> pd.Series:
    return table.apply(lambda r: cell(r["mean"], r["low"], r["high"], int(r["n"])), axis=1)


def pivot(table: pd.DataFrame, index: list[str], columns: list[str]) -> pd.DataFrame:
    """Cells of a long (mean, low, high, n) frame laid out with `index` down and `columns` across."""
    laid = table.assign(cell=cells(table)).pivot_table(
        index=index, columns=columns, values="cell", aggfunc="first", sort=False
    )
    if isinstance(laid.columns, pd.MultiIndex):
        laid.columns = [", ".join(str(v) for v in c) for c in laid.columns]
    return laid.fillna("—").reset_index()


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency: pandas' to_markdown needs tabulate)."""
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines)


@dataclass
class Section:
    """One figure's part of the report: its figure file stem, tables, and notes (or why it was skipped)."""

    name: str = ""
    title: str = ""
    caption: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    has_figure: bool = False


def section_markdown(section: Section) -> str:
    parts = [f"## {section.title}"]
    if section.skipped:
        parts.append(f"Skipped: {section.skipped}.")
        return "\n\n".join(parts)
    if section.caption:
        parts.append(section.caption)
    if section.has_figure:
        parts.append(f"![{section.title}]({section.name}.png)")
    for caption, table in section.tables:
        parts.append(f"{caption}\n\n{markdown_table(table)}")
    parts.extend(f"Note: {note}" for note in section.notes)
    return "\n\n".join(parts)


def report_markdown(header: list[str], sections: list[Section]) -> str:
    return "\n\n".join([*header, *(section_markdown(s) for s in sections)]) + "\n"
