"""`vaderbench report` on synthetic MLflow stores written here with known metric values.

Expected means and intervals are computed in the tests with scipy's own routines (`stats.t.interval`,
`ttest_ind(...).confidence_interval`), never with the report's `stats` module.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import math
import statistics
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from scipy import stats

from vaderbench.cli import main
from vaderbench.experiment.tuning import tuning_score
from vaderbench.metrics import TUNING_SCORE
from vaderbench.report import defences, figures, select, tables, write_report
from vaderbench.report.build import SECTIONS, compared_series, finished_only, render_section
from vaderbench.report.commands import section_main
from vaderbench.report.load import load_runs
from vaderbench.report.markdown import cell, estimate_text, interval_text
from vaderbench.report.regret import tuning_regret
from vaderbench.report.samples import start_and_end
from vaderbench.report.select import MissingRuns, classify, param_column, with_resolution
from vaderbench.report.stats import Estimate, t_interval
from vaderbench.report.summary import Precision, Summary
from vaderbench.runner.tracking import TUNE_SCORE_EVALUATIONS
from vaderbench.timing import PHASES, metric_name

ANALYSIS = Path(__file__).resolve().parent.parent / "analysis"
SEEDS = (0, 1, 2)
RESOLUTIONS = (16, 32)
#: eval_reward_mean at the last step (4) per (method, resolution), one value per seed
FINAL_EVAL = {
    ("vader", 16): [0.50, 0.55, 0.62],
    ("vader", 32): [0.70, 0.74, 0.81],
    ("ddpo", 16): [0.40, 0.47, 0.41],
    ("ddpo", 32): [0.41, 0.38, 0.45],
    ("dpo", 16): [0.45, 0.43, 0.49],
    ("dpo", 32): [0.44, 0.46, 0.40],
}
#: the base model's held-out reward (eval at step 0) per seed: the same evaluation noise for every method
BASE_EVAL = {16: [0.30, 0.32, 0.29], 32: [0.20, 0.25, 0.21]}
#: reward_mean at step 1 (sampled before the first update) per method and seed
BASE_TRAIN = {"vader": [0.31, 0.33, 0.30], "ddpo": [0.29, 0.35, 0.28], "dpo": [0.30, 0.31, 0.33]}
FAILED_MARKER = 99.0  # a value that would show in any mean it leaked into
#: the reward and gold of chance and oracle videos of the evaluation prompts, per resolution
REFERENCES = {
    r: {("chance", "reward"): 0.1, ("oracle", "reward"): 0.9, ("chance", "gold"): 0.5, ("oracle", "gold"): 0.8}
    for r in RESOLUTIONS
}


def new_store(root: Path, name: str = "synthetic") -> tuple[MlflowClient, str, str]:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.create_experiment(name, artifact_location=str(root / "artifacts"))
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    return client, experiment, parent


def add_trial(
    client,
    experiment,
    parent,
    params: dict,
    curves: dict[str, dict[int, float]],
    status: str = "FINISHED",
    gifs: Path | None = None,
) -> str:
    name = "-".join(f"{v}" for v in params.values())
    run = client.create_run(experiment, run_name=name, tags={"mlflow.parentRunId": parent}).info.run_id
    metrics = [Metric(key, value, 0, step) for key, points in curves.items() for step, value in points.items()]
    client.log_batch(run, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    if gifs is not None:
        client.log_artifacts(run, str(gifs), "samples")
    if status != "RUNNING":
        client.set_terminated(run, status)
    return run


def efficiency_curves(method: str, resolution: int, seed: int, final: float) -> dict[str, dict[int, float]]:
    """Steps 0-4: eval at 0, 2, 4; training reward, ledger and memory at 1-4."""
    base_train = BASE_TRAIN[method][seed]
    return {
        "eval_reward_mean": {0: BASE_EVAL[resolution][seed], 2: (BASE_EVAL[resolution][seed] + final) / 2, 4: final},
        # the study's one learned reward: here the reward every method trained on
        "eval_reference_reward_mean": {
            0: BASE_EVAL[resolution][seed],
            2: (BASE_EVAL[resolution][seed] + final) / 2,
            4: final,
        },
        "reward_mean": {1: base_train, 2: base_train + 0.1, 3: base_train + 0.2, 4: final - 0.05},
        "reward_queries": {s: 8.0 * s * (1 if method == "vader" else 2) for s in range(1, 5)},
        "device_time_s": {s: 60.0 * s for s in range(1, 5)},
        "peak_memory_mb": dict.fromkeys(range(1, 5), 100.0 + resolution),
        # cumulative seconds per phase: 1 s a step in each phase, the trial's seed more in sampling
        **{
            metric_name(phase): {s: s * (1.0 + (seed if phase == "sample" else 0)) for s in range(5)}
            for phase in PHASES
        },
        "wall_time_s": {s: s * (len(PHASES) + seed + 0.5) for s in range(5)},
        "startup_s": {4: 2.0 + seed},
        # the truth falls as the learned reward rises (over-optimisation); VADER's videos drift from their
        # captions, the others' fidelity holds (within the seeds' spread)
        "eval_gold_mean": {0: 0.4, 2: 0.35, 4: 0.3 - final / 10},
        "eval_fidelity": {0: 0.6, 2: 0.6, 4: 0.6 - (0.2 if method == "vader" else 0.0) + seed / 100},
        "eval_kl": {0: 0.0, 2: 5.0 * final, 4: 20.0 * final},
        **{f"eval_{kind}_{measure}": {0: value} for (kind, measure), value in REFERENCES[resolution].items()},
    }


def write_efficiency_study(root: Path, gifs: Path | None = None) -> tuple[MlflowClient, str, str]:
    """Three methods x two resolutions x three seeds, plus a failed and an unfinished trial."""
    client, experiment, parent = new_store(root)
    for (method, resolution), finals in FINAL_EVAL.items():
        for seed, final in zip(SEEDS, finals):
            params = {"method": method, "resolution": resolution, "K": 1, "lr": 1e-3, "seed": seed, "model": "toy"}
            add_trial(
                client,
                experiment,
                parent,
                params,
                efficiency_curves(method, resolution, seed, final),
                gifs=gifs if seed == 0 else None,
            )
    poison = {"eval_reward_mean": {0: FAILED_MARKER, 2: FAILED_MARKER}, "reward_mean": {1: FAILED_MARKER}}
    add_trial(
        client,
        experiment,
        parent,
        {"method": "ddpo", "resolution": 32, "K": 1, "lr": 1e-3, "seed": 3, "model": "toy"},
        poison,
        status="FAILED",
    )
    add_trial(
        client,
        experiment,
        parent,
        {"method": "vader", "resolution": 16, "K": 1, "lr": 1e-3, "seed": 3, "model": "toy"},
        poison,
        status="RUNNING",
    )
    client.set_terminated(parent)
    return client, experiment, parent


def write_gifs(folder: Path) -> Path:
    """start, end and oracle GIFs of two 8x8 videos side by side, each with its JSON of prompts and values."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, reward in (("start", 0.5), ("end", 0.7), ("oracle", 0.9)):
        iio.imwrite(folder / f"{name}.gif", (rng.random((5, 8, 16, 3)) * 255).astype(np.uint8))
        values = [{"prompt": f"caption {i}", "reward": reward + i / 100, "gold": reward / 2} for i in range(2)]
        (folder / f"{name}.json").write_text(json.dumps(values))
    return folder


