"""One function per figure, drawn from the tidy frames of `tables.py` (mean, low, high, n per cell).

Every figure uses the same colour per method (`method_colour`) and, within a method, one line style per
series; bands and error bars are the 95% t-intervals over seeds. Sizes are for a paper page: 3.4 in
per panel, 8 pt text. Figures are `matplotlib.figure.Figure` objects made without pyplot, so drawing a
report neither needs a display nor changes the caller's backend (`Figure.savefig` renders with Agg);
draw and save them inside `paper_style()`.
"""

from __future__ import annotations

import textwrap
import zlib

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vaderbench.aligner import registered_aligners
from vaderbench.report.select import method_display, short_name

PALETTE = sns.color_palette("colorblind")
BASE_COLOUR = (0.55, 0.55, 0.55)
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")
PANEL_INCHES = (3.4, 2.6)
REWARD_LABEL = "held-out reward (reward units)"


def method_colour(method: str) -> tuple:
    """The colour of a method in every figure: by its place among the registered aligners (the report's order),
    stable by name for a method no aligner here registers."""
    if method == "base":
        return BASE_COLOUR
    known = registered_aligners()
    if method in known:
        return PALETTE[known.index(method) % len(PALETTE)]
    spare = PALETTE[len(known) % len(PALETTE) :] or PALETTE
    return spare[zlib.crc32(method.encode()) % len(spare)]


def series_styles(table: pd.DataFrame) -> dict[str, dict]:
    """Colour by method, line style and marker by the series' rank within its method."""
    styles = {}
    for method, group in table.groupby("method"):
        for i, series in enumerate(sorted(group["series"].unique())):
            styles[series] = {
                "color": method_colour(method),
                "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
                "marker": MARKERS[i % len(MARKERS)],
            }
    return styles


