"""The tuning stage: stratified draws, tuning trials on their own seeds and validation prompts, the choice."""

from __future__ import annotations

import math
import random

import pytest
import yaml
from studies import TINY_WORLD

from vaderbench.experiment.grid import expand
from vaderbench.experiment.load import load_experiment
from vaderbench.experiment.schema import Domain, ExperimentError
from vaderbench.experiment.tuning import (
    TUNE,
    VALIDATION,
    TuningRun,
    choose,
    draw,
    final_trials,
    neighbours,
    refined_trials,
    setting_of,
    tuning_score,
    tuning_trials,
)
from vaderbench.metrics import TUNING_SCORE
from vaderbench.runner.trial import eval_set

STUDY = {
    **TINY_WORLD,
    "methods": {"vader": {"batch_size": 2}, "dpo": {"batch_size": 2}},
    "sweep": {"method": ["vader", "dpo"], "resolution": [8, 16], "seed": [0, 1]},
    "budget": {"steps": 4},
    "eval": {"every": 2, "videos": 2},
    "tune": {
        "trials": 3,
        "seeds": [7, 8],
        "budget": {"steps": 2},
        "space": {"vader": {"lr": {"loguniform": [1e-4, 1e-1]}}},
    },
}


def study(tmp_path, **changes):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **changes}))
    return load_experiment(path).experiment, path


def test_a_loguniform_draw_has_one_value_in_each_equal_part_of_the_log_range():
    values = draw(Domain(loguniform=(1e-4, 1e-1)), 6, random.Random(0))
    parts = sorted(math.floor((math.log10(v) + 4) / 0.5) for v in values)
    assert parts == [0, 1, 2, 3, 4, 5]
    assert draw(Domain(loguniform=(1e-4, 1e-1)), 6, random.Random(0)) == values  # seeded
    assert sorted(draw(Domain(choice=["a", "b"]), 4, random.Random(0))) == ["a", "a", "b", "b"]


def test_tuning_trials_run_each_drawn_setting_on_every_tuning_seed_at_every_resolution(tmp_path):
    experiment, path = study(tmp_path)
    trials = tuning_trials(experiment, path)
    assert len(trials) == 2 * 3 * 2  # resolutions x settings x tuning seeds, VADER only
    assert {t.stage for t in trials} == {TUNE} and {t.seed for t in trials} == {7, 8}
    assert {t.budget.steps for t in trials} == {2}
    assert len({t.id for t in trials}) == len(trials) and all(t.id.startswith("tune-") for t in trials)
    lrs = {(t.resolution, t.settings["lr"]) for t in trials}
    assert len(lrs) == 6 and all(t.settings["lr"] == t.point["lr"] for t in trials)


def test_tuning_is_evaluated_on_prompts_the_final_evaluation_never_sees(tmp_path):
    experiment, path = study(tmp_path, eval={"every": 2, "videos": 4})
    tune, final = tuning_trials(experiment, path)[0], expand(experiment)[0]
    assert tune.eval.split == VALIDATION
    (tune_prompts, tune_noise), (final_prompts, final_noise) = eval_set(tune), eval_set(final)
    assert len(tune_prompts) == 4 and not set(tune_noise) & set(final_noise)
    assert not set(tune_prompts) & set(final_prompts)  # the next prompts of the same shuffle


@pytest.mark.parametrize(
    "change, key",
    [
        ({"seeds": [1]}, "tune.seeds"),
        ({"space": {"ppo": {"lr": {"uniform": [0, 1]}}}}, "tune.space.ppo"),
        ({"space": {"dpo": {"K": {"choice": [1, 2]}}}}, "tune.space.dpo.K"),
        ({"space": {"vader": {"lr": {"loguniform": [0.1, 0.01]}}}}, "tune.space.vader.lr"),
    ],
)
def test_a_bad_tuning_section_names_its_key(tmp_path, change, key):
    with pytest.raises(ExperimentError, match=key.replace(".", r"\.")):
        experiment, path = study(tmp_path, tune={**STUDY["tune"], **change})
        tuning_trials(experiment, path)


def test_the_choice_is_the_best_mean_over_seeds_of_the_settings_that_ran_to_the_budget(tmp_path):
    experiment, path = study(tmp_path)
    trials = [t for t in tuning_trials(experiment, path) if t.resolution == "8"]
    by_lr = sorted({t.settings["lr"] for t in trials})
    # rigged: the middle lr is best on average; the largest lr would be better but was stopped early
    reward = {by_lr[0]: (0.50, 0.52), by_lr[1]: (0.70, 0.62), by_lr[2]: (0.90, 0.95)}
    results = {}
    for t in trials:
        value = reward[t.settings["lr"]][t.seed - 7]
        results[t.id] = TuningRun([0.3, value], spent=t.settings["lr"] != by_lr[2])
    chosen = choose(trials, results, last=1)
    assert chosen == {("vader", "8"): {"lr": by_lr[1]}}
    with pytest.raises(ValueError, match="no setting ran to the budget"):
        choose(trials, {t.id: TuningRun([1.0], spent=False) for t in trials})