@pytest.fixture(scope="module")
def efficiency_study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("efficiency")
    write_efficiency_study(root)
    return root


def t_cell(values) -> str:
    """mean ± half-width of the t-interval, both to the decimal place that gives the half-width 2 digits."""
    low, high = stats.t.interval(0.95, len(values) - 1, loc=statistics.mean(values), scale=stats.sem(values))
    half = (high - low) / 2
    places = max(0, 1 - math.floor(math.log10(half)))
    return f"{round(statistics.mean(values), places):.{places}f} ± {round(half, places):.{places}f} (n={len(values)})"


def finished_trials(root: Path):
    runs = load_runs(root)
    trials = classify(runs.trials)
    return runs, trials[trials["state"] == "finished"]


def test_resolution_gap_cells_are_t_intervals_over_the_finished_seeds(efficiency_study):
    runs, finished = finished_trials(efficiency_study)
    table = tables.resolution_gap(finished, runs.metrics)
    assert len(table) == len(FINAL_EVAL)
    for (method, resolution), values in FINAL_EVAL.items():
        row = table[(table["method"] == method) & (table["side"] == resolution)].iloc[0]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        assert row["n"] == 3 and row["steps"] == "4"
        assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert (row["low"], row["high"]) == pytest.approx((low, high), abs=1e-12)


def test_resolution_gap_differences_are_welch_intervals(efficiency_study):
    runs, finished = finished_trials(efficiency_study)
    gaps = tables.resolution_gap_differences(finished, runs.metrics)
    assert sorted(gaps["comparison"].unique()) == ["VADER − DDPO", "VADER − DPO"]
    for other in ("ddpo", "dpo"):
        for resolution in RESOLUTIONS:
            a, b = FINAL_EVAL[("vader", resolution)], FINAL_EVAL[(other, resolution)]
            expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
            row = gaps[(gaps["method"] == other) & (gaps["side"] == resolution)].iloc[0]
            assert row["mean"] == pytest.approx(np.mean(a) - np.mean(b), abs=1e-12)
            assert (row["low"], row["high"]) == pytest.approx((expected.low, expected.high), abs=1e-10)


def test_generalisation_takes_the_base_model_from_step_zero_and_the_first_batch(efficiency_study):
    runs, finished = finished_trials(efficiency_study)
    table = tables.generalisation(finished, runs.metrics).set_index(["side", "model", "prompts"])
    for resolution in RESOLUTIONS:
        held_out = table.loc[(resolution, "Base model", "held-out")]
        assert held_out["mean"] == pytest.approx(np.mean(BASE_EVAL[resolution])) and held_out["n"] == 3
        per_seed = [np.mean([BASE_TRAIN[m][s] for m in BASE_TRAIN]) for s in SEEDS]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(per_seed), scale=stats.sem(per_seed))
        train = table.loc[(resolution, "Base model", "train")]
        assert (train["low"], train["high"]) == pytest.approx((low, high), abs=1e-12)
        vader_train = table.loc[(resolution, "VADER", "train")]
        assert vader_train["mean"] == pytest.approx(np.mean(FINAL_EVAL[("vader", resolution)]) - 0.05)


def test_curves_average_each_step_over_seeds_and_start_from_nothing_spent(efficiency_study):
    runs, finished = finished_trials(efficiency_study)
    curve = tables.curves(finished, runs.metrics, x="reward_queries")
    ddpo = curve[(curve["method"] == "ddpo") & (curve["side"] == 16)].set_index("step")
    assert list(ddpo.index) == [0, 2, 4]
    assert list(ddpo["x"]) == [0.0, 32.0, 64.0]  # 2 x 8 queries per step for DDPO
    assert ddpo.loc[4, "mean"] == pytest.approx(np.mean(FINAL_EVAL[("ddpo", 16)]))


def test_report_lists_failed_and_unfinished_trials_and_never_averages_them(efficiency_study):
    path, _ = write_report(efficiency_study)
    text = path.read_text()
    assert "Trials: 18 finished, 1 failed, 1 unfinished, 0 superseded" in text
    assert "| ddpo-32-1-0.001-3-toy |" in text and "| FAILED | failed |" in text
    assert "| vader-16-1-0.001-3-toy |" in text and "| RUNNING | unfinished |" in text
    # cells with their seed counts, laid out resolution x method (VADER first)
    assert "| resolution | VADER | DDPO | DPO |" in text
    row_32 = "| 32 | " + " | ".join(t_cell(FINAL_EVAL[(m, 32)]) for m in ("vader", "ddpo", "dpo")) + " |"
    assert row_32 in text
    assert "| 16 | Base model | " + t_cell(BASE_EVAL[16]) in text