def paper_style():
    """The report's style as an rc context: whitegrid, paper-size text; the caller's rcParams are left as they were."""
    rc = {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("paper"),
        "font.size": 8,
        "axes.labelsize": 8,
        "axes.titlesize": 8,
        "legend.fontsize": 7,
        "legend.title_fontsize": 7,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "lines.linewidth": 1.4,
        "lines.markersize": 4,
        "svg.fonttype": "none",  # text stays text in the SVG
    }
    return matplotlib.rc_context(rc)


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def panels(count: int, rows: int = 1) -> tuple[Figure, np.ndarray]:
    columns = -(-count // rows)
    figure = new_figure(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return figure, axes.flat[:count]


def shared_legend(figure: Figure, axes) -> None:
    """One legend for all panels, below them: a series missing from the first panel is still named."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    figure.legend(
        entries.values(), entries.keys(), loc="outside lower center", ncols=min(len(entries), 4), frameon=False
    )


def line_with_band(ax, x, frame: pd.DataFrame, style: dict, label: str) -> None:
    ax.plot(x, frame["mean"], label=label, **style)
    finite = frame["low"].notna().to_numpy()
    if finite.any():
        ax.fill_between(
            np.asarray(x)[finite],
            frame["low"][finite],
            frame["high"][finite],
            color=style["color"],
            alpha=0.18,
            linewidth=0,
        )


def resolution_axis(ax, table: pd.DataFrame) -> None:
    ticks = table.drop_duplicates("side").sort_values("side")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks["side"], ticks["resolution_label"])
    ax.minorticks_off()
    ax.set_xlabel("resolution (pixels per side)")


def headroom_lines(ax, room: pd.DataFrame) -> None:
    """Chance and oracle of the reward at each resolution, as grey dashed and dotted lines."""
    if room.empty:
        return
    room = room.sort_values("side")
    ax.plot(room["side"], room["oracle"], color=BASE_COLOUR, linestyle=":", marker="_", label="oracle render")
    ax.plot(room["side"], room["chance"], color=BASE_COLOUR, linestyle="--", marker="_", label="chance")


def resolution_gap(table: pd.DataFrame, gaps: pd.DataFrame, room: pd.DataFrame | None = None) -> Figure:
    """Figure 3: final reward against resolution per method (chance and oracle as reference lines); the gap
    to the reward-gradient method against resolution."""
    figure, axes = panels(2 if not gaps.empty else 1)
    headroom_lines(axes[0], room if room is not None else pd.DataFrame())
    styles = series_styles(table)
    for series, rows in table.groupby("series", sort=False):
        rows = rows.sort_values("side")
        line_with_band(axes[0], rows["side"], rows, styles[series], series)
    resolution_axis(axes[0], table)
    axes[0].set_ylabel("held-out reward after training\n(reward units)")
    axes[0].set_title("reward vs resolution")
    axes[0].legend(frameon=False)
    if not gaps.empty:
        ax = axes[1]
        for i, (comparison, rows) in enumerate(gaps.groupby("comparison", sort=True)):
            rows = rows.sort_values("side")
            style = {
                "color": method_colour(rows["method"].iloc[0]),
                "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
                "marker": "o",
            }
            line_with_band(ax, rows["side"], rows, style, comparison)
        ax.axhline(0, color="black", linewidth=0.8)
        resolution_axis(ax, gaps)
        ax.set_ylabel("reward gap (reward units)")
        ax.set_title(f"{method_display(gaps['reference'].iloc[0])}'s lead vs resolution (Welch 95% CI)")
        ax.legend(frameon=False)
    return figure


def curves(table: pd.DataFrame, xlabel: str, title: str) -> Figure:
    """Figure 5 / Figure 12: reward against spending, one panel per resolution, one line per series."""
    sides = sorted(table["side"].unique())
    figure, axes = panels(len(sides), rows=1 if len(sides) <= 3 else 2)
    styles = series_styles(table)
    for ax, side in zip(axes, sides):
        at = table[table["side"] == side]
        for series, rows in at.groupby("series", sort=False):
            rows = rows.sort_values("step")
            line_with_band(ax, rows["x"], rows, styles[series], series)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(REWARD_LABEL)
        ax.set_title(f"{title}, {at['resolution_label'].iloc[0]} px")
    shared_legend(figure, axes)
    return figure


def k_ablation(table: pd.DataFrame) -> Figure:
    """Table 9 as a plot: reward at the table's steps, one line per K (markers, error bars = 95% CI)."""
    figure, axes = panels(1)
    ax = axes[0]
    for i, ((series, method, k), rows) in enumerate(table.groupby(["series", "method", "K"], sort=False)):
        err = np.vstack([rows["mean"] - rows["low"], rows["high"] - rows["mean"]])
        ax.errorbar(
            rows["step"],
            rows["mean"],
            yerr=np.nan_to_num(err),
            label=f"{series}, K={k}",
            capsize=2,
            color=method_colour(method),
            linestyle=LINE_STYLES[i % len(LINE_STYLES)],
            marker=MARKERS[i % len(MARKERS)],
        )
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("training step (aligner round)")
    ax.set_ylabel("training reward (reward units)")
    ax.set_title("truncated backprop: K steps in the graph")
    ax.legend(frameon=False)
    return figure


def bars(ax, table: pd.DataFrame, labels: list[str], groups: list[str], group_column: str) -> None:
    """Grouped bars with CI error bars: one cluster per label, one hatched bar per group."""
    width = 0.8 / len(groups)
    for j, group in enumerate(groups):
        rows = table[table[group_column] == group].set_index("model").reindex(labels)
        x = np.arange(len(labels)) + (j - (len(groups) - 1) / 2) * width
        err = np.vstack([rows["mean"] - rows["low"], rows["high"] - rows["mean"]])
        ax.bar(
            x,
            rows["mean"],
            width,
            yerr=np.nan_to_num(err),
            capsize=2,
            label=group,
            color=[method_colour(m) for m in rows["method"].fillna("base")],
            hatch="//" if j else None,
            edgecolor="white",
            linewidth=0.5,
        )
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right")


def generalisation(table: pd.DataFrame) -> Figure:
    """Table 1 as bars: base model and each series, training prompts (plain) vs held-out (hatched)."""
    sides = sorted(table["side"].unique())
    figure, axes = panels(len(sides), rows=1 if len(sides) <= 3 else 2)
    for ax, side in zip(axes, sides):
        at = table[table["side"] == side]
        bars(ax, at, list(dict.fromkeys(at["model"])), ["train", "held-out"], "prompts")
        ax.set_ylabel("reward (reward units)")
        ax.set_title(f"train vs held-out prompts, {at['resolution_label'].iloc[0]} px")
    axes[0].legend(frameon=False, title="prompts")
    return figure


def memory(table: pd.DataFrame, switches: list[str]) -> Figure:
    """Table 7 as bars: peak memory per combination of switches."""
    labels = [", ".join(f"{short_name(s)}={row[s]}" for s in switches if row[s] != "—") for _, row in table.iterrows()]
    figure = new_figure(PANEL_INCHES[0] * 1.6, 0.3 * len(table) + 1.0)
    ax = figure.subplots()
    y = np.arange(len(table))
    err = np.vstack([table["mean"] - table["low"], table["high"] - table["mean"]])
    methods = [m.lower() for m in table["method"]]
    ax.barh(y, table["mean"], xerr=np.nan_to_num(err), capsize=2, color=[method_colour(m) for m in methods])
    ax.set_yticks(y, [f"{m}: {label}" for m, label in zip(table["method"], labels)])
    ax.invert_yaxis()
    ax.set_xlabel("peak memory (MiB)")
    ax.set_title("peak memory per combination of memory switches")
    return figure


def sample_values(values: dict[str, float]) -> str:
    """A video's logged values, one per line: reward, gold, and its caption fidelity as a share of attributes."""
    lines = [f"{key} {values[key]:.3g}" for key in ("reward", "gold") if key in values]
    fidelity = [v for k, v in values.items() if k.startswith("fidelity_")]
    if fidelity:
        lines.append(f"fidelity {sum(fidelity):.0f}/{len(fidelity)}")
    return "\n".join(lines)


def samples(blocks: list, captions: list[str]) -> Figure:
    """One block per caption: a row per video (base model, each series' end, oracle), its frames left to
    right, its name on the left and its logged values on the right."""
    rows = sum(len(block) for block in blocks)
    row_inches, title_inches = 0.55, 0.25
    height = rows * row_inches + len(blocks) * title_inches + 0.1
    figure = Figure(figsize=(6.0, height))
    top = height - 0.05
    for block, caption in zip(blocks, captions):
        figure.text(0.5, top / height, f"“{caption}”", ha="center", va="top", fontsize=8, style="italic")
        top -= title_inches
        for row in block:
            gap = np.full((row.frames.shape[1], 2, 3), 255, dtype=np.uint8)
            image = np.concatenate([piece for frame in row.frames for piece in (frame, gap)][:-1], axis=1)
            ax = figure.add_axes((0.2, (top - row_inches + 0.03) / height, 0.5, (row_inches - 0.06) / height))
            ax.imshow(image, aspect="equal", interpolation="nearest")
            ax.set_axis_off()
            colour = method_colour(row.method)
            middle = (top - row_inches / 2) / height
            figure.text(0.19, middle, row.label, ha="right", va="center", fontsize=7, color=colour)
            figure.text(0.71, middle, sample_values(row.values), ha="left", va="center", fontsize=6.5, linespacing=1.3)
            top -= row_inches
    return figure


def time_breakdown(table: pd.DataFrame) -> Figure:
    """Seconds per trial by part, one stacked horizontal bar per series and resolution."""
    bars = list(dict.fromkeys(zip(table["series"], table["resolution_label"])))
    parts = list(dict.fromkeys(table["part"]))
    colours = dict(zip(parts, sns.color_palette("tab10", len(parts))))
    figure = new_figure(PANEL_INCHES[0] * 1.8, 0.28 * len(bars) + 1.4)
    ax = figure.subplots()
    left = np.zeros(len(bars))
    for part in parts:
        seconds = (
            table[table["part"] == part]
            .set_index(["series", "resolution_label"])["mean"]
            .reindex(bars)
            .fillna(0)
            .to_numpy()
        )
        ax.barh(np.arange(len(bars)), seconds, left=left, color=colours[part], label=part, height=0.7)
        left += seconds
    ax.set_yticks(np.arange(len(bars)), [f"{series}, {label} px" for series, label in bars])
    ax.invert_yaxis()
    ax.set_xlabel("seconds per trial (mean over seeds)")
    ax.set_title("where a trial's time goes")
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(parts), 5), frameon=False)
    return figure


