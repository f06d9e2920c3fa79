"""Faults during a study, end to end through Ray and MLflow: a trial's process killed, a reward that
overflows, the `vaderbench run` driver killed or sent SIGTERM, two drivers on one output folder. Nothing is lost or
logged twice. One Ray for the module, started by this process: the trials' processes are its descendants.
"""

import os
import re
import signal
import threading
import time

import pytest
import torch
from processes import command_line, descendants
from safetensors.torch import load_file
from studies import (
    INTERRUPTED,
    INTERRUPTED_STEPS,
    checkpoint_steps,
    one_finished_and_one_checkpointed,
    start_run,
    steps_of,
    tiny_study,
    trained_in_this_process,
    trial_runs,
    write_study,
)

from vaderbench.cli import main
from vaderbench.experiment.load import load_experiment
from vaderbench.runner.tracking import ERROR_TAG, TRIAL_TAG

pytestmark = pytest.mark.slow


def trial_processes() -> list[int]:
    """This process's Tune trial processes (Ray names them after the function trainable's actor class)."""
    return [pid for pid in descendants(os.getpid()) if command_line(pid).startswith("ray::ImplicitFunc")]


KILLED = tiny_study(
    "killed",
    {"vader": {"batch_size": 2, "lr": 1e-2}},
    12,
    eval_every=6,
    sample_videos=1,
    checkpoint_every=2,
    resources={"max_failures": 1},
)


def test_a_trial_process_killed_mid_trial_restarts_from_its_checkpoint_and_ends_the_same(ray_address, tmp_path, capsys):
    config, output = write_study(tmp_path, KILLED), tmp_path / "out"
    killed = []

    def kill_after_the_second_checkpoint():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            time.sleep(0.05)
            if any(s and 4 <= s[-1] < 12 for s in checkpoint_steps(output)):
                for pid in trial_processes():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

    killer = threading.Thread(target=kill_after_the_second_checkpoint, daemon=True)
    killer.start()
    assert main(["run", str(config), "--output", str(output), "--no-report"]) == 0
    killer.join()
    assert len(killed) == 1
    err = capsys.readouterr().err
    assert "attempt 1 failed" in err  # the kill did land mid-trial, and was retried
    (restored,) = re.findall(r"continues from its step-(\d+) checkpoint", err)  # from a checkpoint, not from 0
    assert 4 <= int(restored) < 12

    client, _, (run,) = trial_runs(output, "killed")
    assert run.info.status == "FINISHED"
    assert steps_of(client, run, "reward_queries") == list(range(13))  # none missing, none twice
    assert steps_of(client, run, "eval_reward_mean") == [0, 6, 12]
    assert_the_same_as_uninterrupted(client, run, config, tmp_path)


def assert_the_same_as_uninterrupted(client, run, config, tmp_path):
    """The LoRA weights `run` logged equal those of its trial run uninterrupted, in this process as in a trial's
    process (one thread per worker)."""
    logged = load_file(
        client.download_artifacts(run.info.run_id, "lora/pytorch_lora_weights.safetensors", str(tmp_path))
    )
    (trial,) = load_experiment(config).trials
    whole, _ = trained_in_this_process(trial, tmp_path / "whole")
    assert whole.keys() == logged.keys() and all(torch.equal(whole[k], logged[k]) for k in whole)


def test_a_reward_that_overflows_fails_its_trial_and_the_others_finish(ray_address, tmp_path, capsys):
    # float32 holds up to 3.4e38: the weighted reward is infinite from the first video
    sweep = {"reward": ["toy_aesthetic", {"toy_aesthetic": 1e39}]}
    config = write_study(tmp_path, tiny_study("overflow", {"vader": {"batch_size": 2}}, 2, sweep=sweep))
    output = tmp_path / "out"
    assert main(["run", str(config), "--output", str(output)]) == 1
    captured = capsys.readouterr()
    client, (parent,), trials = trial_runs(output, "overflow")
    assert parent.info.status == "FAILED"
    by_status = {r.info.status: r for r in trials}
    assert sorted(by_status) == ["FAILED", "FINISHED"]
    failed = by_status["FAILED"]
    assert re.fullmatch(r"vader: step 1: \w+ is (-?inf|nan)", failed.data.tags[ERROR_TAG])
    assert "1e+39" in failed.data.params["reward"]
    assert f"1 trial(s) failed: {failed.data.tags[TRIAL_TAG]}: {failed.data.tags[ERROR_TAG]}" in captured.err
    assert steps_of(client, by_status["FINISHED"], "reward_queries") == [0, 1, 2]
    report = (output / "report" / "report.md").read_text()
    assert "Trials: 1 finished, 1 failed" in report
    assert failed.data.tags[ERROR_TAG] in report and failed.info.run_id in report


