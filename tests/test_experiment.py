"""Experiment files: the shipped ones validate; mistakes are reported before anything starts, with the
file, the key path and what was expected (exit code 2, no traceback); the grid expands as documented."""

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import yaml

from vaderbench.cli import main
from vaderbench.experiment.grid import Trial
from vaderbench.experiment.load import load_experiment
from vaderbench.experiment.schema import (
    Budget,
    Checkpointing,
    Evaluation,
    ExperimentError,
    PolicySwitches,
    Prompts,
    Sampler,
    Stopping,
)
from vaderbench.registry import ALIGNERS

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
BASE = {
    "video": {"frames": 4, "resolution": 16},
    "sampler": {"num_steps": 4},
    "methods": {"vader": {"batch_size": 2}, "ddpo": {"batch_size": 2}, "dpo": {"batch_size": 2}},
    "budget": {"steps": 2},
}


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_file_validates(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name, model, methods, sizes",
    [
        ("efficiency.yaml", "toy", {"vader", "ddpo", "dpo"}, 2),
        ("efficiency_full.yaml", "toy", {"vader", "ddpo", "dpo"}, 3),
        ("efficiency_flow.yaml", "toy-flow", {"vader", "grpo", "dpo", "nft"}, 2),
    ],
)
def test_efficiency_studies_are_fair_to_every_method(name, model, methods, sizes):
    study = load_experiment(EXPERIMENTS / name)
    trials = study[1]
    assert {t.aligner for t in trials} == methods and {t.model for t in trials} == {model}
    sides = sorted({t.height for t in trials})
    assert len(sides) >= sizes and sides[-1] >= 2 ** (sizes - 1) * sides[0]
    assert len({t.seed for t in trials}) >= 3  # the power the report's intervals need
    # one budget in reward queries, each method at its own batch, evaluated at the same query counts
    assert len({t.budget.reward_queries for t in trials}) == 1 and None not in {t.budget.reward_queries for t in trials}
    assert len({t.batch_size for t in trials}) > 1
    assert len({t.eval.every_queries for t in trials}) == 1 and trials[0].eval.every_queries is not None
    # every method is evaluated on the same prompts and noise, with the same sampler
    assert len({(t.eval.seed, t.eval.videos, t.prompts.eval) for t in trials}) == 1
    assert len({tuple(sorted(t.eval_sampler.model_dump().items())) for t in trials}) == 1
    # each method tuned at each resolution, on two seeds the final grid does not use, at the final budget
    assert {(t.method, t.height) for t in study.tuning} == {(t.method, t.height) for t in trials}
    assert len({t.seed for t in study.tuning}) >= 2 and not {t.seed for t in study.tuning} & {t.seed for t in trials}
    assert {t.budget.reward_queries for t in study.tuning} == {t.budget.reward_queries for t in trials}