def tuning(table: pd.DataFrame, key: str) -> Figure:
    """Validation reward at the tuning budget against the first tuned setting, one panel per method; hollow
    markers: stopped early (at their last reward); a star: the chosen setting."""
    methods = list(dict.fromkeys(table["method"]))
    figure, axes = panels(len(methods))
    for ax, method in zip(axes, methods):
        at = table[table["method"] == method]
        for i, (label, rows) in enumerate(at.groupby("resolution_label", sort=False)):
            rows = rows.assign(x=pd.to_numeric(rows[key], errors="coerce")).sort_values("x")
            style = {"color": method_colour(method), "linestyle": LINE_STYLES[i % len(LINE_STYLES)]}
            ax.plot(rows["x"], rows["reward"], marker="none", label=f"{label} px", **style)
            done = rows[rows["reached"]]
            ax.scatter(done["x"], done["reward"], color=style["color"], s=14, zorder=3)
            stopped = rows[~rows["reached"]]
            ax.scatter(stopped["x"], stopped["reward"], facecolors="none", edgecolors=style["color"], s=14, zorder=3)
            best = rows[rows["chosen"]]
            ax.scatter(best["x"], best["reward"], marker="*", color="black", s=60, zorder=4)
        values = pd.to_numeric(at[key], errors="coerce")
        if (values > 0).all() and values.max() / values.min() > 10:
            ax.set_xscale("log")
        ax.set_xlabel(short_name(key))
        ax.set_ylabel("validation reward at the budget")
        ax.set_title(f"{method_display(method)}: tuning")
        ax.legend(frameon=False)
    return figure


