"""The trial loop without Ray: what it reports and when, its checkpoints and artifacts, exact resume."""

import dataclasses
import math
import os
import shutil

import pytest
import torch
import yaml
from contract import aligner_names
from safetensors.torch import load_file
from studies import TINY_WORLD

from vaderbench.experiment.load import load_experiment
from vaderbench.registry import ALIGNERS, MODELS
from vaderbench.runner.artifacts import LORA_WEIGHTS
from vaderbench.runner.checkpoint import CheckpointStore
from vaderbench.runner.logger import TrialLogger
from vaderbench.runner.trial import ARTIFACTS, CHECKPOINT_PATH, LOOP_TIME, REPLAY, WORKER_NODES, TrialLoop, run_trial
from vaderbench.timing import PHASES, metric_name


def grouped(name: str) -> bool:
    return "group_size" in {f.name for f in dataclasses.fields(ALIGNERS.get(name).Config)}


TINY = {
    "model": "toy",
    **TINY_WORLD,
    # two videos a step; methods that sample groups of a prompt take one group of two
    "methods": {name: {"batch_size": 2, **({"group_size": 2} if grouped(name) else {})} for name in aligner_names()},
    "budget": {"steps": 4},
    "eval": {"every": 2, "videos": 2, "sample_videos": 2},
    "checkpoint": {"every": 2},
}


def trial_of(tmp_path, method="vader", **changes):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return next(t for t in load_experiment(path)[1] if t.method == method)


class Recorder:
    """A stand-in for Ray's report: keeps every report and a copy of every checkpoint it names."""

    def __init__(self, keep_dir):
        self.reports, self.checkpoints, self.keep_dir = [], {}, keep_dir

    def __call__(self, metrics):
        self.reports.append({k: v for k, v in metrics.items() if k not in (CHECKPOINT_PATH, LOOP_TIME)})
        if CHECKPOINT_PATH in metrics and REPLAY not in metrics:
            copy = self.keep_dir / f"step{metrics['step']}"
            shutil.copytree(metrics[CHECKPOINT_PATH], copy)
            self.checkpoints[metrics["step"]] = copy


def store(tmp_path, name="store", keep=2):
    return CheckpointStore(tmp_path / name, keep=keep)


@pytest.mark.parametrize("method", aligner_names())
def test_a_trial_reports_every_step_evaluates_and_checkpoints_on_schedule(tmp_path, method):
    trial = trial_of(tmp_path, method)
    recorder = Recorder(tmp_path)
    run_trial(trial, recorder, store(tmp_path))
    steps = [r["step"] for r in recorder.reports]
    assert steps == [0, 1, 2, 3, 4]
    # step 0 is the base model: evaluated, nothing spent
    first = recorder.reports[0]
    assert first["reward_queries"] == first["samples"] == first["device_time_s"] == 0
    assert math.isfinite(first["eval_reward_mean"]) and "reward_mean" not in first
    assert [r["step"] for r in recorder.reports if "eval_reward_mean" in r] == [0, 2, 4]
    for report in recorder.reports[1:]:
        for key in (
            "reward_mean",
            "reward_std",
            "reward_queries",
            "samples",
            "wall_time_s",
            "device_time_s",
            "peak_memory_mb",
        ):
            assert key in report, (key, report)
        assert report["reward_queries"] == report["step"] * 2 and report["samples"] == report["step"] * 2
    assert recorder.reports[-1]["device_time_s"] > 0 and recorder.reports[-1]["peak_memory_mb"] > 50
    assert sorted(recorder.checkpoints) == [2, 4]
    final = recorder.checkpoints[4] / ARTIFACTS
    assert (final / "samples" / "start.gif").is_file() and (final / "samples" / "end.gif").is_file()
    assert (final / "lora" / LORA_WEIGHTS).is_file()
    assert not (recorder.checkpoints[2] / ARTIFACTS / "lora").exists()


def test_final_lora_weights_load_into_a_fresh_model_through_diffusers(tmp_path):
    trial = trial_of(tmp_path, "vader", methods={"vader": {"batch_size": 2, "lr": 1e-1}})
    recorder = Recorder(tmp_path)
    loop = TrialLoop(trial, store(tmp_path))
    loop.run(recorder)
    fresh = MODELS.get("toy")()
    fresh.denoiser.load_lora_adapter(
        str(recorder.checkpoints[4] / ARTIFACTS / "lora"), weight_name=LORA_WEIGHTS, prefix=None
    )
    model = loop.aligner.policy.model
    x, t = torch.randn(2, 3, 2, 8, 8), torch.tensor([900, 100])
    condition = model.encode_prompts(["a red square moving up on a blue background"] * 2)
    with torch.no_grad():
        trained, loaded = model.predict_noise(x, t, condition), fresh.predict_noise(x, t, condition)
        with loop.aligner.policy.reference():
            base = model.predict_noise(x, t, condition)
    assert (trained - base).abs().max() > 1e-4  # the adapters did change the model
    torch.testing.assert_close(loaded, trained)