def test_a_complete_store_gives_every_figure_and_logs_it_to_the_parent_run(tmp_path):
    gifs = write_gifs(tmp_path / "gifs")
    client, experiment, parent = write_efficiency_study(tmp_path / "out", gifs=gifs)
    # K ablation (VADER, K = 10), on-policy DDPO, and a memory switch
    for seed in SEEDS[:2]:
        k10 = efficiency_curves("vader", 16, seed, 0.5 + seed / 10)
        add_trial(
            client,
            experiment,
            parent,
            {"method": "vader", "resolution": 16, "K": 10, "lr": 1e-3, "seed": seed, "model": "toy"},
            k10,
        )
        on_policy = efficiency_curves("ddpo", 32, seed, 0.3 + seed / 10)
        add_trial(
            client,
            experiment,
            parent,
            {
                "method": "ddpo",
                "resolution": 32,
                "K": 1,
                "lr": 1e-3,
                "seed": seed,
                "model": "toy",
                "variant": "on-policy",
            },
            on_policy,
        )
    # a tuning stage: four learning rates of VADER on one tuning seed, one stopped early, one past the oracle,
    # each scored on its last evaluation
    client.log_param(parent, TUNE_SCORE_EVALUATIONS, "1")
    for lr, final, steps in ((1e-4, 0.40, 4), (1e-3, 0.70, 4), (1e-2, 0.30, 2), (1e-1, 1.20, 4)):
        rewards = {s: final * s / steps for s in range(0, steps + 1, 2)}
        curves = {
            "eval_reward_mean": rewards,
            TUNING_SCORE: {s: tuning_score(r, 0.9) for s, r in rewards.items()},
            # the exploit (1e-1) loses its captions: fidelity 0.8 at step 0, 0.2 at its last
            "eval_fidelity": {s: 0.8 - (0.6 * s / steps if lr == 1e-1 else 0.0) for s in rewards},
            "eval_gold_mean": dict.fromkeys(rewards, 0.3),
            **({"budget_spent": {4: 1.0}} if steps == 4 else {}),
        }
        add_trial(
            client,
            experiment,
            parent,
            {"method": "vader", "resolution": 32, "K": 1, "lr": lr, "seed": 1000, "model": "toy", "stage": "tune"},
            curves,
        )
    path, _ = write_report(tmp_path / "out")
    folder = path.parent
    assert folder == tmp_path / "out" / "report"
    for name in SECTIONS:
        for suffix in (".png", ".svg"):
            assert (folder / f"{name}{suffix}").stat().st_size > 0, name
        assert f"]({name}.png)" in path.read_text()
    # every section is drawn; the findings, which compare one series per method, do not pool VADER's two Ks
    text = path.read_text()
    assert text.count("Skipped") == 1
    assert "## Findings\n\nSkipped: VADER has 2 settings at 16 px (VADER (K=1); VADER (K=10))" in text
    assert not (folder / "summary.json").exists()
    logged = {f.path for f in client.list_artifacts(parent, "report")}
    assert {f"report/{name}.png" for name in SECTIONS} | {"report/report.md"} <= logged
    runs, finished = finished_trials(tmp_path / "out")
    assert "1000" not in set(finished_only(classify(runs.trials))["seed"])  # tuning trials: their own section
    tuned = classify(runs.trials)
    tuning, keys = tables.tuning(tuned[tuned["stage"] == "tune"], runs.metrics, 1)
    assert keys == ["lr"]
    # scored as the stage scores it: the mean of the last 2 evaluations (steps 2 and 4) of 1e-3 is (0.35 + 0.7) / 2
    averaged, _ = tables.tuning(tuned[tuned["stage"] == "tune"], runs.metrics, 2)
    assert averaged.set_index("lr").loc["0.001", "score"] == pytest.approx(0.525)
    # the best score of those that ran to the budget: 1e-1's reward is higher, but 0.3 past the oracle's
    assert tuning.loc[tuning["chosen"], "lr"].tolist() == ["0.001"]
    assert tuning.set_index("lr").loc["0.1", "score"] == pytest.approx(0.6)
    assert tuning.set_index("lr").loc["0.01", "reached"] == False  # noqa: E712  (stopped early)
    assert tuning.set_index("lr")["fidelity"].to_dict() == pytest.approx(
        {"0.0001": 0.8, "0.001": 0.8, "0.01": 0.8, "0.1": 0.2}
    )
    text = path.read_text()
    assert "the base model's: 32 px: gold 0.3, caption fidelity 0.8." in text
    assert "| VADER | 32 | 0.1 | 1.2 | 0.6 | 0.3 | 0.2 | 4 | yes |  |" in text
    k_table = tables.k_ablation(finished, runs.metrics)
    assert sorted(set(k_table["K"])) == ["1", "10"] and sorted(set(k_table["step"])) == [1, 4]


def test_missing_runs_skip_their_figures_with_a_reason(tmp_path, capsys):
    client, experiment, parent = new_store(tmp_path)
    for seed in SEEDS[:2]:  # VADER only, no evaluation before training, no ledger, no sample videos
        add_trial(
            client,
            experiment,
            parent,
            {"method": "vader", "resolution": 16, "seed": seed},
            {"reward_mean": {1: 0.1 * seed, 2: 0.2 + seed}, "eval_reward_mean": {2: 0.3 + seed}},
        )
    add_trial(
        client,
        experiment,
        parent,
        {"method": "ddpo", "resolution": 16, "seed": 0},
        {"reward_mean": {1: FAILED_MARKER}},
        status="FAILED",
    )
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "k_ablation.png").write_bytes(b"a figure of an earlier report")
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"report: {tmp_path / 'report' / 'report.md'}"
    assert "skipped k_ablation: the trials log no `K` param" in out
    assert not (tmp_path / "report" / "k_ablation.png").exists()
    text = (tmp_path / "report" / "report.md").read_text()
    assert "2 finished, 1 failed" in text
    assert "| 16 | 0.8 ± 6.4 (n=2) |" in text  # VADER's cell: t(0.975, 1) = 12.706, s/√2 = 0.5
    assert "Note: no VADER and baseline trials at a common resolution: no gap computed" in text
    assert "Note: no trial logged `eval_reward_mean` at step 0: the base model's held-out reward is missing" in text
    assert "## Sample efficiency (paper Figure 5, top)\n\nSkipped: no finished trial logged `reward_queries`." in text
    assert "## K ablation (paper Table 9)\n\nSkipped: the trials log no `K` param." in text
    assert "## Sample videos before and after alignment\n\nSkipped: no trial has start and end GIF artifacts." in text
    assert not (tmp_path / "report" / "sample_efficiency.png").exists()


