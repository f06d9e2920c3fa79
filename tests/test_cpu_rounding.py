"""analysis/cpu_rounding.py: its children run with the kernels asked for, run a trial end to end, and the
comparison computes the differences it prints."""

import argparse
import importlib.util
import math
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from studies import TINY_WORLD

from vaderbench.metrics import EVAL_GOLD_MEAN, EVAL_REWARD_MEAN
from vaderbench.provenance import cpu_flags
from vaderbench.runner.checkpoint import CheckpointStore
from vaderbench.runner.trial import run_trial

SCRIPT = Path(__file__).resolve().parent.parent / "analysis" / "cpu_rounding.py"
spec = importlib.util.spec_from_file_location("cpu_rounding", SCRIPT)
cpu_rounding = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_rounding)

STEPS = 2


@pytest.fixture(scope="module")
def tiny_trials(tmp_path_factory):
    """The ddpo trial of a tiny study and its next seed's, as the script builds them: 2 steps, evaluated every
    step, at lr 1e-3 given as the command line gives it."""
    path = tmp_path_factory.mktemp("cpu-rounding") / "tiny.yaml"
    study = {
        **TINY_WORLD,
        "name": "tiny",
        "methods": {"ddpo": {"batch_size": 2}},
        "budget": {"steps": 40},
        "eval": {"every": 10, "videos": 2, "sample_videos": 0},
    }
    path.write_text(yaml.safe_dump(study))
    args = argparse.Namespace(
        experiment=path,
        method="ddpo",
        resolution=None,
        seed=None,
        set=[cpu_rounding.key_value("lr=1e-3")],
        evaluations=2,
        eval_every=1,
        steps=None,
    )
    return cpu_rounding.chosen_trials(args)


def test_the_trial_is_the_grid_trial_with_the_overrides_and_the_cut_budget(tiny_trials):
    trial, next_seed, threads = tiny_trials
    assert (trial.method, trial.resolution, trial.settings["lr"]) == ("ddpo", "8", 1e-3)
    assert (trial.budget.steps, trial.eval.every) == (STEPS, 1)
    assert next_seed.seed == trial.seed + 1 and next_seed.settings == trial.settings
    assert threads == 1


def test_a_child_limited_to_avx2_reports_the_avx2_capability(tiny_trials):
    result = cpu_rounding.run_variant(tiny_trials[0], "avx2")
    assert sorted(result["evaluations"]) == list(range(STEPS + 1))
    if "avx2" not in cpu_flags():
        pytest.skip("this CPU has no AVX2: torch falls back to its default kernels")
    assert result["capability"] == cpu_rounding.AVX2


def test_a_child_runs_the_trial_end_to_end_and_returns_its_evaluations(tiny_trials):
    trial = tiny_trials[0]
    # a child with this process's kernels: the CPU's own, unless this process was itself limited (a suite run under
    # ATEN_CPU_CAPABILITY=avx2 and the BLAS limits, as on a CPU without AVX-512)
    capability = os.environ.get(cpu_rounding.ATEN_CAPABILITY)
    limited_blas = all(os.environ.get(key) == value for key, value in cpu_rounding.BLAS_LIMITS.items())
    result = cpu_rounding.run_variant(trial, capability, limit_blas=limited_blas)
    # the same trial run in this process (one thread, the same kernels as the child) evaluates the same
    reports = []
    with tempfile.TemporaryDirectory() as checkpoints:
        run_trial(trial, reports.append, CheckpointStore(Path(checkpoints)))
    expected = {r["step"]: {k: r[k] for k in (EVAL_REWARD_MEAN, EVAL_GOLD_MEAN)} for r in reports}
    assert result["evaluations"] == expected
    assert all(math.isfinite(v) for values in expected.values() for v in values.values())


def test_the_comparison_computes_rounding_and_seed_differences_on_rigged_values():
    reward, gold = EVAL_REWARD_MEAN, EVAL_GOLD_MEAN
    native = {0: {reward: 0.30, gold: 0.20}, 10: {reward: 0.50, gold: 0.40}, 20: {reward: 0.60, gold: 0.45}}
    limited = {0: {reward: 0.31, gold: 0.20}, 10: {reward: 0.48, gold: 0.41}, 20: {reward: 0.64, gold: 0.45}}
    # the next seed's run lacks gold at step 10 and step 20 altogether: neither is compared there
    next_seed = {0: {reward: 0.30, gold: 0.20}, 10: {reward: 0.45}}
    rows = cpu_rounding.compare(native, limited, next_seed)
    found = {(r["step"], r["metric"]): (r["rounding"], r["seed"]) for r in rows}
    assert set(found) == {(0, reward), (0, gold), (10, reward)}
    assert found[(0, reward)] == pytest.approx((0.01, 0.0))
    assert found[(10, reward)] == pytest.approx((0.02, 0.05))
    row = next(r for r in rows if r["step"] == 10)
    assert (row["native"], row["avx2"], row["seed+1"]) == (0.50, 0.48, 0.45)
    # the base model's evaluation (step 0) is left out of the largest differences
    assert cpu_rounding.largest(rows) == {reward: pytest.approx({"rounding": 0.02, "seed": 0.05})}


def test_the_native_kernels_already_being_avx2_is_said():
    same = cpu_rounding.notes({"native": "AVX2", "avx2": "AVX2", "seed+1": "AVX2"})
    assert len(same) == 1 and "already are AVX2" in same[0]
    assert cpu_rounding.notes({"native": "AVX512", "avx2": "AVX2", "seed+1": "AVX512"}) == []


def test_a_file_that_evaluates_by_reward_queries_is_cut_in_reward_queries(tmp_path):
    path = tmp_path / "queries.yaml"
    study = {
        **TINY_WORLD,
        "name": "queries",
        "methods": {"ddpo": {"batch_size": 4, "group_size": 2}},
        "budget": {"steps": None, "reward_queries": 96},
        "eval": {"every_queries": 8, "videos": 2, "sample_videos": 0},
    }
    path.write_text(yaml.safe_dump(study))
    args = argparse.Namespace(
        experiment=path, method="ddpo", resolution=None, seed=None, set=[], evaluations=3, eval_every=None, steps=None
    )
    trial, _, _ = cpu_rounding.chosen_trials(args)
    assert trial.budget.reward_queries == 24 and trial.steps == 6
    assert [s for s in range(1, 7) if trial.evaluates_after(s)] == [2, 4, 6]
    assert cpu_rounding.schedule(trial) == "8 reward queries"


def test_a_set_value_reads_as_an_experiment_file_reads_it():
    assert cpu_rounding.key_value("policy.precision=no") == ("policy.precision", "no")  # YAML 1.2: a word
    assert cpu_rounding.key_value("lr=1e-3") == ("lr", 1e-3) and cpu_rounding.key_value("x=true") == ("x", True)