def test_resume_after_the_driver_is_killed_finishes_every_trial_once(ray_address, tmp_path, capsys):
    config, output = write_study(tmp_path, INTERRUPTED), tmp_path / "out"
    process = start_run(config, output, ray_address)
    # killed once one trial has finished and the next has written a checkpoint: no Ctrl-C, no clean-up
    if one_finished_and_one_checkpointed(process, output, INTERRUPTED_STEPS):
        process.kill()
    output_text = process.communicate(timeout=60)[0]
    assert process.returncode == -signal.SIGKILL, output_text
    client, _, before = trial_runs(output, "interrupted")
    finished_before = {r.data.tags[TRIAL_TAG]: r.info.end_time for r in before if r.info.status == "FINISHED"}
    assert len(finished_before) == 1

    assert main(["run", str(config), "--output", str(output), "--no-report", "--resume"]) == 0
    assert "runs page:      http://127.0.0.1:5000/#/experiments/" in capsys.readouterr().out
    client, (parent,), after = trial_runs(output, "interrupted")
    assert parent.info.status == "FINISHED"
    assert len(after) == 2 and {r.info.status for r in after} == {"FINISHED"}
    for run in after:
        # nothing lost, nothing twice
        assert steps_of(client, run, "reward_queries") == list(range(INTERRUPTED_STEPS + 1))
        if run.data.tags[TRIAL_TAG] in finished_before:  # not run again
            assert run.info.end_time == finished_before[run.data.tags[TRIAL_TAG]]


#: one trial, long enough for a test to stop it between its checkpoints: SIGTERM goes once the step-2 checkpoint
#: is on disk, and the trial stopped at step 4 (2 cores, another study running beside it); each step more costs
#: the resumed run and the uninterrupted one in this process a step each
TERMINATED = tiny_study("terminated", {"vader": {"batch_size": 2, "lr": 1e-2}}, 60, checkpoint_every=2)


def test_sigterm_stops_a_study_as_ctrl_c_does_and_resume_ends_as_an_uninterrupted_run(ray_address, tmp_path, capsys):
    config, output = write_study(tmp_path, TERMINATED), tmp_path / "out"
    steps = TERMINATED["budget"]["steps"]
    before = set(trial_processes())
    process = start_run(config, output, ray_address)
    # as a job scheduler or a container stop does, once the trial has checkpointed
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not any(checkpoint_steps(output)):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output_text = process.communicate(timeout=120)[0]
    assert process.returncode == 128 + signal.SIGTERM, output_text
    assert f"`vaderbench run {config} --resume` finishes the unfinished trials" in output_text
    assert "Traceback" not in output_text and "SIGTERM received" not in output_text  # Ray's stack dump
    # the trial's process ends with the driver (it is the driver's job's actor), not when it has computed on
    deadline = time.monotonic() + 10
    while set(trial_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(trial_processes()) - before
    ((*_, stopped_at),) = checkpoint_steps(output)
    assert stopped_at < steps  # it was stopped mid-trial
    client, (parent,), (run,) = trial_runs(output, "terminated")
    assert parent.info.status == "KILLED" and run.info.status == "KILLED"

    assert main(["run", str(config), "--output", str(output), "--no-report", "--resume"]) == 0
    capsys.readouterr()
    client, _, (run,) = trial_runs(output, "terminated")
    assert run.info.status == "FINISHED"
    assert steps_of(client, run, "reward_queries") == list(range(steps + 1))  # none lost, none twice
    assert_the_same_as_uninterrupted(client, run, config, tmp_path)


def test_two_runs_on_one_output_folder_at_once_both_finish_whole(ray_address, tmp_path):
    twice = {**INTERRUPTED, "name": "twice", "budget": {"steps": 4}, "eval": {**INTERRUPTED["eval"], "every": 2}}
    config, output = write_study(tmp_path, twice), tmp_path / "out"
    processes = [start_run(config, output, ray_address) for _ in range(2)]
    for process in processes:
        text = process.communicate(timeout=400)[0]
        assert process.returncode == 0, text
    client, parents, trials = trial_runs(output, "twice")
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    assert len(trials) == 4 and {r.info.status for r in trials} == {"FINISHED"}
    for run in trials:
        assert steps_of(client, run, "reward_queries") == [0, 1, 2, 3, 4]
    # each run's trials checkpointed under its own parent run: neither restored the other's
    assert sorted(p.name for p in (output / "ray").iterdir() if p.is_dir()) == sorted(p.info.run_id for p in parents)