def test_one_section_alone_writes_only_its_figure(efficiency_study, tmp_path, capsys):
    uri = f"sqlite:///{efficiency_study / 'mlflow.db'}"
    markdown = render_section("resolution_gap", tmp_path, experiment="synthetic", tracking_uri=uri)
    assert markdown.startswith("## Resolution gap")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["resolution_gap.png", "resolution_gap.svg"]
    # the analysis scripts' entry point: the same, from the command line
    assert section_main("k_ablation", "Table 9", [str(tmp_path), "--tracking-uri", uri]) == 0
    assert "Skipped: no method was run with more than one K." in capsys.readouterr().out
    assert section_main("k_ablation", "Table 9", [str(tmp_path)]) == 2  # no mlflow.db there
    # the same runs, the same SVG byte for byte (no date, no random ids): a report's diff shows only what changed
    again = tmp_path / "again"
    render_section("resolution_gap", again, experiment="synthetic", tracking_uri=uri)
    svg = (tmp_path / "report" / "resolution_gap.svg").read_bytes()
    assert svg == (again / "report" / "resolution_gap.svg").read_bytes() and b"<dc:date>" not in svg


def test_params_flattened_under_a_prefix_are_found(tmp_path):
    client, experiment, parent = new_store(tmp_path)
    for method, finals in (("vader", [0.6, 0.7]), ("ddpo", [0.4, 0.42])):
        for seed, final in enumerate(finals):
            add_trial(
                client,
                experiment,
                parent,
                {"config/method": method, "config/resolution": "32x32", "config/seed": seed},
                {"eval_reward_mean": {0: 0.1, 5: final}},
            )
    runs, finished = finished_trials(tmp_path)
    table = tables.resolution_gap(finished, runs.metrics)
    assert list(table["series"]) == ["VADER", "DDPO"] and list(table["resolution_label"]) == ["32", "32"]
    assert list(table["n"]) == [2, 2] and table["mean"].tolist() == pytest.approx([0.65, 0.41])

    # no reward_mean and no evaluation at step 0: the generalisation table says what is missing
    runs.client.log_metric(finished["run_id"].iloc[0], "reward_mean", 0.3, step=1)
    text = write_report(tmp_path)[0].read_text()
    assert "| 32 | Base model | 0.1 (no spread) (n=2) | 0.3 (n=1) |" in text