@pytest.mark.parametrize("method", aligner_names())
def test_resuming_from_a_checkpoint_continues_exactly(tmp_path, method):
    trial = trial_of(tmp_path, method)
    whole = Recorder(tmp_path / "whole")
    (tmp_path / "whole").mkdir()
    run_trial(trial, whole, store(tmp_path, "whole-store"))
    resumed = Recorder(tmp_path / "resumed")
    (tmp_path / "resumed").mkdir()
    interrupted = store(tmp_path, "interrupted")  # the store of a run stopped after its step-2 checkpoint
    shutil.copytree(whole.checkpoints[2], interrupted.root / "checkpoint-000002")
    run_trial(trial, resumed, interrupted)
    # first the reports up to the checkpoint again (for a tracker that missed some), then the new steps
    replay, *fresh = resumed.reports
    assert replay["step"] == 2 and replay[REPLAY] == whole.reports[:3]
    assert [r["step"] for r in fresh] == [3, 4]
    timing = {"wall_time_s", "device_time_s", "peak_memory_mb", *map(metric_name, PHASES)}
    for a, b in zip(whole.reports[3:], fresh):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert resumed.reports[-1]["device_time_s"] >= whole.reports[2]["device_time_s"]  # spending carries over
    for name in ("lora.safetensors",):
        a, b = load_file(whole.checkpoints[4] / name), load_file(resumed.checkpoints[4] / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    # the start GIF written before the interruption travels on into the final artifacts
    assert (resumed.checkpoints[4] / ARTIFACTS / "samples" / "start.gif").is_file()


def test_reward_query_budget_stops_the_trial(tmp_path):
    trial = trial_of(tmp_path, budget={"steps": None, "reward_queries": 6})
    recorder = Recorder(tmp_path)
    run_trial(trial, recorder, store(tmp_path))
    assert recorder.reports[-1]["reward_queries"] == 6 and recorder.reports[-1]["step"] == 3
    assert "eval_reward_mean" in recorder.reports[-1] and 3 in recorder.checkpoints


def test_every_method_is_evaluated_on_the_same_prompts_and_noise(tmp_path):
    loops = [
        TrialLoop(dataclasses.replace(trial_of(tmp_path, m), seed=s), store(tmp_path, m))
        for m, s in (("vader", 0), ("dpo", 1))
    ]
    assert loops[0].eval_prompts == loops[1].eval_prompts and loops[0].eval_seeds == loops[1].eval_seeds
    first = [loop.evaluate()["eval_reward_mean"] for loop in loops]
    assert first[0] == first[1]  # same base model, prompts and noise: the same number


def test_every_attempt_names_its_workers_node_once_first_thing(tmp_path):
    trial = trial_of(tmp_path, budget={"steps": 2}, checkpoint={"every": 1})
    for name in ("fresh", "resumed", "plain"):
        (tmp_path / name).mkdir()
    fresh, resumed = Recorder(tmp_path / "fresh"), Recorder(tmp_path / "resumed")
    checkpoints = store(tmp_path)
    run_trial(trial, fresh, checkpoints, node="node-a")
    shutil.rmtree(checkpoints.latest())  # the next attempt restores step 1's checkpoint, on another node
    run_trial(trial, resumed, checkpoints, node="node-b")
    assert [r.get(WORKER_NODES) for r in fresh.reports] == [["node-a"], None, None]
    assert REPLAY in resumed.reports[0] and [r.get(WORKER_NODES) for r in resumed.reports] == [["node-b"], None]
    # without a node (no Ray) nothing is named
    plain = Recorder(tmp_path / "plain")
    run_trial(trial, plain, store(tmp_path, "plain"))
    assert all(WORKER_NODES not in r for r in plain.reports)


class FakeTracker:
    def __init__(self):
        self.logged, self.nodes = [], []

    def set_worker_nodes(self, run_id, nodes):
        self.nodes.append((run_id, nodes))

    def trial_run(self, parent_id, trial):
        return "run", 1  # this trial had logged steps 0 and 1 before it was interrupted

    def log_step(self, run_id, step, metrics):
        self.logged.append((step, metrics))


def test_the_logger_writes_each_step_once_replays_included(tmp_path):
    class TuneTrial:
        trial_id, config = "t0", {"trial": trial_of(tmp_path).to_dict()}

    tracker = FakeTracker()
    logger = TrialLogger(tracker, "parent")
    history = [{"step": s, "reward_queries": 2.0 * s} for s in range(4)]
    logger.on_trial_result(0, [], TuneTrial, {"step": 3, REPLAY: history, "training_iteration": 1})
    logger.on_trial_result(0, [], TuneTrial, {"step": 3, "reward_queries": 6.0, "time_total_s": 1.0})
    logger.on_trial_result(
        0, [], TuneTrial, {"step": 4, "reward_queries": 8.0, "time_total_s": 1.0, WORKER_NODES: ["a", "b"]}
    )
    assert tracker.logged == [(2, {"reward_queries": 4.0}), (3, {"reward_queries": 6.0}), (4, {"reward_queries": 8.0})]
    assert tracker.nodes == [("run", ["a", "b"])]


def test_the_phases_account_for_the_trials_wall_time(tmp_path):
    trial = trial_of(tmp_path, "ddpo")
    recorder = Recorder(tmp_path)
    run_trial(trial, recorder, store(tmp_path))
    for previous, report in zip(recorder.reports, recorder.reports[1:]):
        phases = {phase: report[metric_name(phase)] for phase in PHASES}
        assert all(report[metric_name(p)] >= previous[metric_name(p)] for p in PHASES)  # cumulative
        assert sum(phases.values()) <= report["wall_time_s"]
    last = recorder.reports[-1]
    for phase in ("sample", "reward", "loss", "backward", "optimizer", "evaluate", "log"):
        assert last[metric_name(phase)] > 0, phase
    # what the phases leave of the wall time is bookkeeping: prompt choice, statistics, gathering metrics
    other = last["wall_time_s"] - sum(last[metric_name(p)] for p in PHASES)
    assert other < 0.25 * last["wall_time_s"], (other, last)


def test_a_checkpoint_write_killed_part_way_leaves_the_previous_one_to_restore(tmp_path):
    checkpoints = store(tmp_path, keep=2)
    checkpoints.save(2, lambda folder: (folder / "state").write_text("step 2"))

    def killed(folder):
        (folder / "state").write_text("half of step 4")
        raise KeyboardInterrupt  # the process dies in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(4, killed)
    assert checkpoints.latest().name == "checkpoint-000002"
    assert (checkpoints.latest() / "state").read_text() == "step 2"
    # a write killed harder (no cleanup ran) leaves a temporary folder that no reader takes for a checkpoint
    (checkpoints.root / ".checkpoint-000006.abc.partial").mkdir()
    assert [p.name for p in checkpoints.checkpoints()] == ["checkpoint-000002"]
    checkpoints.save(6, lambda folder: (folder / "state").write_text("step 6"))
    checkpoints.save(8, lambda folder: (folder / "state").write_text("step 8"))
    assert [p.name for p in checkpoints.checkpoints()] == ["checkpoint-000006", "checkpoint-000008"]
    assert sorted(os.listdir(checkpoints.root)) == ["checkpoint-000006", "checkpoint-000008"]


def test_a_reward_that_breaks_stops_the_trial_with_the_method_step_and_value(tmp_path, monkeypatch):
    from vaderbench.runner.trial import TRIAL_ERROR

    trial = trial_of(tmp_path, "vader")
    loop = TrialLoop(trial, store(tmp_path))
    step = loop.aligner.step
    calls = []

    def breaks_at_the_third(prompts):
        metrics = step(prompts)
        calls.append(1)
        return {**metrics, "reward_mean": float("nan")} if len(calls) == 3 else metrics

    monkeypatch.setattr(loop.aligner, "step", breaks_at_the_third)
    recorder = Recorder(tmp_path)
    loop.run(recorder)  # returns: a deterministic failure is not retried
    last = recorder.reports[-1]
    assert last == {"step": 3, TRIAL_ERROR: "vader: step 3: reward_mean is nan"}
    assert [r["step"] for r in recorder.reports] == [0, 1, 2, 3]


def test_a_toy_trial_logs_the_headroom_of_toyworld_eval_its_gold_and_the_folded_tuning_score(tmp_path):
    from vaderbench.experiment.tuning import tuning_score
    from vaderbench.metrics import TUNING_SCORE
    from vaderbench.runner.trial import eval_set
    from vaderbench.toyworld.headroom import headroom

    trial = trial_of(tmp_path, reward="toy_aesthetic", video={"frames": 2, "resolution": 16}, budget={"steps": 2})
    recorder = Recorder(tmp_path)
    run_trial(trial, recorder, store(tmp_path))
    start, end = recorder.reports[0], recorder.reports[-1]
    prompts, _ = eval_set(trial)
    room = headroom("toy_aesthetic", prompts, 2, 16, trial.eval.seed)  # what `toyworld eval` reports
    assert start["eval_oracle_reward"] == pytest.approx(room["oracle"])
    assert start["eval_chance_reward"] == pytest.approx(room["chance"])
    assert start["eval_oracle_gold"] == pytest.approx(room["gold_oracle"])
    assert 0 <= end["eval_gold_mean"] <= 1 and 0 <= end["eval_fidelity"] <= 1
    for report in (start, end):
        assert report[TUNING_SCORE] == tuning_score(report["eval_reward_mean"], room["oracle"])
    # the adapters start at zero: the policy is the base model, then moves away from it
    assert start["eval_kl"] == 0 and end["eval_kl"] > 0
    # toy_aesthetic is an ensemble: its members disagree somewhat on the model's videos
    assert start["eval_reward_std_members"] > 0


def test_a_deterministic_evaluation_sampler_logs_no_kl_and_a_reward_without_members_no_spread(tmp_path):
    trial = trial_of(tmp_path, sampler={"num_steps": 3, "eta": 0.0}, methods={"vader": {"batch_size": 2}})
    metrics = TrialLoop(trial, store(tmp_path)).evaluate()
    assert "eval_kl" not in metrics and "eval_reward_std_members" not in metrics


def test_every_method_is_evaluated_with_the_file_s_sampler_whatever_it_trains_with(tmp_path):
    """A method that trains on SDE samples (noise level 0.7) of toy-flow is evaluated with the file's ODE."""

    def base_model_eval(**own):
        methods = {"vader": {"batch_size": 2, **own}}
        trial = trial_of(tmp_path, "vader", model="toy-flow", sampler={"num_steps": 3, "eta": 0.0}, methods=methods)
        return trial, TrialLoop(trial, store(tmp_path, f"store{len(own)}")).evaluate()["eval_reward_mean"]

    plain, reward = base_model_eval(eta=0.0)
    noisy, reward_noisy = base_model_eval(eta=0.7)
    assert noisy.settings["eta"] == 0.7 and noisy.eval_sampler.eta == plain.eval_sampler.eta == 0.0
    assert reward_noisy == reward  # the same untrained model and noise, sampled with the same ODE


def test_methods_with_different_batches_are_evaluated_and_stopped_at_the_same_reward_queries(tmp_path):
    # VADER samples 2 videos a step, DPO 4 (two pairs): evaluated each time the queries reach a multiple of 4,
    # both stop at 8; in steps VADER evaluates after steps 2 and 4, DPO after 1 and 2
    changes = {
        "methods": {"vader": {"batch_size": 2}, "dpo": {"batch_size": 4, "group_size": 2}},
        "budget": {"steps": 100, "reward_queries": 8},
        "eval": {"every": 1, "every_queries": 4, "videos": 2, "sample_videos": 0},
    }
    evaluated = {}
    for method in ("vader", "dpo"):
        trial = trial_of(tmp_path, method, **changes)
        (tmp_path / method).mkdir()
        recorder = Recorder(tmp_path / method)
        run_trial(trial, recorder, store(tmp_path, f"{method}-store"))
        evaluated[method] = [(r["step"], r["reward_queries"]) for r in recorder.reports if "eval_reward_mean" in r]
    assert evaluated["vader"] == [(0, 0), (2, 4), (4, 8)]
    assert evaluated["dpo"] == [(0, 0), (1, 4), (2, 8)]


def test_reference_and_held_out_rewards_score_every_evaluation_whatever_the_trial_trains_on(tmp_path):
    # VADER trained on the ensemble's worst member, evaluated also by the plain ensemble (the study's axis)
    changes = {
        "reward": {"ensemble": {"of": "toy_aesthetic", "aggregate": "min"}},
        "budget": {"steps": 2},
        "eval": {
            "every": 2,
            "videos": 2,
            "sample_videos": 0,
            "reference_reward": "toy_aesthetic",
            "held_out_reward": "colourfulness",
        },
    }
    recorder = Recorder(tmp_path)
    run_trial(trial_of(tmp_path, "vader", **changes), recorder, store(tmp_path))
    evaluations = [r for r in recorder.reports if "eval_reward_mean" in r]
    assert len(evaluations) == 2
    for report in evaluations:
        # the worst member is below the members' mean on every video, so below it on average
        assert report["eval_reward_mean"] < report["eval_reference_reward_mean"]
        assert 0 < report["eval_held_out_reward_mean"] < 1  # a mean saturation
        assert report["eval_held_out_reward_mean"] not in (
            report["eval_reward_mean"],
            report["eval_reference_reward_mean"],
        )
    # a trial that trains on the reference (and held-out) reward itself logs the same number again
    plain = {**changes, "reward": "toy_aesthetic"}
    plain["eval"] = {**changes["eval"], "held_out_reward": "toy_aesthetic"}
    (tmp_path / "plain").mkdir()
    again = Recorder(tmp_path / "plain")
    run_trial(trial_of(tmp_path, "vader", **plain), again, store(tmp_path, "plain-store"))
    first = again.reports[0]
    assert first["eval_reference_reward_mean"] == first["eval_held_out_reward_mean"] == first["eval_reward_mean"]