@pytest.mark.parametrize(
    "change, key, expected",
    [
        ({"budgett": {"steps": 3}}, "budgett", "unknown key"),
        ({"budget": {"steps": "ten"}}, "budget.steps", "valid integer"),
        ({"video": {"frames": 4, "resolution": 16, "fps": 3}}, "video.fps", "expected one of: frames, resolution"),
        (
            {"methods": {"vaderr": {}}},
            "methods.vaderr",
            "unknown method 'vaderr'; known: " + ", ".join(ALIGNERS.names()),
        ),
        ({"reward": "toy_clipp"}, "reward", "unknown reward 'toy_clipp'"),
        ({"reward": {"toy_clip": 1.0, "nope": 0.5}}, "reward.nope", "unknown reward 'nope'"),
        (
            {"reward": {"ensemble": {"of": "toy_aesthetic", "aggregate": "max"}}},
            "reward.ensemble.aggregate",
            "unknown aggregate 'max'; expected one of mean, min, mean_minus_var, mean_minus_std",
        ),
        ({"reward": {"ensemble": {"of": "toy_clip"}}}, "reward.ensemble.of", "reward 'toy_clip' has no members"),
        ({"reward": {"ensemble": {"of": ["toy_clip", "nope"]}}}, "reward.ensemble.of[1]", "unknown reward 'nope'"),
        ({"reward": {"ensemble": {"of": "toy_aesthetic", "penalty": -1}}}, "reward.ensemble.penalty", ">= 0"),
        ({"eval": {"lora_scales": [1.0, -0.5]}}, "eval.lora_scales[1]", "greater than or equal to 0"),
        ({"eval": {"lora_scales": [0.5, 0.0]}}, "eval.lora_scales", "includes 1.0"),
        ({"model": "modelscopee"}, "model", "unknown base model 'modelscopee'"),
        ({"model": {"name": "toy", "weights": "x"}}, "model.name", "bad options for base model 'toy'"),
        ({"prompts": {"train": "no-such-set"}}, "prompts.train", "neither a registered prompt set"),
        ({"sweep": {"K": [2, 20]}}, "methods.vader", "truncation k must be between 0 and num_steps=4, got k=20"),
        ({"sweep": {"resolution": [16, 12]}}, "sweep.resolution", "multiples of 8, got 12x12"),
        ({"video": {"resolution": "16x20"}}, "video.resolution", "multiples of 8, got 16x20"),
        ({"sweep": {"methods.ddpo.eta": [0.0]}}, "methods.ddpo", "eta must be > 0 for ddpo"),
        ({"sweep": {"policy.precison": ["bf16"]}}, "sweep.policy.precison", "unknown sweep key"),
        ({"sweep": {"method": ["vader", "sft"]}}, "sweep.method", "'sft' is not an entry of `methods`"),
        ({"methods": {"vader": {"lr": -1}}}, "methods.vader", "lr must be positive"),
        (
            {"methods": {"vader": {"batch_size": 3}}, "resources": {"workers": 2}},
            "methods.vader.batch_size",
            "must split into whole prompt groups",
        ),
        ({"sampler": {"num_steps": 4, "eta": 7.0}}, "sampler.eta", "less than or equal to 1"),
        ({"methods": {"ddpo": {"batch_size": 2, "eta": 7.0}}}, "methods.ddpo", "eta must be between 0"),
        ({"video": {"frames": 4, "resolution": 2.5}}, "video.resolution", "valid integer"),
        # a variant named like one of pydantic's union labels is still part of the key
        ({"methods": {"str": 3}}, "methods.str", "valid dictionary"),
        ({"video": {"frames": 4, "resolution": 1000000}}, "video.resolution", "estimated peak memory"),
        ({"sweep": {"resolution": [16, 1000000]}}, "sweep.resolution", "estimated peak memory"),
    ],
)
def test_a_mistake_names_the_file_the_key_and_what_was_expected(tmp_path, capsys, change, key, expected):
    path = write(tmp_path, {**BASE, **change})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {key}: " in err, err
    assert expected in err, err
    assert "Traceback" not in err
    # `run` checks the same before starting anything
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_broken_yaml_and_missing_file_are_clear_errors(tmp_path, capsys):
    path = write(tmp_path, "budget: {steps: 3\nmethods: [")
    assert main(["validate", str(path)]) == 2
    assert f"{path}: not valid YAML: line" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err


