"""Assemble the report: each section's tables and figure from the runs, then `report.md`, then MLflow.

Sections (and their file stems, which scripts and readers rely on) follow the paper: the resolution gap
(Figure 3), sample and compute efficiency (Figure 5), the K ablation (Table 9), generalisation (Table 1),
on- vs off-policy baselines (Figure 12), memory (Table 7), and sample videos; beside them, over-optimisation
against the toy world's truth and the defences against it. A section whose runs are not
in the store is skipped with a one-line reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from vaderbench.metrics import DEVICE_TIME, EVAL_FIDELITY, EVAL_GOLD_MEAN, EVAL_KL, REWARD_QUERIES
from vaderbench.report import defences, efficiency, figures, overoptimisation, tables
from vaderbench.report.details import details
from vaderbench.report.findings import findings
from vaderbench.report.load import Runs, load_runs
from vaderbench.report.markdown import (
    Section,
    cell,
    cells,
    interval_text,
    markdown_table,
    number,
    pivot,
    report_markdown,
    section_markdown,
)
from vaderbench.report.regret import tuning_regret
from vaderbench.report.samples import comparison_rows
from vaderbench.report.select import (
    MissingRuns,
    classify,
    method_display,
    param_column,
    reference_method,
    short_name,
    step_zero_mean,
    with_resolution,
)
from vaderbench.report.summary import Summary, Tuning
from vaderbench.report.tables import with_series
from vaderbench.runner.tracking import TUNE_SCORE_EVALUATIONS

REPORT_FOLDER = "report"
#: the study's numbers, for readers and scripts (see `efficiency.analyse`)
SUMMARY = "summary.json"
HOURS = 1 / 3600
DEVICE_HOURS = "device-hours (CPU or GPU, as logged)"


def resolution_gap(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    table = tables.resolution_gap(trials, runs.metrics)
    try:  # the gap is one method against another, each by its own entry, as in the findings
        compared, _ = compared_series(trials)
    except MissingRuns:  # several settings of a method (a K sweep): each against each baseline series
        compared = trials
    gaps = tables.resolution_gap_differences(compared, runs.metrics)
    room = tables.headroom(trials, runs.metrics)
    section = Section(
        caption=(
            f"`{tables.FINAL_METRIC}` (held-out prompts, the same evaluation noise for every method) at each trial's "
            "last step, mean ± 95% t-interval over seeds. Gaps: Welch's 95% interval of the difference of means "
            "(n: the smaller group's seeds)."
        )
    )
    section.tables.append(
        (
            "Reward after training (steps read: " + "; ".join(sorted(set(table["steps"]))) + ")",
            pivot(table.rename(columns={"resolution_label": "resolution"}), ["resolution"], ["series"]),
        )
    )
    reference = reference_method(trials["method"])
    if not gaps.empty:
        section.tables.append(
            (
                f"Gap to {method_display(reference)}",
                pivot(gaps.rename(columns={"resolution_label": "resolution"}), ["resolution"], ["comparison"]),
            )
        )
    elif reference is None:
        section.notes.append("no reward-gradient method among the trials: no gap computed")
    else:
        section.notes.append(
            f"no {method_display(reference)} and baseline trials at a common resolution: no gap computed"
        )
    if not room.empty:
        section.tables.append(
            (
                "Headroom: the reward of chance videos, of the base model and of the oracle render "
                "of each evaluation prompt (logged by every trial before its first update)",
                room.drop(columns="side")
                .rename(columns={"resolution_label": "resolution"})
                .map(lambda v: number(v) if isinstance(v, float) else v),
            )
        )
    return section, figures.resolution_gap(table, gaps, room)


def proxy_and_gold(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    table = tables.proxy_and_gold(trials, runs.metrics)
    room = tables.headroom(trials, runs.metrics)
    section = Section(
        caption=(
            "Reward over-optimisation (Gao et al. 2022), measured against the toy world's truth: the learned reward "
            f"of the evaluation videos (`{tables.FINAL_METRIC}`) against their gold (`{EVAL_GOLD_MEAN}`: the "
            "rule the reward model was trained on, read from the pixels), one line per method from its first "
            "evaluation to its last (arrow), mean over seeds; chance, base and oracle videos marked. A method "
            "that moves right but not up wins the learned reward without the truth. Below: caption fidelity "
            f"(`{EVAL_FIDELITY}`: colour, shape, direction and background seen as the caption names them)."
        )
    )
    last = table.sort_values("step").groupby(["series", "side"], as_index=False).last()
    first = table.sort_values("step").groupby(["series", "side"], as_index=False).first()
    shown = pd.DataFrame(
        {
            "resolution": last["resolution_label"],
            "series": last["series"],
            "reward: first → last": first["proxy"].map(number) + " → " + last["proxy"].map(number),
            "gold: first → last": first["gold"].map(number) + " → " + last["gold"].map(number),
            "fidelity: first → last": first["fidelity"].map(number) + " → " + last["fidelity"].map(number),
        }
    )
    section.tables.append(("Mean over seeds, first and last evaluation", shown))
    return section, figures.proxy_and_gold(table, room)


def overoptimisation_section(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    points = overoptimisation.trajectories(trials, runs.metrics)
    found = overoptimisation.curves(points)
    section = Section(
        caption=(
            "Over-optimisation as Gao et al. (2022) draw it: the gold of the evaluation videos against the learned "
            f"reward they were optimised for (`{tables.FINAL_METRIC}`), and against the square root of the policy's "
            f"KL from the base model along their sampling paths (`{EVAL_KL}`), mean over seeds; "
            "★ each setting's peak of gold. Rise: gold at the peak minus at step 0; fall: at the last evaluation "
            "minus at the peak; both paired by seed with 95% t-intervals (the peak is chosen on the same runs, so "
            "the rise's interval is optimistic)."
        )
    )
    rows = []
    for curve in found:
        verdict = []
        if curve.rose:
            verdict.append("gold rose above the base model's")
        if curve.over_optimised:
            verdict.append("then fell below its peak while the learned reward kept rising")
        rows.append(
            {
                "resolution": curve.resolution_label,
                "series": curve.series,
                "gold at step 0": number(curve.base_gold),
                "peak (step)": f"{number(curve.peak_gold)} ({curve.peak_step})",
                "rise": interval_text(curve.rise.mean, curve.rise.low, curve.rise.high),
                "fall by the last step": interval_text(curve.fall.mean, curve.fall.low, curve.fall.high),
                "reward after the peak": f"{curve.proxy_after_peak:+.3g}",
                "KL at peak → last": f"{number(curve.kl_at_peak)} → {number(curve.kl_last)}",
                "verdict": "; ".join(verdict) or "neither",
            }
        )
    section.tables.append(("Gold's peak per setting (n = seeds)", pd.DataFrame(rows)))
    return section, figures.overoptimisation(overoptimisation.means(points), found)


def defences_section(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    found = defences.rows(trials, runs.metrics)
    metric, truth = defences.truth_of(trials, runs.metrics)
    stand_in = "" if metric == EVAL_GOLD_MEAN else " (a reward no entry trained on: the truth's stand-in)"
    section = Section(
        caption=(
            "Defences against reward hacking, ranked by the truth: each method entry (a variant of its base aligner) "
            f"and, where `eval.lora_scales` logged it, the same adapter read at a smaller scale (DRaFT's "
            f"interpolation). Final {truth} (`{metric}` at each trial's last evaluation){stand_in} and caption "
            f"fidelity (`{EVAL_FIDELITY}`): mean ± 95% t-interval over seeds. Gains: the final value minus the "
            "trial's own step 0 (the base model), paired by seed, with 95% t-intervals; the learned reward is the "
            f"study's reference (`{defences.REFERENCE_METRIC}`: one reward on the same videos, whatever reward an "
            f"entry trained on). Figure: reference gain against {truth} gain; up and right of both dashed zeros, a "
            "defence raised the reward and kept the truth. " + defences.findings(found)
        )
    )
    several_resolutions = len({row.resolution_label for row in found}) > 1
    table = pd.DataFrame(
        [
            {
                "base aligner": method_display(row.aligner),
                **({"resolution": row.resolution_label} if several_resolutions else {}),
                "entry": row.label,
                f"final {truth}": cell(row.truth.mean, row.truth.low, row.truth.high, row.truth.n),
                f"{truth} gain over the base": interval_text(
                    row.truth_gain.mean, row.truth_gain.low, row.truth_gain.high
                ),
                "reference reward gain": interval_text(
                    row.reference_gain.mean, row.reference_gain.low, row.reference_gain.high
                ),
                "caption fidelity": (
                    cell(row.fidelity.mean, row.fidelity.low, row.fidelity.high, row.fidelity.n)
                    if row.fidelity.n
                    else "—"
                ),
                "verdict": row.verdict,
            }
            for row in found
        ]
    )
    ranked = f"Entries ranked by final {truth} within each base aligner (gains: paired by seed)"
    section.tables.append((ranked, table))
    return section, figures.defences(found)


def final_points_table(curve: pd.DataFrame, x_name: str) -> pd.DataFrame:
    # `curve` is ordered by method, series, side, step: the last row of a group is its last evaluation
    last = curve.groupby(["series", "side"], sort=False, as_index=False).last().sort_values("side", kind="stable")
    return pd.DataFrame(
        {
            "resolution": last["resolution_label"],
            "series": last["series"],
            "step": last["step"],
            x_name: last["x"].map(lambda v: f"{v:.4g}"),
            "reward": cells(last),
        }
    )


def spending_section(x: str, x_scale: float, x_label: str, x_name: str, panel_title: str):
    """A builder for reward against spending `x` (times `x_scale`), as in the paper's Figures 5 and 12."""

    def build(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
        curve = tables.curves(trials, runs.metrics, x=x, x_scale=x_scale)
        section = Section(
            caption=(
                f"`{tables.FINAL_METRIC}` at each evaluation step against `{x}` spent by then (mean over seeds), "
                "band: 95% t-interval over seeds."
            )
        )
        section.tables.append(("At the last evaluation", final_points_table(curve, x_name)))
        return section, figures.curves(curve, x_label, panel_title)

    return build


def on_off_policy(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    if not tables.has_policy_variants(trials):
        raise MissingRuns(
            "no method was run in more than one on-/off-policy variant (`variant`, "
            + ", ".join(f"`{k}`" for k in tables.POLICY_SWITCHES[1:])
            + ")"
        )
    return spending_section(DEVICE_TIME, HOURS, DEVICE_HOURS, "device-hours", "on- vs off-policy")(trials, runs)


def k_ablation(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    table = tables.k_ablation(trials, runs.metrics)
    section = Section(
        caption=(
            f"`{tables.TRAIN_METRIC}` (training prompts) at the paper's steps 1, 100, 200, 300 where logged, "
            "and the last step; mean ± 95% t-interval over seeds."
        )
    )
    laid = table.assign(column=table["series"] + ", K=" + table["K"])
    section.tables.append(("Training reward by step", pivot(laid, ["step"], ["column"])))
    return section, figures.k_ablation(table)


def generalisation(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    table = tables.generalisation(trials, runs.metrics)
    section = Section(
        caption=(
            f"Trained models: `{tables.TRAIN_METRIC}` (training prompts) and `{tables.FINAL_METRIC}` "
            f"(held-out prompts) at each trial's last step. Base model: `{tables.FINAL_METRIC}` at step 0 "
            f"(before any update) and `{tables.TRAIN_METRIC}` at the first step (sampled before the first update), "
            "averaged per seed over the methods' trials, interval over seeds."
        )
    )
    laid = table.rename(columns={"resolution_label": "resolution"})
    section.tables.append(("Reward", pivot(laid, ["resolution", "model"], ["prompts"])))
    base = table[table["method"] == "base"]
    for prompts, source in (
        ("held-out", f"`{tables.FINAL_METRIC}` at step 0"),
        ("train", f"`{tables.TRAIN_METRIC}` at step 0 or 1"),
    ):
        if not (base["prompts"] == prompts).any():
            section.notes.append(f"no trial logged {source}: the base model's {prompts} reward is missing")
    return section, figures.generalisation(table)


def memory(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    table = tables.memory(trials, runs.metrics)
    switches = [c for c in table.columns if c not in ("method", "mean", "low", "high", "n")]
    section = Section(
        caption=(
            "Each trial's largest `peak_memory_mb` over its steps, per combination of the memory switches that "
            "vary; mean ± 95% t-interval over seeds (MiB)."
        )
    )
    shown = table[["method", *switches]].assign(**{"peak memory (MiB)": cells(table)})
    section.tables.append(("Peak memory", shown))
    return section, figures.memory(table, switches)


def time_breakdown(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    table = tables.time_breakdown(trials, runs.metrics)
    section = Section(
        caption=(
            "Seconds per trial in each phase of its steps (the cumulative `time_<phase>_s` at its last step): "
            "sampling, reward (decoding and scoring), the training loss's forward (DDPO's re-scoring, DPO's "
            "denoising losses), backward, optimiser, held-out evaluation and logging (reports, checkpoints); "
            "`other` is what they leave of `wall_time_s`, `start-up` is `startup_s` (the trial's run beyond its "
            "loop: process, model and reward set-up). Mean over seeds."
        )
    )
    shown = table.assign(seconds=table["mean"].map(lambda v: f"{v:.1f}"))
    section.tables.append(
        (
            "Seconds per trial",
            shown.pivot_table(
                index=["resolution_label", "series"],
                columns="part",
                values="seconds",
                aggfunc="first",
                sort=False,
            )
            .reset_index()
            .rename(columns={"resolution_label": "resolution"})
            .fillna("—"),
        )
    )
    return section, figures.time_breakdown(table)


TRUTH_COLUMNS = {"gold": "gold", "fidelity": "caption fidelity"}


def tuning_bases(trials: pd.DataFrame, metrics: pd.DataFrame) -> str:
    """The base model's truths on the validation prompts (the tuning trials' step 0), per tuning resolution."""
    parts = []
    for label, at in with_resolution(trials).groupby("resolution_label"):
        bases = {name: step_zero_mean(metrics, metric, at["run_id"]) for name, metric in tables.TRUTHS.items()}
        values = [f"{TRUTH_COLUMNS[name]} {number(base)}" for name, base in bases.items() if base is not None]
        parts.append(f"{label} px: " + ", ".join(values))
    return "; ".join(parts)


def tuning_trials(runs: Runs) -> pd.DataFrame:
    """The finished trials of the tuning stage (the final grid's are `finished_only`)."""
    everything = classify(runs.trials)
    return everything[(everything["state"] == "finished") & is_tuning(everything)]


def tuning(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    tuned, evaluations = tuning_trials(runs), score_evaluations(runs)
    table, keys = tables.tuning(tuned, runs.metrics, evaluations)
    section = Section(
        caption=(
            "The tuning stage: each method's settings drawn from its search space, run on the tuning seeds and "
            "evaluated on validation prompts (held-out prompts other than the final evaluation's); Tune's ASHA "
            "stopped the trials that fell behind (hollow markers, at their last evaluation). A method's choice "
            "(star) is the setting with the best tuning score among those that ran to the budget (the validation "
            "reward, folded at the oracle's where the reward has one: past the reward of the best real video, more "
            "counts as less, so that exploiting the reward model is not chosen), averaged over each trial's last "
            f"{evaluations} evaluations and the tuning seeds; the "
            "final grid runs every method at its choice."
            + (
                " `gold` and `caption fidelity`: the toy world's truths of the same validation videos at the same "
                "step, which the choice does not read (a setting that wins the reward by drifting from the "
                f"captions shows here); the base model's: {tuning_bases(tuned, runs.metrics)}."
                if "fidelity" in table or "gold" in table
                else ""
            )
        )
    )
    shown = table.assign(
        **{
            "validation reward": table["reward"].map(number),
            "tuning score": table["score"].map(number),
            "ran to the budget": table["reached"].map({True: "yes", False: "stopped early"}),
            "chosen": table["chosen"].map({True: "**chosen**", False: ""}),
            "method": table["method"].map(method_display),
            **{TRUTH_COLUMNS[name]: table[name].map(number) for name in TRUTH_COLUMNS if name in table},
        }
    )
    columns = [
        "method",
        "resolution_label",
        *keys,
        "validation reward",
        "tuning score",
        *[column for name, column in TRUTH_COLUMNS.items() if name in table],
        "step",
        "ran to the budget",
        "chosen",
    ]
    section.tables.append(
        (
            "Settings tried",
            shown[columns].rename(columns={"resolution_label": "resolution", **{k: short_name(k) for k in keys}}),
        )
    )
    regret = tuning_regret(tuned, runs.metrics, evaluations)
    if regret is not None:
        section.tables.append((regret_caption(regret.score_evaluations), regret_table(regret)))
    return section, figures.tuning(table, keys[0])


def regret_caption(last: int) -> str:
    return (
        f"Tuning regret: a setting's score is the mean over its tuning seeds of its last {last} evaluations' tuning "
        "score (the proxy: the setting the final grid ran) or gold (the choice a user who saw the truth would have "
        "made), among the settings that ran to the budget; regret: the gold score of the truth's choice minus the "
        "proxy's"
    )


def regret_table(regret: Tuning) -> pd.DataFrame:
    def setting(choice) -> str:
        return ", ".join(f"{key}={value}" for key, value in choice.setting.items())

    return pd.DataFrame(
        [
            {
                "resolution": label,
                "method": method_display(method),
                "proxy's choice": setting(r.proxy),
                "proxy's gold": number(r.proxy.gold),
                "truth's choice": setting(r.truth),
                "truth's gold": number(r.truth.gold),
                "regret": number(r.regret),
            }
            for label, per_method in regret.regrets.items()
            for method, r in per_method.items()
        ]
    )


def samples(trials: pd.DataFrame, runs: Runs) -> tuple[Section, Figure]:
    if trials.empty:
        raise MissingRuns("no finished trials")
    try:
        chosen = with_series(with_resolution(trials), exclude=("resolution", "seed"))
    except MissingRuns:  # no resolution param: every trial counts as one size
        chosen = with_series(trials.assign(side=0.0), exclude=("seed",))
    blocks, captions, notes = comparison_rows(runs.client, chosen)
    if not blocks:
        raise MissingRuns("no trial has start and end GIF artifacts")
    section = Section(
        caption=(
            "The first evaluation prompts at the highest resolution, the same noise in every row: the base model "
            "(before any update), each method at the end of its lowest seed's trial, and the oracle render of the "
            "caption; frames evenly spaced from the first to the last, with the values logged for each video "
            "(`reward`: the learned reward optimised; `gold`: its truth; `fidelity_*`: the caption seen right)."
        ),
        notes=notes,
    )
    return section, figures.samples(blocks, captions)


#: file stem -> (title, builder); the order of the report
SECTIONS: dict[str, tuple[str, Callable]] = {
    "resolution_gap": ("Resolution gap (paper Figure 3)", resolution_gap),
    "proxy_and_gold": ("Learned reward against the truth: over-optimisation and prompt drift", proxy_and_gold),
    "overoptimisation": (
        "Over-optimisation: the truth against the learned reward and the KL",
        overoptimisation_section,
    ),
    "defences": ("Defences against reward hacking, ranked by the truth", defences_section),
    "sample_efficiency": (
        "Sample efficiency (paper Figure 5, top)",
        spending_section(REWARD_QUERIES, 1.0, "reward queries (videos scored)", "reward queries", "sample efficiency"),
    ),
    "compute_efficiency": (
        "Compute efficiency (paper Figure 5, bottom)",
        spending_section(DEVICE_TIME, HOURS, DEVICE_HOURS, "device-hours", "compute efficiency"),
    ),
    "k_ablation": ("K ablation (paper Table 9)", k_ablation),
    "generalisation": ("Generalisation: training vs held-out prompts (paper Table 1)", generalisation),
    "on_off_policy": ("On- vs off-policy baselines (paper Figure 12)", on_off_policy),
    "memory": ("Memory (paper Table 7)", memory),
    "time_breakdown": ("Where the time goes", time_breakdown),
    "tuning": ("Tuning stage: each method's settings", tuning),
    "samples": ("Sample videos before and after alignment", samples),
}


def build_section(name: str, trials: pd.DataFrame, runs: Runs, folder: Path) -> Section:
    """One section; its figure saved as `<name>.png` and `.svg` in `folder`, or skipped with the reason."""
    title, builder = SECTIONS[name]
    with figures.paper_style():
        try:
            section, figure = builder(trials, runs)
        except MissingRuns as missing:
            for suffix in (".png", ".svg"):  # a figure from an earlier report would contradict this one
                (folder / f"{name}{suffix}").unlink(missing_ok=True)
            return Section(name, title, skipped=str(missing))
        figure.savefig(folder / f"{name}.png", dpi=200)
        figure.set_layout_engine("none")  # laid out once: the SVG keeps the PNG's layout
        # no date and ids from a fixed salt: the same runs give the same SVG, byte for byte (a clean diff)
        with matplotlib.rc_context({"svg.hashsalt": "vaderbench"}):
            figure.savefig(folder / f"{name}.svg", metadata={"Date": None})
    section.name, section.title = name, title
    section.has_figure = True
    return section


def trial_summary(trials: pd.DataFrame) -> list[str]:
    """The report's header lines on the trials: how many of each state, and every trial left out."""
    counts = trials["state"].value_counts()
    lines = [
        "Trials: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("finished", "failed", "unfinished", "superseded"))
        + ". Only finished trials are averaged."
    ]
    left_out = trials[trials["state"] != "finished"]
    if not left_out.empty:
        shown = pd.DataFrame(
            {
                "run": left_out["run_name"],
                "run id": left_out["run_id"],
                "status": left_out["status"],
                "left out as": left_out["state"],
                "method": left_out["method"].map(method_display),
                **{key: left_out[c] for key in ("resolution", "K", "lr", "seed") if (c := param_column(left_out, key))},
                "why": left_out["error"].fillna(""),
            }
        )
        lines.append("Trials left out of every figure and table:\n\n" + markdown_table(shown))
    return lines


def report_folder(output_dir: Path | None, runs: Runs) -> Path:
    base = Path(output_dir) if output_dir is not None else Path("runs") / runs.experiment
    folder = base / REPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def compared_series(trials: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The trials the findings compare, one series per method and resolution, and the variants left out: a method
    that ran its own entry and variants of it (`vader`, `vader-kl`, ...) is compared by its own entry. MissingRuns
    where a method still has several settings at one resolution (a learning-rate sweep): the findings would pool
    them into one mean."""
    variant = param_column(trials, "variant")
    left_out: list[str] = []
    if variant is not None:
        own = trials[variant].isna()
        has_own = own.groupby(trials["method"]).transform("any")
        left_out = sorted(trials.loc[has_own & ~own, variant].astype(str).unique())
        trials = trials[~has_own | own]
    labelled = with_series(with_resolution(trials), exclude=("resolution",))
    for (method, _), group in labelled.groupby(["method", "side"]):
        series = sorted(group["series"].unique())
        if len(series) > 1:
            raise MissingRuns(
                f"{method_display(method)} has {len(series)} settings at {group['resolution_label'].iloc[0]} px "
                f"({'; '.join(series)}): the findings compare one series per method"
            )
    return trials, left_out


def study_summary(trials: pd.DataFrame, runs: Runs) -> tuple[Summary, list[str]]:
    """The efficiency study's summary (`summary.json`) of `compared_series`, with its tuning regret where it had a
    tuning stage, and the variants it leaves out; MissingRuns when the runs are not such a study."""
    compared, left_out = compared_series(trials)
    summary = efficiency.analyse(
        compared, runs.metrics, tuning_trials=tuning_trials(runs), score_evaluations=score_evaluations(runs)
    )
    return summary, left_out


def score_evaluations(runs: Runs) -> int:
    """The evaluations a tuning score averaged: the newest parent run's `tune.score_evaluations` that logged it, else
    the schema's default (studies from before it was logged)."""
    for parent in runs.parent_run_ids:
        logged = runs.client.get_run(parent).data.params.get(TUNE_SCORE_EVALUATIONS)
        if logged is not None:
            return int(logged)
    return efficiency.SCORE_EVALUATIONS


def single_param(trials: pd.DataFrame, key: str) -> str | None:
    column = param_column(trials, key)
    values = trials[column].dropna().unique() if column else []
    return str(values[0]) if len(values) == 1 else None


def is_tuning(trials: pd.DataFrame) -> pd.Series:
    column = param_column(trials, "stage")
    return trials[column] == "tune" if column else pd.Series(False, index=trials.index)


def finished_only(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of the final grid (tuning trials have a section of their own)."""
    return trials[(trials["state"] == "finished") & ~is_tuning(trials)]


def provenance_lines(client, parent_id: str | None) -> list[str]:
    """When, from which commit and on which machine the study ran, and how long it took (from its parent run)."""
    written = f"Report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    if parent_id is None:
        return [written]
    run = client.get_run(parent_id)
    tags = run.data.tags
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run.info.start_time / 1000))
    line = f"Study started {started}, vaderbench commit `{tags.get('vaderbench.commit', 'not recorded')}`"
    if "machine.cpu" in tags:
        line += f", on {tags['machine.cpu']} ({tags['machine.cores']} cores; flags: {tags['machine.cpu_flags']})"
    walls = [m.value for m in client.get_metric_history(parent_id, "study_wall_time_s")]
    if walls:
        busy = client.get_metric_history(parent_id, "cores_busy")[-1].value
        own = client.get_metric_history(parent_id, "cores_busy_by_study")[-1].value
        times = "" if len(walls) == 1 else f" over {len(walls)} invocations (resumed)"
        line += (
            f"; wall time {sum(walls) / 60:.1f} min{times}, the cores {100 * busy:.0f}% busy "
            f"({100 * own:.0f}% by the study's own processes)"
        )
    return [line + ". " + written]


def write_report(
    output_dir: Path | str | None = None,
    *,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
) -> tuple[Path, list[Section]]:
    """Write `<output_dir>/report/` (figures as PNG + SVG, `report.md`) from MLflow; returns `report.md`'s path
    and the sections (the CLI names the skipped ones).

    The store is `tracking_uri`, else `<output_dir>/mlflow.db`; the experiment is `experiment`, else the
    store's only one with runs. The report is logged as artifacts (under `report/`) to `parent_run_id`,
    else to the experiment's newest parent run. Without `output_dir` it goes to `runs/<experiment>/`.
    """
    runs = load_runs(
        Path(output_dir) if output_dir is not None else None, experiment=experiment, tracking_uri=tracking_uri
    )
    folder = report_folder(output_dir, runs)
    trials = classify(runs.trials)
    final = finished_only(trials)
    sections = [build_section(name, final, runs, folder) for name in SECTIONS]
    target = parent_run_id or (runs.parent_run_ids[0] if runs.parent_run_ids else None)
    header = [
        f"# Report: {runs.experiment}",
        f"MLflow store `{runs.tracking_uri}`, experiment `{runs.experiment}`.",
        *provenance_lines(runs.client, target),
        *trial_summary(trials),
    ]
    try:
        summary, left_out = study_summary(final, runs)
    except MissingRuns as missing:
        summary = None
        header.append(f"## Findings\n\nSkipped: {missing}.")
    if summary is not None:
        (folder / SUMMARY).write_text(summary.to_json())
        header.append("\n".join(findings(summary, reward=single_param(final, "reward"))))
        if left_out:
            header.append(
                f"Each method by its own entry; its variants ({', '.join(left_out)}) are in the tables below."
            )
        header.append(f"The numbers behind these lines: `{SUMMARY}`, tabulated under Findings in detail.")
    else:
        (folder / SUMMARY).unlink(missing_ok=True)
    if target is None:
        header.append("No parent run in the experiment: the figures were not logged back to MLflow.")
    else:
        header.append(f"Figures logged to the parent run `{target}` under `{REPORT_FOLDER}/`.")
    if summary is not None:
        header.append("\n".join(details(summary)))
    path = folder / "report.md"
    path.write_text(report_markdown(header, sections))
    if target is not None:
        runs.client.log_artifacts(target, str(folder), artifact_path=REPORT_FOLDER)
    return path, sections


def render_section(
    name: str, output_dir: Path | str | None = None, *, experiment: str | None = None, tracking_uri: str | None = None
) -> str:
    """One section alone (for the scripts in `analysis/`): writes its figure, returns its Markdown."""
    if name not in SECTIONS:
        raise ValueError(f"unknown report section {name!r}; known: {', '.join(SECTIONS)}")
    runs = load_runs(
        Path(output_dir) if output_dir is not None else None, experiment=experiment, tracking_uri=tracking_uri
    )
    section = build_section(name, finished_only(classify(runs.trials)), runs, report_folder(output_dir, runs))
    return section_markdown(section)