def test_a_single_seeds_spike_at_one_evaluation_does_not_win_the_choice(tmp_path):
    experiment, path = study(tmp_path)
    trials = [t for t in tuning_trials(experiment, path) if t.resolution == "8"]
    by_lr = sorted({t.settings["lr"] for t in trials})
    # rigged: the smallest lr rises steadily on both seeds; the largest is flat but one seed's last evaluation
    # spikes, which a choice on the last evaluation of one seed would take
    curves = {
        (by_lr[0], 7): [0.30, 0.40, 0.50, 0.52],
        (by_lr[0], 8): [0.30, 0.41, 0.49, 0.51],
        (by_lr[1], 7): [0.30, 0.32, 0.33, 0.34],
        (by_lr[1], 8): [0.30, 0.31, 0.33, 0.33],
        (by_lr[2], 7): [0.30, 0.35, 0.36, 0.90],
        (by_lr[2], 8): [0.30, 0.36, 0.37, 0.36],
    }
    runs = {t.id: TuningRun(curves[t.settings["lr"], t.seed], spent=True) for t in trials}
    assert choose(trials, runs, last=1) != {("vader", "8"): {"lr": by_lr[0]}}  # one evaluation: the spike can win
    assert choose(trials, runs, last=2) == {("vader", "8"): {"lr": by_lr[0]}}
    one_seed = {t.id: run for t, run in zip(trials, runs.values(), strict=True) if t.seed == 7}
    assert choose([t for t in trials if t.seed == 7], one_seed, last=1) == {("vader", "8"): {"lr": by_lr[2]}}


def test_the_refinement_runs_half_a_part_either_side_of_the_choice_on_every_tuning_seed(tmp_path):
    experiment, path = study(tmp_path, tune={**STUDY["tune"], "refine": True})
    coarse = tuning_trials(experiment, path)
    best = sorted({t.settings["lr"] for t in coarse if t.resolution == "8"})[1]
    refined = refined_trials(experiment, coarse, {("vader", "8"): {"lr": best}}, path)
    # three parts of [1e-4, 1e-1]: a part is a factor 10; half of it either side
    assert sorted({t.settings["lr"] for t in refined}) == pytest.approx([best / 10**0.5, best * 10**0.5], rel=2e-3)
    assert {t.seed for t in refined} == {7, 8} and {t.resolution for t in refined} == {"8"} and len(refined) == 4
    assert all(t.stage == TUNE and t.eval.split == VALIDATION for t in refined)
    assert not {t.id for t in refined} & {t.id for t in coarse}
    # kept inside the range, and a value already drawn is not run again
    assert neighbours(Domain(loguniform=(1e-4, 1e-1)), 1e-4, 3) == [pytest.approx(10**-3.5, rel=2e-3)]
    assert neighbours(Domain(choice=[1, 2]), 1, 3) == []
    assert refined_trials(study(tmp_path)[0], coarse, {("vader", "8"): {"lr": best}}, path) == []  # not asked for


def test_the_final_grid_runs_each_tuned_method_at_its_choice_for_its_resolution(tmp_path):
    experiment, path = study(tmp_path)
    grid = expand(experiment)
    chosen = {("vader", "8"): {"lr": 0.003}, ("vader", "16"): {"lr": 0.02}}
    final = final_trials(experiment, grid, chosen, path)
    assert len(final) == len(grid) == 8
    for trial in final:
        expected = {"8": 0.003, "16": 0.02}[trial.resolution] if trial.method == "vader" else None
        assert trial.settings.get("lr") == expected  # DPO, not tuned, keeps its own (default) setting
    assert {t.id for t in final if t.method == "dpo"} == {t.id for t in grid if t.method == "dpo"}
    assert not {t.id for t in final if t.method == "vader"} & {t.id for t in grid}  # a new setting: new ids


