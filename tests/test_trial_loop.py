"""The trial loop without Ray: what it reports and when, its checkpoints and artifacts, exact resume."""

import dataclasses
import math
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from vaderbench.experiment.load import load_experiment
from vaderbench.registry import MODELS
from vaderbench.runner.artifacts import LORA_WEIGHTS
from vaderbench.runner.logger import TrialLogger
from vaderbench.runner.trial import ARTIFACTS, REPLAY, TrialLoop, run_trial

TINY = {
    "model": "toy",
    "video": {"frames": 2, "resolution": 8},
    "sampler": {"num_steps": 3},
    "methods": {"vader": {"batch_size": 2, "lr": 1e-3}, "ddpo": {"batch_size": 2}, "dpo": {"batch_size": 2}},
    "budget": {"steps": 4},
    "eval": {"every": 2, "videos": 2, "sample_videos": 2},
    "checkpoint": {"every": 2},
}


def trial_of(tmp_path, method="vader", **changes):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return next(t for t in load_experiment(path)[1] if t.method == method)


class Recorder:
    """A stand-in for Ray's report: keeps every report and a copy of every checkpoint folder."""

    def __init__(self, keep_dir):
        self.reports, self.checkpoints, self.keep_dir = [], {}, keep_dir

    def __call__(self, metrics, checkpoint):
        self.reports.append(dict(metrics))
        if checkpoint is not None:
            copy = self.keep_dir / f"step{metrics['step']}"
            shutil.copytree(checkpoint, copy)
            self.checkpoints[metrics["step"]] = copy


@pytest.mark.parametrize("method", ["vader", "ddpo", "dpo"])
def test_a_trial_reports_every_step_evaluates_and_checkpoints_on_schedule(tmp_path, method):
    trial = trial_of(tmp_path, method)
    recorder = Recorder(tmp_path)
    run_trial(trial, recorder)
    steps = [r["step"] for r in recorder.reports]
    assert steps == [0, 1, 2, 3, 4]
    # step 0 is the base model: evaluated, nothing spent
    first = recorder.reports[0]
    assert first["reward_queries"] == first["samples"] == first["device_time_s"] == 0
    assert math.isfinite(first["eval_reward_mean"]) and "reward_mean" not in first
    assert [r["step"] for r in recorder.reports if "eval_reward_mean" in r] == [0, 2, 4]
    for report in recorder.reports[1:]:
        for key in ("reward_mean", "reward_std", "reward_queries", "samples", "wall_time_s", "device_time_s",
                    "peak_memory_mb"):
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
    loop = TrialLoop(trial)
    loop.run(recorder)
    fresh = MODELS.get("toy")()
    fresh.denoiser.load_lora_adapter(str(recorder.checkpoints[4] / ARTIFACTS / "lora"), weight_name=LORA_WEIGHTS,
                                     prefix=None)
    model = loop.aligner.policy.model
    x, t = torch.randn(2, 3, 2, 8, 8), torch.tensor([900, 100])
    condition = model.encode_prompts(["a red square moving up on a blue background"] * 2)
    with torch.no_grad():
        trained, loaded = model.predict_noise(x, t, condition), fresh.predict_noise(x, t, condition)
        with loop.aligner.policy.reference():
            base = model.predict_noise(x, t, condition)
    assert (trained - base).abs().max() > 1e-4  # the adapters did change the model
    torch.testing.assert_close(loaded, trained)


@pytest.mark.parametrize("method", ["vader", "ddpo", "dpo"])
def test_resuming_from_a_checkpoint_continues_exactly(tmp_path, method):
    trial = trial_of(tmp_path, method)
    whole = Recorder(tmp_path / "whole")
    (tmp_path / "whole").mkdir()
    run_trial(trial, whole)
    resumed = Recorder(tmp_path / "resumed")
    (tmp_path / "resumed").mkdir()
    run_trial(trial, resumed, restore_from=whole.checkpoints[2])
    # first the reports up to the checkpoint again (for a tracker that missed some), then the new steps
    replay, *fresh = resumed.reports
    assert replay["step"] == 2 and replay[REPLAY] == whole.reports[:3]
    assert [r["step"] for r in fresh] == [3, 4]
    timing = {"wall_time_s", "device_time_s", "peak_memory_mb"}
    for a, b in zip(whole.reports[3:], fresh):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert resumed.reports[-1]["device_time_s"] >= whole.reports[2]["device_time_s"]  # spending carries over
    for name in ("lora.safetensors",):
        a, b = load_file(whole.checkpoints[4] / name), load_file(resumed.checkpoints[4] / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    # the start GIF written before the interruption travels on into the final artifacts
    assert (resumed.checkpoints[4] / ARTIFACTS / "samples" / "start.gif").is_file()


def test_reward_query_budget_stops_the_trial(tmp_path):
    trial = trial_of(tmp_path, budget={"steps": None, "reward_queries": 5})
    recorder = Recorder(tmp_path)
    run_trial(trial, recorder)
    assert recorder.reports[-1]["reward_queries"] == 6 and recorder.reports[-1]["step"] == 3
    assert "eval_reward_mean" in recorder.reports[-1] and 3 in recorder.checkpoints


def test_every_method_is_evaluated_on_the_same_prompts_and_noise(tmp_path):
    loops = [TrialLoop(dataclasses.replace(trial_of(tmp_path, m), seed=s)) for m, s in (("vader", 0), ("dpo", 1))]
    assert loops[0].eval_prompts == loops[1].eval_prompts and loops[0].eval_seeds == loops[1].eval_seeds
    first = [loop.evaluate()["eval_reward_mean"] for loop in loops]
    assert first[0] == first[1]  # same base model, prompts and noise: the same number


class FakeTracker:
    def __init__(self):
        self.logged = []

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
    logger.on_trial_result(0, [], TuneTrial, {"step": 4, "reward_queries": 8.0, "time_total_s": 1.0})
    assert tracker.logged == [(2, {"reward_queries": 4.0}), (3, {"reward_queries": 6.0}), (4, {"reward_queries": 8.0})]