def test_store_mistakes_are_clear_errors(tmp_path, efficiency_study, capsys):
    assert main(["report"]) == 2
    assert "give OUTPUT_DIR" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in capsys.readouterr().err
    assert main(["report", str(efficiency_study), "--experiment", "nope"]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err


def test_a_single_seed_has_no_interval_and_says_n_1():
    estimate = t_interval([0.25])
    assert estimate.mean == 0.25 and np.isnan(estimate.low) and np.isnan(estimate.high)
    assert cell(estimate.mean, estimate.low, estimate.high, estimate.n) == "0.25 (n=1)"


@pytest.mark.parametrize(
    "mean, half, text",
    [
        (0.8133, 0.09218, "0.813 ± 0.092"),
        (0.81334, 0.0034, "0.8133 ± 0.0034"),
        (12.71, 6.353, "12.7 ± 6.4"),
        (1523.4, 212.0, "1523 ± 212"),
        (0.78, 0.0, "0.78 (no spread)"),
        # seeds that agree up to float32 rounding: no spread, not seventeen decimals of noise
        (0.3, 1.1e-16, "0.3 (no spread)"),
    ],
)
def test_numbers_are_printed_to_the_precision_their_interval_supports(mean, half, text):
    assert estimate_text(mean, mean - half, mean + half) == text


def test_a_rerun_trial_supersedes_the_older_one():
    common = {"method": "vader", "resolution": "16", "seed": "0"}
    trials = pd.DataFrame(
        [
            {"run_id": "a", "run_name": "a", "parent_run_id": "p1", "status": "FAILED", "start_time": 1, **common},
            {"run_id": "b", "run_name": "b", "parent_run_id": "p2", "status": "FINISHED", "start_time": 2, **common},
            {"run_id": "c", "run_name": "c", "parent_run_id": "p3", "status": "FINISHED", "start_time": 3, **common},
            {
                "run_id": "d",
                "run_name": "d",
                "parent_run_id": "p3",
                "status": "FAILED",
                "start_time": 3,
                **common,
                "seed": "1",
            },
        ]
    )
    assert list(classify(trials)["state"]) == ["superseded", "superseded", "finished", "failed"]


@pytest.mark.parametrize(
    "paths, expected",
    [
        (["samples/end.gif", "samples/start.gif"], ("samples/start.gif", "samples/end.gif")),
        (
            ["videos/step_100.gif", "videos/step_0.gif", "videos/step_50.gif"],
            ("videos/step_0.gif", "videos/step_100.gif"),
        ),
        (["before_alignment.gif", "after_alignment.gif"], ("before_alignment.gif", "after_alignment.gif")),
        (["samples/only.gif"], None),
    ],
)
def test_start_and_end_gifs_are_told_apart_by_name_or_step(paths, expected):
    assert start_and_end(paths) == expected


def test_time_breakdown_is_each_phases_seconds_per_trial_with_other_and_start_up(efficiency_study):
    runs, finished = finished_trials(efficiency_study)
    table = tables.time_breakdown(finished, runs.metrics)
    parts = list(table[(table["series"] == "DDPO") & (table["resolution_label"] == "32")]["part"])
    table = table.set_index(["series", "resolution_label", "part"]).sort_index()
    # at the last step (4): sampling 4 (1 + seed) s, each other phase 4 s, wall 4 (7 + seed + 0.5) s
    vader = table.loc[("VADER", "16")]
    assert vader.loc["sample", "mean"] == pytest.approx(statistics.mean(4 * (1 + s) for s in SEEDS))
    assert vader.loc["backward", "mean"] == pytest.approx(4.0)
    assert vader.loc["other", "mean"] == pytest.approx(2.0)  # wall minus the phases: 4 x 0.5 for every seed
    assert vader.loc["start-up", "mean"] == pytest.approx(statistics.mean(2.0 + s for s in SEEDS))
    assert vader.loc["sample", "n"] == len(SEEDS)  # the failed and unfinished trials are not averaged in
    assert parts == [*PHASES, "other", "start-up"]


def test_the_samples_show_base_each_method_and_the_oracle_of_the_same_captions_with_their_values(tmp_path):
    from vaderbench.report.samples import comparison_rows
    from vaderbench.report.tables import with_series

    client, _, _ = write_efficiency_study(tmp_path / "out", gifs=write_gifs(tmp_path / "gifs"))
    _, finished = finished_trials(tmp_path / "out")
    blocks, captions, notes = comparison_rows(
        client, with_series(with_resolution(finished), exclude=("resolution", "seed"))
    )
    assert captions == ["caption 0", "caption 1"] and not notes
    for i, block in enumerate(blocks):
        assert [row.label for row in block] == ["base model", "VADER", "DDPO", "DPO", "oracle render"]
        assert [row.values["reward"] for row in block] == pytest.approx(
            [0.5 + i / 100] + [0.7 + i / 100] * 3 + [0.9 + i / 100]
        )
        assert all(row.frames.shape == (4, 8, 8, 3) for row in block)  # one of the two videos, 4 of its 5 frames


def test_the_summary_holds_headroom_targets_ratios_and_the_gap_slope(efficiency_study):
    from vaderbench.report.efficiency import analyse

    runs, finished = finished_trials(efficiency_study)
    summary = analyse(finished, runs.metrics)
    at16 = summary.resolutions["16"]
    room = at16.headroom
    assert (room.chance, room.base, room.oracle) == pytest.approx((0.1, np.mean(BASE_EVAL[16]), 0.9))
    assert room.truth_bases == pytest.approx({"gold": 0.4, "fidelity": 0.6})
    vader = at16.methods["vader"]
    assert vader.truths["fidelity"].mean == pytest.approx(0.41)
    assert at16.methods["dpo"].truths["fidelity"].mean == pytest.approx(0.61)
    assert vader.final.mean == pytest.approx(np.mean(FINAL_EVAL[("vader", 16)])) and vader.seeds == 3
    base = np.mean(BASE_EVAL[16])
    assert vader.headroom_closed.mean == pytest.approx(
        np.mean([(f - base) / (0.9 - base) for f in FINAL_EVAL[("vader", 16)]])
    )
    # the target: DPO's mean final reward at 16 px (the best baseline); VADER's queries to it, by hand:
    target = np.mean(FINAL_EVAL[("dpo", 16)])
    assert at16.targets["best_baseline"] == pytest.approx(target)

    def queries_to(method, per_step):  # by hand: linear between the evaluations around the crossing
        costs = []
        for base, final in zip(BASE_EVAL[16], FINAL_EVAL[(method, 16)]):
            steps = [(base, 0.0), ((base + final) / 2, 2 * per_step), (final, 4 * per_step)]
            crossing = [
                q0 + (target - r0) / (r1 - r0) * (q1 - q0)
                for (r0, q0), (r1, q1) in itertools.pairwise(steps)
                if r0 < target <= r1
            ]
            costs.append(crossing[0] if crossing else 4 * per_step)  # not reached: what it spent, a bound
        return costs

    cost = at16.methods["ddpo"].costs["queries"]["best_baseline"]
    assert (cost.reached, cost.trials) == (1, 3)
    ratio = at16.ratios["ddpo"]["best_baseline"]["queries"]
    # DDPO missed the target in two seeds: its budget stands in for them, and the ratio is an upper bound
    assert ratio.upper_bound
    assert ratio.ratio.mean == pytest.approx(np.mean(queries_to("vader", 8.0)) / np.mean(queries_to("ddpo", 16.0)))
    gaps = [np.mean(FINAL_EVAL[("vader", r)]) - np.mean(FINAL_EVAL[("dpo", r)]) for r in RESOLUTIONS]
    slope = summary.slopes["reward"]
    assert slope.mean == pytest.approx(np.polyfit(np.log2(RESOLUTIONS), gaps, 1)[0])
    assert slope.low < slope.mean < slope.high
    # on gold (0.3 - final / 10 for every seed) the best baseline is the one with the lowest final reward
    gold_gaps = [
        -(np.mean(FINAL_EVAL[("vader", r)]) - min(np.mean(FINAL_EVAL[(m, r)]) for m in ("ddpo", "dpo"))) / 10
        for r in RESOLUTIONS
    ]
    assert summary.slopes["gold"].mean == pytest.approx(np.polyfit(np.log2(RESOLUTIONS), gold_gaps, 1)[0])


def test_the_details_say_who_fell_below_the_base_model_in_gold_and_in_caption_fidelity(efficiency_study):
    from vaderbench.report.details import details
    from vaderbench.report.efficiency import analyse

    runs, finished = finished_trials(efficiency_study)
    text = "\n".join(details(analyse(finished, runs.metrics)))
    # gold: 0.4 at step 0, 0.3 - final / 10 after training, for every method and seed
    gold = text[text.index("Gold (") : text.index("Caption fidelity (")]
    assert "| 16 px | 0.4 |" in gold and "| VADER, DDPO, DPO | none |" in gold
    # fidelity: VADER's falls from 0.6 to 0.40-0.42 over its seeds; the others' end at 0.60-0.62 (not below)
    fidelity = text[text.index("Caption fidelity (") :]
    assert "| 16 px | 0.6 | 0.410 ± 0.025 | 0.610 ± 0.025 | 0.610 ± 0.025 | VADER | none |" in fidelity


SHIPPED_SUMMARIES = sorted((Path(__file__).resolve().parent.parent / "docs" / "results").glob("*/summary.json"))


@pytest.mark.parametrize("path", SHIPPED_SUMMARIES, ids=lambda path: path.parent.name)
def test_a_shipped_summary_json_round_trips_through_the_typed_summary(path):
    text = path.read_text()
    summary = Summary.from_json(text)
    assert summary.to_json() == text
    # read into types, not passed through: every resolution's methods and their results
    assert summary.reference == "vader" and all(at.methods["vader"].seeds >= 3 for at in summary.resolutions.values())


def test_the_summary_written_reads_back_to_the_same_findings(efficiency_study):
    from vaderbench.report.details import details
    from vaderbench.report.efficiency import analyse
    from vaderbench.report.findings import findings

    runs, finished = finished_trials(efficiency_study)
    summary = analyse(finished, runs.metrics)
    text = summary.to_json()
    again = Summary.from_json(text)
    assert again.to_json() == text
    assert findings(again) == findings(summary) and details(again) == details(summary)
    assert "no ratio" in "\n".join(details(summary))  # a ratio without a value is among what round-trips


def test_the_summary_gives_the_gap_welch_s_interval_and_checks_the_precision_target(efficiency_study):
    from scipy import stats as scipy_stats

    from vaderbench.report.efficiency import PRECISION_TARGET, analyse

    runs, finished = finished_trials(efficiency_study)
    at16 = analyse(finished, runs.metrics).resolutions["16"]
    vader, dpo = np.array(FINAL_EVAL[("vader", 16)]), np.array(FINAL_EVAL[("dpo", 16)])
    va, vb = vader.var(ddof=1) / 3, dpo.var(ddof=1) / 3
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = scipy_stats.t.ppf(0.975, dof) * np.sqrt(va + vb)
    difference = vader.mean() - dpo.mean()
    gap = at16.gaps["reward"].difference
    assert (gap.mean, gap.low, gap.high) == pytest.approx((difference, difference - half, difference + half))
    # precision: the widest final interval's half-width against a tenth of the base-to-oracle headroom
    halves = [
        scipy_stats.t.ppf(0.975, 2) * np.std(FINAL_EVAL[(m, 16)], ddof=1) / np.sqrt(3) for m in ("vader", "ddpo", "dpo")
    ]
    target = PRECISION_TARGET * (0.9 - np.mean(BASE_EVAL[16]))
    # seeds needed: the first n whose t-interval at the largest spread is narrower than the target
    spread = max(np.std(FINAL_EVAL[(m, 16)], ddof=1) for m in ("vader", "ddpo", "dpo"))
    needed = next(n for n in range(2, 10**6) if scipy_stats.t.ppf(0.975, n - 1) * spread / np.sqrt(n) < target)
    assert at16.precision == Precision(pytest.approx(max(halves)), pytest.approx(target), max(halves) < target, needed)


def test_two_baselines_compare_head_to_head_with_the_first_as_the_reference(efficiency_study, capsys):
    spec = importlib.util.spec_from_file_location("compare_methods", ANALYSIS / "compare_methods.py")
    compare_methods = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_methods)
    summary = compare_methods.head_to_head("dpo", "ddpo", efficiency_study)
    assert summary.reference == "dpo" and all(set(at.methods) == {"dpo", "ddpo"} for at in summary.resolutions.values())
    for resolution in RESOLUTIONS:
        at = summary.resolutions[str(resolution)]
        dpo, ddpo = FINAL_EVAL[("dpo", resolution)], FINAL_EVAL[("ddpo", resolution)]
        # DPO minus DDPO, and the target is DDPO's own final reward (VADER, left out, does not set it)
        assert at.gaps["reward"].difference.mean == pytest.approx(np.mean(dpo) - np.mean(ddpo), abs=1e-9)
        assert at.targets["best_baseline"] == pytest.approx(np.mean(ddpo), abs=1e-9)
        assert set(at.ratios) == {"ddpo"}
    assert compare_methods.main([str(efficiency_study), "dpo", "ddpo"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| resolution | DPO reward | DPO gain | DDPO reward |") and "| 32 px |" in printed
    assert compare_methods.main([str(efficiency_study), "dpo", "nft"]) == 2  # not in the study
    assert "no finished trials of nft" in capsys.readouterr().err
    # a baseline against the reward-gradient method: VADER is the one it is compared with, not left out
    against_vader = compare_methods.head_to_head("dpo", "vader", efficiency_study)
    for resolution in RESOLUTIONS:
        difference = against_vader.resolutions[str(resolution)].gaps["reward"].difference.mean
        assert difference == pytest.approx(
            np.mean(FINAL_EVAL[("dpo", resolution)]) - np.mean(FINAL_EVAL[("vader", resolution)])
        )


#: the base model's gold and reference learned reward at step 0, per seed (the same for every entry)
DEFENCE_BASE = {"gold": [0.40, 0.42, 0.38], "reference": [0.30, 0.31, 0.29]}
#: per row (aligner, entry, LoRA scale): the final minus step 0 of gold and of the reference reward, per seed
DEFENCE_GAINS = {
    ("vader", "vader", 1.0): {"gold": [-0.10, -0.13, -0.08], "reference": [0.30, 0.32, 0.28]},
    ("vader", "vader", 0.5): {"gold": [0.05, 0.06, 0.04], "reference": [0.15, 0.16, 0.14]},
    ("vader", "vader-kl", 1.0): {"gold": [0.03, 0.05, 0.04], "reference": [0.20, 0.22, 0.18]},
    ("vader", "vader-worst-case", 1.0): {"gold": [0.00, 0.01, -0.01], "reference": [0.01, -0.02, 0.00]},
    ("dpo", "dpo", 1.0): {"gold": [-0.01, 0.02, 0.00], "reference": [0.10, 0.12, 0.08]},
    ("dpo", "dpo-kl", 1.0): {"gold": [0.02, 0.03, 0.025], "reference": [0.05, 0.06, 0.04]},
}


def write_defences_study(root: Path, reference: bool = True, truth: str | None = "eval_gold_mean") -> None:
    """Six rows: VADER, its KL and worst-case variants and VADER's adapter at half scale; DPO and its KL variant.
    Step 2 logs values far from the final ones (the last evaluation is read); the half-scale adapter logs no step 0
    of its own (the base model's is the trial's)."""
    client, experiment, parent = new_store(root)
    for aligner, entry, scale in DEFENCE_GAINS:
        if scale != 1.0:
            continue
        for seed in SEEDS:
            params = {"method": aligner, "resolution": 16, "seed": seed}
            if entry != aligner:
                params["variant"] = entry
            curves = {}
            for (_, other, s), values in DEFENCE_GAINS.items():
                if other != entry:
                    continue
                suffix = "" if s == 1.0 else f"_lora{s:g}"
                for axis, metric in (("gold", truth), ("reference", "eval_reference_reward_mean")):
                    if (axis == "reference" and not reference) or metric is None:
                        continue
                    base = DEFENCE_BASE[axis][seed]
                    curves[metric + suffix] = {2: 5.0, 4: base + values[axis][seed]}
                    if s == 1.0:
                        curves[metric + suffix][0] = base
                curves["eval_fidelity" + suffix] = {0: 0.6, 4: 0.6 + seed / 100 - (1 - s) / 10}
            add_trial(client, experiment, parent, params, curves)


def t_estimate(values) -> tuple[float, float, float]:
    low, high = stats.t.interval(0.95, len(values) - 1, loc=statistics.mean(values), scale=stats.sem(values))
    return statistics.mean(values), low, high


def test_defences_rank_by_final_gold_with_paired_gains_and_verdicts(tmp_path):
    write_defences_study(tmp_path)
    runs, finished = finished_trials(tmp_path)
    found = defences.rows(finished, runs.metrics)
    # VADER's rows first (the report's order of aligners), each group ranked by final gold (base 0.40 + mean gain)
    assert [(r.aligner, r.label) for r in found] == [
        ("vader", "vader @ LoRA 0.5"),
        ("vader", "vader-kl"),
        ("vader", "vader-worst-case"),
        ("vader", "vader"),
        ("dpo", "dpo-kl"),
        ("dpo", "dpo"),
    ]
    by_label = {r.label: r for r in found}
    for (_, entry, scale), gains in DEFENCE_GAINS.items():
        row = by_label[entry if scale == 1.0 else f"{entry} @ LoRA {scale:g}"]
        for got, values in (
            (row.truth_gain, gains["gold"]),
            (row.reference_gain, gains["reference"]),
            (row.truth, [b + g for b, g in zip(DEFENCE_BASE["gold"], gains["gold"])]),
        ):
            assert (got.mean, got.low, got.high) == pytest.approx(t_estimate(values)), row.label
            assert got.n == 3
    assert {label: r.verdict for label, r in by_label.items()} == {
        "vader": defences.LOSES_TRUTH.format(truth="gold"),
        "vader @ LoRA 0.5": defences.KEEPS_TRUTH.format(truth="gold"),
        "vader-kl": defences.KEEPS_TRUTH.format(truth="gold"),
        "vader-worst-case": defences.NO_RAISE,
        "dpo": defences.TRUTH_UNCHANGED.format(truth="gold"),
        "dpo-kl": defences.KEEPS_TRUTH.format(truth="gold"),
    }
    assert by_label["vader @ LoRA 0.5"].fidelity.mean == pytest.approx(0.56)
    markdown = render_section("defences", tmp_path)
    assert (
        "Highest final gold: VADER: vader @ LoRA 0.5 (0.45); DPO: dpo-kl (0.425). Raising the learned reward while "
        "keeping gold above the base model's: VADER: vader @ LoRA 0.5, vader-kl; DPO: dpo-kl." in markdown
    )
    assert f"| VADER | vader-kl | {t_cell([0.43, 0.47, 0.42])} |" in markdown
    assert f"| VADER | vader | {t_cell([0.30, 0.29, 0.30])} |" in markdown
    assert (tmp_path / "report" / "defences.png").stat().st_size > 0


def test_the_defences_figure_names_neighbouring_points_without_overlap_and_the_rest_under_the_axis(tmp_path):
    write_defences_study(tmp_path)
    runs, finished = finished_trials(tmp_path)
    found = defences.rows(finished, runs.metrics)
    # three entries that raise the reward at nearly the same point: labelled at one offset, their names would overlap
    near = Estimate(0.20, 0.18, 0.22, 3), Estimate(0.04, 0.03, 0.05, 3)
    raising = [row for row in found if row.raises_reward][:3]
    crowded = [
        dataclasses.replace(row, reference_gain=near[0], truth_gain=near[1]) if row in raising else row for row in found
    ]
    figure = figures.defences(crowded)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    (ax,) = figure.axes
    labels = {text.get_text(): text.get_window_extent(renderer) for text in ax.texts}
    assert set(labels) == {row.label for row in crowded if row.raises_reward}
    for (a, box), (b, other) in itertools.combinations(labels.items(), 2):
        assert not box.overlaps(other), (a, b)
    # the one that does not raise the reward is named once, under the axis, not at the origin
    assert "unlabelled, not raising the reward (its interval reaches 0): vader-worst-case" in ax.get_xlabel()


def test_off_the_toy_world_defences_rank_by_a_held_out_reward_named_as_the_truths_stand_in(tmp_path):
    write_defences_study(tmp_path, truth="eval_held_out_reward_mean")
    runs, finished = finished_trials(tmp_path)
    found = defences.rows(finished, runs.metrics)
    assert {row.truth_name for row in found} == {"held-out reward"}
    # the same numbers as gold gave: the ranking and the verdicts follow the truth's stand-in
    assert [row.label for row in found][:2] == ["vader @ LoRA 0.5", "vader-kl"]
    assert found[0].verdict == "raises the learned reward and keeps held-out reward above the base model's"
    markdown = render_section("defences", tmp_path)
    assert "Final held-out reward (`eval_held_out_reward_mean` at each trial's last evaluation) (a reward no entry" in (
        markdown
    )
    assert "Highest final held-out reward: VADER: vader @ LoRA 0.5 (0.45)" in markdown
    assert "| base aligner | entry | final held-out reward | held-out reward gain over the base |" in markdown


def test_defences_are_skipped_without_a_truth_to_rank_them_by(tmp_path):
    write_defences_study(tmp_path, truth=None)
    markdown = render_section("defences", tmp_path)
    assert (
        "Skipped: no finished trial logged `eval_gold_mean` (the toy world's gold) or `eval_held_out_reward_mean`"
        in (markdown)
    )


def test_defences_are_skipped_without_the_reference_learned_reward(tmp_path):
    write_defences_study(tmp_path, reference=False)
    markdown = render_section("defences", tmp_path)
    assert "Skipped: no finished trial logged `eval_reference_reward_mean`." in markdown
    assert not (tmp_path / "report" / "defences.png").exists()


def test_a_bootstrap_interval_of_rounding_noise_has_no_spread_and_a_one_sided_one_keeps_its_bounds():
    assert interval_text(0.3, 0.3 - 1e-17, 0.3 + 2e-17) == "0.3 (no spread)"
    assert interval_text(0.5, 0.5, 0.9) == "0.50 [0.50, 0.90]"  # the mean on one bound: the width sets the digits


def test_a_variant_names_its_series_without_the_settings_its_entry_fixes():
    trials = pd.DataFrame(
        {
            "run_id": list("abcdef"),
            "method": ["vader"] * 5 + ["dpo"],
            "variant": [None, None, "vader-kl", "vader-kl", "vader-kl", None],
            "reward": ["toy_aesthetic"] * 2 + ["1*ensemble(of=toy_aesthetic)"] * 3 + ["toy_aesthetic"],
            "kl_coef": [0.0, 0.0, 1e-6, 1e-6, 1e-5, 0.0],
            "seed": [0, 1, 0, 1, 0, 0],
        }
    )
    assert list(select.series_labels(trials)) == [
        "VADER",
        "VADER",
        "VADER (variant=vader-kl, kl_coef=1e-06)",  # the entry's reward goes without saying; its swept kl_coef not
        "VADER (variant=vader-kl, kl_coef=1e-06)",
        "VADER (variant=vader-kl, kl_coef=1e-05)",
        "DPO",
    ]


def test_a_memory_switch_that_differs_only_between_methods_is_no_memory_ablation():
    trials = pd.DataFrame(
        {"run_id": ["a", "b"], "method": ["vader", "dpo"], "micro_batch_size": [4, 8], "seed": [0, 0]}
    )
    metrics = pd.DataFrame({"run_id": ["a", "b"], "metric": "peak_memory_mb", "step": 1, "value": [1.0, 2.0]})
    with pytest.raises(MissingRuns, match="varies among a method's trials"):
        tables.memory(trials, metrics)
    within = pd.concat([trials, trials.assign(run_id=["c", "d"], micro_batch_size=[2, 8])], ignore_index=True)
    both = pd.concat([metrics, metrics.assign(run_id=["c", "d"])], ignore_index=True)
    assert set(tables.memory(within, both)["micro_batch_size"]) == {"2", "4", "8"}


def test_the_findings_compare_each_method_by_its_own_entry_never_pooling_its_variants(tmp_path):
    write_defences_study(tmp_path)
    _, finished = finished_trials(tmp_path)
    compared, left_out = compared_series(finished)
    assert set(compared["method"]) == {"vader", "dpo"} and len(compared) == 2 * len(SEEDS)
    assert compared[param_column(compared, "variant")].isna().all()
    assert left_out == ["dpo-kl", "vader-kl", "vader-worst-case"]
    # a method with several settings and no entry of its own to stand for it: no findings rather than a pooled mean
    variants_only = finished[finished["method"] == "vader"]
    variants_only = variants_only[variants_only[param_column(finished, "variant")].notna()]
    with pytest.raises(MissingRuns, match=r"VADER has 2 settings at 16 px \(VADER \(variant=vader-kl\); VADER"):
        compared_series(variants_only)


def test_the_resolution_gap_is_method_against_method_by_their_own_entries_beside_variants(tmp_path):
    client, experiment, parent = write_efficiency_study(tmp_path)
    for seed in SEEDS:  # a variant of VADER's beside its own entry: in the reward table, not in the gaps
        params = {"method": "vader", "variant": "vader-kl", "resolution": 16, "K": 1, "lr": 1e-3, "seed": seed}
        add_trial(client, experiment, parent, {**params, "model": "toy"}, efficiency_curves("vader", 16, seed, 0.9))
    markdown = render_section("resolution_gap", tmp_path)
    assert "VADER (variant=vader-kl)" in markdown.split("Gap to VADER")[0]  # the reward table shows it
    gaps = markdown.split("Gap to VADER")[1].split("\n\n")[1]
    assert gaps.splitlines()[0] == "| resolution | VADER − DDPO | VADER − DPO |"
    # and VADER's own entry alone: the gaps of the same study without the variant
    write_efficiency_study(tmp_path / "plain")
    plain = render_section("resolution_gap", tmp_path / "plain").split("Gap to VADER")[1].split("\n\n")[1]
    assert gaps == plain


def test_the_tuning_table_and_the_regret_break_a_tie_as_the_stage_does_first_drawn_first(tmp_path):
    client, experiment, parent = new_store(tmp_path)
    curves = {"eval_reward_mean": {0: 0.3, 2: 0.6}, TUNING_SCORE: {0: 0.3, 2: 0.6}, "eval_gold_mean": {0: 0.3, 2: 0.4}}
    curves |= {"budget_spent": {2: 1.0}}
    for lr, started in ((1e-3, 2_000), (1e-2, 1_000)):  # 1e-2 drawn first, though after 1e-3 in key order
        params = {"method": "vader", "resolution": 16, "lr": lr, "seed": 1000, "stage": "tune"}
        run = client.create_run(experiment, start_time=started, tags={"mlflow.parentRunId": parent}).info.run_id
        metrics = [Metric(key, value, 0, step) for key, points in curves.items() for step, value in points.items()]
        client.log_batch(run, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
        client.set_terminated(run, "FINISHED")
    runs = load_runs(tmp_path)
    tuned = classify(runs.trials)
    table, _ = tables.tuning(tuned, runs.metrics, 1)
    assert table.loc[table["chosen"], "lr"].tolist() == ["0.01"]
    regret = tuning_regret(tuned, runs.metrics, 1).regrets["16"]["vader"]
    assert regret.proxy.setting == {"lr": "0.01"} and regret.truth.setting == {"lr": "0.01"}