def test_one_tuning_resolution_serves_every_resolution(tmp_path):
    experiment, path = study(tmp_path, tune={**STUDY["tune"], "resolution": 16})
    trials = tuning_trials(experiment, path)
    assert {t.resolution for t in trials} == {"16"} and len(trials) == 6
    final = final_trials(experiment, expand(experiment), {("vader", "16"): {"lr": 0.01}}, path)
    assert {t.settings["lr"] for t in final if t.method == "vader"} == {0.01}
    assert {setting_of(t)["lr"] for t in trials} == {t.settings["lr"] for t in trials}


def test_early_stopping_compares_a_setting_only_with_the_other_settings_of_its_method(tmp_path):
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from vaderbench.experiment.schema import EarlyStopping
    from vaderbench.runner.sweep import asha

    experiment, path = study(tmp_path, tune={**STUDY["tune"], "budget": {"steps": 9}})
    trials = tuning_trials(experiment, path)
    scheduler = asha(EarlyStopping(grace=3, reduction=2), trials)

    def tune_trial(name, method):
        return SimpleNamespace(trial_id=name, config={"trial": {**trials[0].to_dict(), "method": method}})

    good, bad, ddpo = tune_trial("a", "vader"), tune_trial("b", "vader"), tune_trial("c", "dpo")
    for trial in (good, bad, ddpo):
        scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, good, {"step": 3, TUNING_SCORE: 0.9}) == TrialScheduler.CONTINUE
    # far below VADER's, but the first of its own method at this rung: it goes on
    assert scheduler.on_trial_result(None, ddpo, {"step": 3, TUNING_SCORE: 0.1}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, bad, {"step": 3, TUNING_SCORE: 0.5}) == TrialScheduler.STOP


def test_the_tuning_score_folds_the_reward_at_the_oracle_so_an_exploit_is_not_chosen(tmp_path):
    assert tuning_score(0.6, 0.7) == 0.6 and tuning_score(0.6, None) == 0.6
    assert tuning_score(0.9, 0.7) == pytest.approx(0.5)  # 0.2 past the best real video counts as 0.2 below it
    experiment, path = study(tmp_path)
    trials = [t for t in tuning_trials(experiment, path) if t.resolution == "8"]
    by_lr = sorted({t.settings["lr"] for t in trials})
    oracle = 0.7
    # rigged: the largest lr drives the reward far past the oracle (an exploit); the middle one comes closest
    reward = {by_lr[0]: 0.55, by_lr[1]: 0.68, by_lr[2]: 1.3}
    results = {t.id: TuningRun([tuning_score(reward[t.settings["lr"]], oracle)], spent=True) for t in trials}
    assert choose(trials, results) == {("vader", "8"): {"lr": by_lr[1]}}


def test_early_stopping_without_a_budget_in_steps_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(ExperimentError, match=r"tune\.early_stopping: early stopping needs a budget in steps"):
        study(tmp_path, tune={**STUDY["tune"], "budget": {"steps": None, "wall_time_s": 60}})
    study(
        tmp_path, tune={**STUDY["tune"], "budget": {"steps": None, "wall_time_s": 60}, "early_stopping": None}
    )  # accepted
    study(tmp_path, tune={**STUDY["tune"], "budget": {"steps": None, "reward_queries": 4}})  # queries bound the steps


def test_a_query_budget_bounds_each_method_s_steps_by_its_own_batch(tmp_path):
    experiment, _ = study(
        tmp_path,
        methods={"vader": {"batch_size": 2}, "dpo": {"batch_size": 4, "group_size": 2}},
        budget={"steps": 100, "reward_queries": 16},
        eval={"every": 1, "every_queries": 8, "videos": 2},
    )
    trials = {t.method: t for t in expand(experiment)}
    assert (trials["vader"].steps, trials["dpo"].steps) == (8, 4)
    for trial in trials.values():
        queries = [step * trial.batch_size for step in range(1, trial.steps + 1) if trial.evaluates_after(step)]
        assert queries == [8, 16]
    assert expand(study(tmp_path, budget={"steps": 3, "reward_queries": 100})[0])[0].steps == 3


@pytest.mark.parametrize("key", ["eval.every_queries", "budget.reward_queries"])
def test_a_query_schedule_that_a_method_s_batch_does_not_divide_is_refused(tmp_path, key):
    changes = {
        "methods": {"vader": {"batch_size": 2}, "dpo": {"batch_size": 4, "group_size": 2}},
        "budget": {"steps": 100, "reward_queries": 16},
        "eval": {"every": 1, "every_queries": 8, "videos": 2},
    }
    section, name = key.split(".")
    changes[section] = {**changes[section], name: 6}
    with pytest.raises(ExperimentError, match=rf"{key.replace('.', '[.]')}: 6 is not a multiple of dpo's batch_size=4"):
        study(tmp_path, **changes)