def proxy_and_gold(table: pd.DataFrame, room: pd.DataFrame) -> Figure:
    """Over-optimisation: each series' trajectory in (reward, gold) over its evaluations, one panel per
    resolution, with chance and oracle marked; below, caption fidelity against the step."""
    sides = sorted(table["side"].unique())
    figure = new_figure(PANEL_INCHES[0] * len(sides), PANEL_INCHES[1] * 2)
    axes = figure.subplots(2, len(sides), squeeze=False)
    styles = series_styles(table)
    for column, side in enumerate(sides):
        at = table[table["side"] == side]
        top, bottom = axes[0][column], axes[1][column]
        for series, rows in at.groupby("series", sort=False):
            rows = rows.sort_values("step")
            style = styles[series]
            top.plot(rows["proxy"], rows["gold"], color=style["color"], linestyle=style["linestyle"], label=series)
            top.scatter(rows["proxy"].iloc[-1:], rows["gold"].iloc[-1:], color=style["color"], marker=">", s=20)
            bottom.plot(rows["step"], rows["fidelity"], **style, label=series)
        refs = room[room["side"] == side] if not room.empty else room
        for name, marker in (("chance", "x"), ("oracle", "*"), ("base", "o")):
            if not refs.empty and name in refs and f"{name} gold" in refs:
                top.scatter(
                    refs[name], refs[f"{name} gold"], color=BASE_COLOUR, marker=marker, s=30, label=name, zorder=4
                )
        label = at["resolution_label"].iloc[0]
        top.set_xlabel("held-out reward (the learned reward optimised)")
        top.set_ylabel("gold reward (the rule it was trained on)")
        top.set_title(f"reward vs gold over training, {label} px")
        bottom.set_xlabel("training step (aligner round)")
        bottom.set_ylabel("caption fidelity")
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_title(f"caption fidelity, {label} px")
    shared_legend(figure, list(axes[0]))
    return figure


def overoptimisation(table: pd.DataFrame, peaks: list) -> Figure:
    """Gao et al.'s two views, one row per resolution: gold against the learned reward, and gold against the
    square root of the KL from the base model (their d); each series' mean over seeds, its peak of gold starred."""
    sides = sorted(table["side"].unique())
    figure = new_figure(PANEL_INCHES[0] * 2, PANEL_INCHES[1] * len(sides))
    axes = figure.subplots(len(sides), 2, squeeze=False)
    styles = series_styles(table)
    for row, side in enumerate(sides):
        left, right = axes[row]
        at = table[table["side"] == side]
        for series, rows in at.groupby("series", sort=False):
            rows = rows.sort_values("step")
            style = styles[series]
            left.plot(rows["proxy"], rows["gold"], **style, label=series)
            right.plot(np.sqrt(rows["path_kl"].clip(lower=0)), rows["gold"], **style, label=series)
            peak = next(p for p in peaks if p.series == series and p.side == side)
            top = rows[rows["step"] == peak.peak_step]
            for ax, x in ((left, top["proxy"]), (right, np.sqrt(top["path_kl"].clip(lower=0)))):
                ax.scatter(x, top["gold"], color=style["color"], marker="*", s=80, zorder=4)
        base = at[at["step"] == 0]["gold"].mean()
        label = at["resolution_label"].iloc[0]
        for ax in (left, right):
            ax.axhline(base, color=BASE_COLOUR, linewidth=0.8, linestyle=":", label="base model")
            ax.set_ylabel("gold reward (the truth)")
        left.set_xlabel("held-out reward (the learned reward optimised)")
        right.set_xlabel("√KL from the base model (nats^½, the whole path)")
        left.set_title(f"gold vs learned reward, {label} px (★ peak of gold)")
        right.set_title(f"gold vs distance from the base model, {label} px")
    shared_legend(figure, list(axes[0]))
    return figure