def test_dry_run_prints_the_grid_and_starts_nothing(tmp_path, capsys):
    path = write(tmp_path, {**BASE, "sweep": {"resolution": [8, 16], "seed": [0, 1]}})
    assert main(["run", str(path), "--dry-run", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "12 trial(s)" in out and "vader_r16_s1_" in out
    assert not (tmp_path / "out").exists()


def test_sweep_keys_split_only_the_methods_they_apply_to(tmp_path):
    data = {
        **BASE,
        "methods": {**BASE["methods"], "ddpo-on-policy": {"aligner": "ddpo", "batch_size": 2, "inner_epochs": 1}},
        "sweep": {"K": [1, 3], "lr": [1e-3, 1e-4], "methods.ddpo.inner_epochs": [1, 2], "seed": [0, 1]},
    }
    trials = load_experiment(write(tmp_path, data))[1]
    by_method = {m: [t for t in trials if t.method == m] for m in data["methods"]}
    assert len(by_method["vader"]) == 2 * 2 * 2  # K x lr x seed
    assert len(by_method["ddpo"]) == 2 * 2 * 2  # inner_epochs x lr x seed
    assert len(by_method["dpo"]) == 2 * 2  # lr x seed: no K, no ddpo setting
    assert len(by_method["ddpo-on-policy"]) == 2 * 2
    assert {t.settings["truncation"]["k"] for t in by_method["vader"]} == {1, 3}
    assert {t.params()["K"] for t in by_method["vader"]} == {"1", "3"}
    assert "K" not in by_method["dpo"][0].params()
    variant = by_method["ddpo-on-policy"][0]
    assert variant.aligner == "ddpo" and variant.params()["variant"] == "ddpo-on-policy"
    assert variant.params()["method"] == "ddpo"
    # the shared sampler is folded into every method's settings; a trial's id is stable
    assert all(t.settings["num_steps"] == 4 for t in trials)
    assert [t.id for t in trials] == [t.id for t in load_experiment(write(tmp_path, data))[1]]
    assert len({t.id for t in trials}) == len(trials)


def test_load_experiment_raises_experiment_error(tmp_path):
    with pytest.raises(ExperimentError, match="budget: set at least one of steps"):
        load_experiment(write(tmp_path, {**BASE, "budget": {"steps": None}}))


def test_editing_a_setting_changes_the_ids_of_the_trials_it_changes(tmp_path):
    before = {t.method: t.id for t in load_experiment(write(tmp_path, BASE))[1]}
    edited = {**BASE, "methods": {**BASE["methods"], "ddpo": {"batch_size": 2, "lr": 1e-5}}}
    after = {t.method: t.id for t in load_experiment(write(tmp_path, edited))[1]}
    assert after["vader"] == before["vader"] and after["dpo"] == before["dpo"]
    assert after["ddpo"] != before["ddpo"]


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("name: a\nseed: 1\nname: b\n", "name", "duplicate key on lines 1 and 3"),
        (
            "methods:\n  vader:\n    lr: 0.1\n    batch_size: 2\n    lr: 0.2\n",
            "methods.vader.lr",
            "duplicate key on lines 3 and 5",
        ),
        ("sweep:\n  seed: [0]\nsweep:\n  seed: [1]\n", "sweep", "duplicate key on lines 1 and 3"),
    ],
)
def test_a_duplicate_key_is_refused_with_both_lines(tmp_path, capsys, text, key, expected):
    path = write(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {key}: {expected}" in err and "Traceback" not in err, err


def test_an_empty_file_is_refused_not_run_with_every_default(tmp_path, capsys):
    for text in ("", "# a comment, no settings\n"):
        path = write(tmp_path, text)
        assert main(["run", str(path), "--dry-run"]) == 2
        assert f"{path}: the file is empty" in capsys.readouterr().err


def test_a_file_that_is_not_utf8_is_refused_by_its_name(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not UTF-8 text: byte 0xe9 on line 1" in err and "Traceback" not in err, err


def test_run_force_goes_past_the_memory_check_only(tmp_path, capsys):
    path = write(tmp_path, {**BASE, "video": {"frames": 4, "resolution": 1000000}})
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "vaderbench run --force" in capsys.readouterr().err
    assert main(["run", str(path), "--dry-run", "--force"]) == 0
    assert "nothing started" in capsys.readouterr().out
    broken = write(tmp_path, {**BASE, "video": {"frames": 4, "resolution": 1000000}, "budgett": 1}, "broken.yaml")
    assert main(["run", str(broken), "--dry-run", "--force"]) == 2


def test_the_evaluations_cost_is_printed_and_an_evaluation_too_long_is_refused_unless_forced(tmp_path, capsys):
    from vaderbench.experiment.cost import check_evaluation_time, evaluation_seconds

    assert main(["validate", str(write(tmp_path, BASE))]) == 0
    # 2 steps: an evaluation before the first and one after the last (eval.every 10), for each of 3 trials
    out = capsys.readouterr().out
    assert "evaluation: 8 video(s) per evaluation, 6 evaluation(s) of 3 trial(s), 48 videos in all; about " in out
    long = {
        **BASE,
        "methods": {"vader": {"batch_size": 2}},
        "video": {"frames": 16, "resolution": 64},
        "sampler": {"num_steps": 200},
        "eval": {"videos": 64},
    }
    path = write(tmp_path, long, "long.yaml")
    (trial,) = load_experiment(path, force=True).trials
    with pytest.raises(ExperimentError, match=r"eval\.videos: trial .*: one evaluation of 64 videos .* more than 10"):
        check_evaluation_time([trial], path)
    (half,) = load_experiment(write(tmp_path, {**long, "eval": {"videos": 32}}, "half.yaml"), force=True).trials
    assert evaluation_seconds(half) == pytest.approx(evaluation_seconds(trial) / 2)
    assert main(["run", str(path), "--dry-run", "--force"]) == 0


def test_each_lora_scale_is_one_more_evaluation_in_the_cost_and_tuning_reads_scale_1_only(tmp_path, capsys):
    scaled = {**BASE, "eval": {"lora_scales": [1.0, 0.5, 0.0]}}
    assert main(["validate", str(write(tmp_path, scaled))]) == 0
    # 2 evaluations of 3 trials (as above), each at 3 scales
    assert "evaluation: 8 video(s) per evaluation, 18 evaluation(s) of 3 trial(s), 144 videos in all" in (
        capsys.readouterr().out
    )
    tuned = {**scaled, "tune": {"space": {"vader": {"lr": {"loguniform": [1e-4, 1e-2]}}}, "trials": 1}}
    study = load_experiment(write(tmp_path, tuned, "tuned.yaml"))
    assert {tuple(t.eval.lora_scales) for t in study.trials} == {(1.0, 0.5, 0.0)}
    assert {tuple(t.eval.lora_scales) for t in study.tuning} == {(1.0,)}


def test_the_files_sampler_reaches_every_method_and_a_methods_own_key_wins_for_it_alone(tmp_path):
    data = {
        **BASE,
        "sampler": {"num_steps": 4, "eta": 0.5, "guidance_scale": 2.0},
        "methods": {"vader": {"batch_size": 2}, "ddpo": {"batch_size": 2, "num_steps": 6}, "dpo": {"batch_size": 2}},
    }
    trials = {t.method: t for t in load_experiment(write(tmp_path, data))[1]}
    # the file's sampler, not the aligners' documented defaults (DDPO: 50 steps, guidance 5)
    for method in ("vader", "dpo"):
        assert (trials[method].settings["num_steps"], trials[method].settings["eta"]) == (4, 0.5)
        assert trials[method].settings["guidance_scale"] == 2.0
    assert trials["ddpo"].settings["num_steps"] == 6
    assert (trials["ddpo"].settings["eta"], trials["ddpo"].settings["guidance_scale"]) == (0.5, 2.0)
    assert trials["ddpo"].params()["num_steps"] == "6" and trials["vader"].params()["num_steps"] == "4"


def test_the_experiment_modules_depend_in_one_direction():
    import ast

    import vaderbench.experiment as package

    # every import between the package's modules, function-level ones included, must leave no cycle
    folder = Path(package.__file__).parent
    imports = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imports[path.stem] = {m.rsplit(".", 1)[-1] for m in modules if m.startswith("vaderbench.experiment.")}

    def reaches(start, target, seen=()):
        return any(m == target or (m not in seen and reaches(m, target, (*seen, m))) for m in imports.get(start, ()))

    assert imports["schema"] == set()
    for module in imports:
        assert not reaches(module, module), f"{module} imports itself through {sorted(imports[module])}"


def test_on_a_cluster_one_worker_must_fit_the_largest_node_on_one_machine_all_of_them(tmp_path):
    from vaderbench.experiment.memory import check_memory, estimate_trial_memory

    path = write(tmp_path, {**BASE, "methods": {"vader": {"batch_size": 2}}, "resources": {"workers": 2}})
    trials = load_experiment(path).trials
    one = max(estimate_trial_memory(t).total for t in trials)
    check_memory(trials, int(one * 1.01), path, "the cluster's largest node", spread=True)  # one per node fits
    with pytest.raises(ExperimentError, match=r"\) x 2 workers, more than"):
        check_memory(trials, int(one * 1.01), path)  # both on this machine do not
    with pytest.raises(ExperimentError, match="of the cluster's largest node"):
        check_memory(trials, int(one * 0.5), path, "the cluster's largest node", spread=True)


def test_a_method_entry_may_bring_its_own_reward_beside_the_file_s(tmp_path):
    # a defence compared in one study: VADER on the plain ensemble and on its worst member
    conservative = {"ensemble": {"of": "toy_aesthetic", "aggregate": "min"}}
    methods = {"vader": {"batch_size": 2}, "vader_min": {"aligner": "vader", "batch_size": 2, "reward": conservative}}
    path = write(tmp_path, {**BASE, "reward": "toy_aesthetic", "methods": methods})
    trials = {t.method: t for t in load_experiment(path).trials}
    assert trials["vader"].reward == "toy_aesthetic" and trials["vader_min"].reward == conservative
    assert "reward" not in trials["vader_min"].settings  # not an aligner setting
    ensemble = "vaderbench.rewards.ensemble"
    assert ensemble in trials["vader_min"].modules and ensemble not in trials["vader"].modules
    wrong = {
        **methods,
        "vader_min": {**methods["vader_min"], "reward": {"ensemble": {"of": "toy_aesthetic", "aggregate": "max"}}},
    }
    with pytest.raises(ExperimentError, match=r"methods\.vader_min\.reward\.ensemble\.aggregate: unknown aggregate"):
        load_experiment(write(tmp_path, {**BASE, "reward": "toy_aesthetic", "methods": wrong}))
    unknown = {**methods, "vader_min": {**methods["vader_min"], "reward": "toy_aesthetc"}}
    with pytest.raises(ExperimentError, match=r"methods\.vader_min\.reward: unknown reward 'toy_aesthetc'"):
        load_experiment(write(tmp_path, {**BASE, "methods": unknown}))


def test_yaml_1_1_booleans_stay_words_so_a_stopping_rule_reads_as_written(tmp_path):
    text = yaml.safe_dump({**BASE, "reward": "toy_aesthetic"}) + "stopping: {on: member_spread, patience: 2}\n"
    path = tmp_path / "stop.yaml"
    path.write_text(text)
    experiment = load_experiment(path).experiment
    assert experiment.stopping.on == "member_spread" and experiment.stopping.patience == 2
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text(yaml.safe_dump(BASE) + "policy: {precision: no, gradient_checkpointing: true}\n")
    policy = load_experiment(unquoted).experiment.policy
    assert policy.precision == "no" and policy.gradient_checkpointing is True


def typed_study(tmp_path):
    """A grid with a stopping rule, and a tuning stage: every section a trial has, set."""
    tune = {"trials": 2, "seeds": [7], "space": {"vader": {"lr": {"loguniform": [1e-4, 1e-1]}}}}
    data = {**BASE, "reward": "toy_aesthetic", "stopping": {"on": "member_spread"}, "tune": tune}
    return load_experiment(write(tmp_path, data))


def test_a_trials_sections_are_the_schemas_models(tmp_path):
    study = typed_study(tmp_path)
    for trial in [*study.trials, *study.tuning]:
        assert isinstance(trial.prompts, Prompts) and isinstance(trial.policy, PolicySwitches)
        assert isinstance(trial.budget, Budget) and isinstance(trial.eval, Evaluation)
        assert isinstance(trial.eval_sampler, Sampler) and isinstance(trial.checkpoint, Checkpointing)
        assert isinstance(trial.stopping, Stopping) and trial.stopping.rise == 1.5
        assert isinstance(trial.settings, dict)  # each aligner's own Config checks it
    assert {t.eval.split for t in study.tuning} == {"validation"} and {t.eval.split for t in study.trials} == {"test"}
    assert load_experiment(write(tmp_path, BASE, "plain.yaml")).trials[0].stopping is None


def test_a_trial_survives_its_dict_json_and_pickle_as_an_equal_trial(tmp_path):
    study = typed_study(tmp_path)
    for trial in [*study.trials, *study.tuning]:
        values = trial.to_dict()
        for section in ("prompts", "policy", "budget", "eval", "eval_sampler", "checkpoint", "stopping"):
            assert type(values[section]) is dict  # Ray's config and the id's digest: plain data
        assert Trial.from_dict(values) == trial and Trial.from_dict(values).to_dict() == values
        assert Trial.from_dict(json.loads(json.dumps(values))) == trial  # config/trial.json; modules a list there
        assert pickle.loads(pickle.dumps(trial)) == trial  # Ray ships trials and their dicts to workers
        assert Trial.from_dict(pickle.loads(pickle.dumps(values))) == trial


def test_an_unknown_key_in_a_trials_section_is_refused_by_name(tmp_path):
    trial = load_experiment(write(tmp_path, BASE)).trials[0]
    values = trial.to_dict()
    with pytest.raises(ValueError, match=r"trial section eval\.vidoes: unknown key; expected one of: every, "):
        Trial.from_dict({**values, "eval": {**values["eval"], "vidoes": 4}})
    with pytest.raises(ValueError, match=r"trial section budget\.steps: .*\(got 'many'\)"):
        Trial.from_dict({**values, "budget": {**values["budget"], "steps": "many"}})
    with pytest.raises(ValueError, match=r"trial section stopping\.on: Field required"):
        Trial.from_dict({**values, "stopping": {"patience": 2}})
    with pytest.raises(TypeError, match="trial section checkpoint: expected a Checkpointing or a mapping"):
        Trial.from_dict({**values, "checkpoint": Budget()})
    # a section replaced by a mapping is validated the same way (the tuning stage's evaluation is)
    with pytest.raises(ValueError, match=r"trial section eval\.splt: unknown key"):
        dataclasses.replace(trial, eval={**values["eval"], "splt": "validation"})
    assert dataclasses.replace(trial, eval={**values["eval"], "split": "validation"}).eval.split == "validation"


def test_a_method_entry_may_bring_its_own_stopping_rule_or_none(tmp_path):
    methods = {
        "vader": {"batch_size": 2},
        "vader-stopped": {"aligner": "vader", "batch_size": 2, "stopping": {"on": "member_spread", "rise": 1.25}},
        "vader-unstopped": {"aligner": "vader", "batch_size": 2, "stopping": None},
    }
    study = {**BASE, "reward": "toy_aesthetic", "methods": methods, "stopping": {"on": "member_spread"}}
    trials = {t.method: t for t in load_experiment(write(tmp_path, study)).trials}
    assert (trials["vader"].stopping.on, trials["vader"].stopping.rise) == ("member_spread", 1.5)  # the file's
    assert trials["vader-stopped"].stopping.rise == 1.25
    assert trials["vader-unstopped"].stopping is None
    assert not any("stopping" in t.settings for t in trials.values())  # not an aligner setting
    wrong = {**methods, "vader-stopped": {**methods["vader-stopped"], "stopping": {"on": "eval_gold_mean", "rise": 2}}}
    with pytest.raises(ExperimentError, match=r"methods\.vader-stopped\.stopping: .*rise applies to on: member_spread"):
        load_experiment(write(tmp_path, {**study, "methods": wrong}))
    typo = {
        **methods,
        "vader-stopped": {**methods["vader-stopped"], "stopping": {"on": "member_spread", "pateince": 2}},
    }
    with pytest.raises(ExperimentError, match=r"methods\.vader-stopped\.stopping\.pateince"):
        load_experiment(write(tmp_path, {**study, "methods": typo}))
