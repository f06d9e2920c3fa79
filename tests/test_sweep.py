"""End to end through Ray Tune + Ray Train + MLflow: the smoke study, resume after Ctrl-C, the tuning stage.

One Ray for the module (start-ups cost seconds each on 2 cores); the interrupted run joins it by address.
"""

import itertools
import signal
from pathlib import Path

import pytest
from studies import (
    INTERRUPTED,
    INTERRUPTED_STEPS,
    artifacts_of,
    one_finished_and_one_checkpointed,
    start_run,
    steps_of,
    tiny_study,
    trial_runs,
    write_study,
)

from vaderbench.cli import main
from vaderbench.experiment.load import load_experiment
from vaderbench.runner.tracking import TRIAL_TAG, default_store
from vaderbench.study import run_study

pytestmark = pytest.mark.slow
EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
PER_STEP = ("reward_mean", "reward_std", "reward_queries", "samples", "wall_time_s", "device_time_s", "peak_memory_mb")


def test_smoke_study_runs_every_trial_through_ray_into_mlflow_and_the_report(ray_address, tmp_path, capsys):
    output = tmp_path / "smoke"
    assert main(["run", str(EXPERIMENTS / "smoke.yaml"), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"mlflow ui --backend-store-uri {default_store(output)}" in out and "wall time:" in out
    client, parents, trials = trial_runs(output, "smoke")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 6 and {r.info.status for r in trials} == {"FINISHED"}
    assert sorted(r.data.params["method"] for r in trials) == ["ddpo", "ddpo", "dpo", "dpo", "vader", "vader"]
    for run in trials:
        params = run.data.params
        for key in ("method", "resolution", "lr", "seed", "model", "reward"):
            assert key in params, key
        assert ("K" in params) == (params["method"] == "vader")
        # every step's metrics, none lost and none twice, though two trials logged at once
        for metric in PER_STEP:
            assert steps_of(client, run, metric) == (
                [1, 2, 3] if metric.startswith("reward_") and "queries" not in metric else [0, 1, 2, 3]
            ), (run.info.run_name, metric)
        assert steps_of(client, run, "eval_reward_mean") == [0, 2, 3]
        own = {"vader": "grad_norm", "ddpo": "approx_kl", "dpo": "implicit_acc"}[params["method"]]
        assert steps_of(client, run, own) == [1, 2, 3]
        assert {
            "samples/start.gif",
            "samples/end.gif",
            "lora/pytorch_lora_weights.safetensors",
            "lora/adapter_config.json",
            "config/trial.json",
        } <= set(artifacts_of(client, run.info.run_id))
    # two trials did run at the same time, on the one sqlite store
    spans = sorted((r.info.start_time, r.info.end_time) for r in trials)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    report = output / "report"
    for stem in ("resolution_gap", "sample_efficiency", "compute_efficiency", "generalisation", "samples"):
        assert (report / f"{stem}.png").is_file() and (report / f"{stem}.svg").is_file(), stem
    assert "report/report.md" in artifacts_of(client, parents[0].info.run_id)
    text = (report / "report.md").read_text()  # what the smoke runs cannot show is skipped, with the reason
    assert "Skipped: no method was run with more than one K" in text and "Trials: 6 finished, 0 failed" in text
    assert "Skipped: no memory switch" in text and not (report / "memory.png").exists()


def test_resume_after_ctrl_c_finishes_only_the_unfinished_trials(ray_address, tmp_path):
    config, output = write_study(tmp_path, INTERRUPTED), tmp_path / "out"
    process = start_run(config, output, ray_address)
    # interrupted once one trial has finished and the next has written a checkpoint
    if one_finished_and_one_checkpointed(process, output, INTERRUPTED_STEPS):
        process.send_signal(signal.SIGINT)
    output_text = process.communicate(timeout=180)[0]
    assert process.returncode == 130, output_text
    assert "--resume" in output_text
    client, _, before = trial_runs(output, "interrupted")
    finished_before = {r.data.tags[TRIAL_TAG]: r.info.end_time for r in before if r.info.status == "FINISHED"}
    assert len(finished_before) == 1
    assert {r.info.status for r in before} - {"FINISHED"} <= {"KILLED"}

    assert main(["run", str(config), "--output", str(output), "--no-report", "--resume"]) == 0
    client, parents, after = trial_runs(output, "interrupted")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(after) == 2 and len({r.data.tags[TRIAL_TAG] for r in after}) == 2
    assert {r.info.status for r in after} == {"FINISHED"}
    for run in after:
        # nothing lost, nothing twice
        assert steps_of(client, run, "reward_queries") == list(range(INTERRUPTED_STEPS + 1))
        assert steps_of(client, run, "eval_reward_mean") == [0, INTERRUPTED_STEPS // 2, INTERRUPTED_STEPS]
        if run.data.tags[TRIAL_TAG] in finished_before:  # not run again
            assert run.info.end_time == finished_before[run.data.tags[TRIAL_TAG]]


TUNED = tiny_study(
    "tuned",
    {"vader": {"batch_size": 2}},
    2,
    # the fragile reward, which 3 steps at a high lr raise a lot
    reward="toy_aesthetic_clean",
    # rigged: an lr that cannot move the reward in 3 steps, and one that moves it a lot
    tune={
        "trials": 2,
        "seeds": [100],
        "space": {"vader": {"lr": {"choice": [1e-9, 0.05]}}},
        "budget": {"steps": 3},
        "early_stopping": None,
    },
)


def test_the_tuning_stage_runs_first_and_the_final_grid_uses_its_choice(ray_address, tmp_path):
    config, output = write_study(tmp_path, TUNED), tmp_path / "out"
    # as a library call: the study's flow returns where everything went
    outcome = run_study(load_experiment(config), config, output)
    assert not outcome.interrupted and outcome.failed == {} and outcome.tuning_failed == 0
    assert outcome.report == output / "report" / "report.md"
    client, (parent,), trials = trial_runs(output, "tuned")
    assert outcome.parent == parent.info.run_id and outcome.storage == output / "ray" / parent.info.run_id
    stages = sorted((r.data.params["stage"], r.data.params["lr"], r.data.params["seed"]) for r in trials)
    assert stages == [("final", "0.05", "0"), ("tune", "0.05", "100"), ("tune", "1e-09", "100")]
    assert parent.data.params["tuned.vader.r8.lr"] == "0.05"
    chosen = client.download_artifacts(parent.info.run_id, "tuning/chosen.json", str(tmp_path))
    assert "0.05" in Path(chosen).read_text()
    report = (output / "report" / "report.md").read_text()
    assert "## Tuning stage" in report and "**chosen**" in report
    # --resume after a finished run: nothing runs again, the same choice comes back
    assert main(["run", str(config), "--output", str(output), "--resume", "--no-report"]) == 0
    assert len(trial_runs(output, "tuned")[2]) == 3