#: where a point's label may go, tried in turn (points of offset from the point, horizontal alignment)
LABEL_OFFSETS = (((4, 3), "left"), ((4, -9), "left"), ((-4, 3), "right"), ((-4, -9), "right"), ((4, 11), "left"))


def place_labels(ax, points: list[tuple[float, float, str]]) -> None:
    """Each point's label at the first of `LABEL_OFFSETS` where it overlaps no label placed before it (at the last
    offset where every one does), measured in the figure's final layout: neighbouring points' names stay readable."""
    renderer = FigureCanvasAgg(ax.figure).get_renderer()  # a figure of our own has no canvas to measure text with
    ax.figure.draw_without_rendering()  # the layout first: labels are measured where they will be drawn
    placed = []
    for x, y, text in points:
        for offset, align in LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", fontsize=6, ha=align)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            if (offset, align) != LABEL_OFFSETS[-1]:
                label.remove()
        placed.append(box)


def defences(rows: list) -> Figure:
    """The Pareto view of defences: the gain in the study's one learned reward (x) against the gain in the truth
    (y: gold, or the held-out reward off the toy world), each final minus the base model's, mean over seeds with 95%
    t-intervals; one point per entry (a square for an adapter read at a smaller LoRA scale), coloured by its base
    aligner. Up and right of both zeros: a defence that raises the reward and keeps the truth."""
    figure = new_figure(PANEL_INCHES[0] * 1.5, PANEL_INCHES[1] * 1.5)
    ax = figure.subplots()
    seen = set()
    several_resolutions = len({r.resolution_label for r in rows}) > 1
    for row in rows:
        x, y = row.reference_gain, row.truth_gain
        xerr = [[x.mean - x.low], [x.high - x.mean]] if not np.isnan(x.low) else None
        yerr = [[y.mean - y.low], [y.high - y.mean]] if not np.isnan(y.low) else None
        label = None
        if row.lora_scale == 1.0 and row.aligner not in seen:  # the legend's marker: the trial's own adapter
            label = method_display(row.aligner)
            seen.add(row.aligner)
        ax.errorbar(
            x.mean,
            y.mean,
            xerr=xerr,
            yerr=yerr,
            color=method_colour(row.aligner),
            marker="o" if row.lora_scale == 1.0 else "s",
            linestyle="none",
            capsize=2,
            elinewidth=0.8,
            label=label,
        )
    for line in (ax.axhline, ax.axvline):
        line(0, color=BASE_COLOUR, linewidth=0.8, linestyle="--")

    def label(row) -> str:
        return f"{row.label} ({row.resolution_label} px)" if several_resolutions else row.label

    # entries that do not raise the reward crowd the origin: named once, under the axis
    still = [label(row) for row in rows if not row.raises_reward]
    xlabel = "gain in the reference learned reward (final − base model)"
    if still:
        note = "unlabelled, not raising the reward (its interval reaches 0): " + ", ".join(still)
        xlabel += "\n" + textwrap.fill(note, 80, break_on_hyphens=False)  # entry names stay whole
    ax.set_xlabel(xlabel)
    truth = rows[0].truth_name
    ax.set_ylabel(
        f"gain in {truth}, {'the truth' if truth == 'gold' else 'the stand-in for the truth'} (final − base model)"
    )
    ax.set_title("defences: learned reward against the truth (■ adapter at a smaller LoRA scale)")
    ax.legend(title="base aligner", loc="best", frameon=False)
    place_labels(ax, [(row.reference_gain.mean, row.truth_gain.mean, label(row)) for row in rows if row.raises_reward])
    return figure
