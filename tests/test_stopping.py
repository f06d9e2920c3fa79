"""Early stopping that keeps the best checkpoint (`stopping:`): on a rigged run, the rule stops where it must and the
trial ends on the kept evaluation's weights, whose evaluation is its last; a resumed trial keeps them too."""

import shutil

import pytest
import yaml
from safetensors.torch import load_file
from test_trial_loop import TINY, Recorder, store, trial_of

from vaderbench.experiment.cost import evaluations_per_trial
from vaderbench.experiment.load import load_experiment
from vaderbench.experiment.schema import ExperimentError
from vaderbench.metrics import (
    BEST_STEP,
    BUDGET_SPENT,
    EVAL_REWARD_MEAN,
    EVAL_REWARD_STD_MEMBERS,
    STOPPED_AT_STEP,
)
from vaderbench.runner.artifacts import LORA_WEIGHTS
from vaderbench.runner.trial import ARTIFACTS, TrialLoop

#: ten steps, evaluated every two (steps 0, 2, ..., 10), checkpointed at every evaluation
RUN = {
    "methods": {"vader": {"batch_size": 2, "lr": 0.1}},
    "budget": {"steps": 10},
    "eval": {"every": 2, "videos": 2, "sample_videos": 0},
    "checkpoint": {"every": 2, "keep": 10},
}


def stopping_trial(tmp_path, reward="toy_clip", **stopping):
    return trial_of(tmp_path, **RUN, reward=reward, stopping=stopping)


def rig(loop: TrialLoop, metric: str, values: list[float], given: dict) -> None:
    """`metric` of each evaluation set from `values` in turn, by the LoRA weights evaluated: weights evaluated before
    (`given`: weights -> value) get the value they got then. The trial's only way to log a value again is to evaluate
    those weights again."""
    evaluate = loop.evaluate

    def rigged(gif_name=None):
        metrics = evaluate(gif_name)
        weights = tuple(float(v.double().sum()) for v in loop.aligner.policy.lora_state_dict().values())
        if weights not in given:
            given[weights] = values[len(given)]
        return {**metrics, metric: given[weights]}

    loop.evaluate = rigged


def run_rigged(tmp_path, trial, metric, values, given=None, checkpoints=None, name="run"):
    """The trial run with `metric` rigged; its reports, and the weights -> value of every distinct weights evaluated."""
    (tmp_path / name).mkdir()
    recorder, given = Recorder(tmp_path / name), {} if given is None else given
    loop = TrialLoop(trial, checkpoints or store(tmp_path, f"{name}-store"))
    rig(loop, metric, values, given)
    loop.run(recorder)
    return recorder, given


def evaluation(report: dict) -> dict:
    return {k: v for k, v in report.items() if k.startswith("eval_")}


def lora(folder) -> dict:
    return load_file(folder / "lora.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


#: the held-out reward of the evaluations at steps 0, 2, 4, 6, 8, 10: highest at step 4 until step 10
REWARDS = [0.0, 1.0, 3.0, 2.0, 2.5, 9.0]


@pytest.mark.parametrize(("patience", "stopped", "best"), [(1, 6, 4), (2, 8, 4), (3, 10, 10)])
def test_a_rule_on_the_held_out_reward_stops_after_patience_and_ends_on_the_best_weights(
    tmp_path, patience, stopped, best
):
    trial = stopping_trial(tmp_path, on=EVAL_REWARD_MEAN, patience=patience)
    recorder, given = run_rigged(tmp_path, trial, EVAL_REWARD_MEAN, REWARDS)
    by_step = {r["step"]: r for r in recorder.reports}
    last = recorder.reports[-1]
    # each evaluation of a step saw weights of its own; the last one, the weights of step `best` again
    assert len(given) == stopped // 2 + 1
    assert last["step"] == stopped == max(by_step) and last[BUDGET_SPENT] == 1.0
    assert (last[STOPPED_AT_STEP], last[BEST_STEP]) == (stopped, best)
    assert last[EVAL_REWARD_MEAN] == REWARDS[best // 2]
    # the last evaluation is the kept weights' evaluated again: every number of it (gold, fidelity, KL) is theirs
    assert evaluation(last) == evaluation(by_step[best])
    # the final checkpoint holds the kept weights, and its artifacts the adapter exported from them
    final = recorder.checkpoints[stopped]
    assert_same_weights(lora(final), lora(recorder.checkpoints[best]))
    assert (final / ARTIFACTS / "lora" / LORA_WEIGHTS).is_file()
    assert all(STOPPED_AT_STEP not in r and BEST_STEP not in r for r in recorder.reports[:-1])


#: the members' spread at steps 0, 2, ..., 10 against 1.5 times step 0's: above it at steps 6 and 10 only
SPREADS = [1.0, 1.2, 1.4, 1.6, 1.3, 2.0]


@pytest.mark.parametrize(("patience", "stopped", "best"), [(1, 6, 4), (2, 10, 8)])
def test_a_rule_on_the_members_spread_keeps_the_last_evaluation_within_rise_times_step_zero(
    tmp_path, patience, stopped, best
):
    trial = stopping_trial(tmp_path, reward="toy_aesthetic", on="member_spread", rise=1.5, patience=patience)
    recorder, given = run_rigged(tmp_path, trial, EVAL_REWARD_STD_MEMBERS, SPREADS)
    assert len(given) == stopped // 2 + 1
    by_step = {r["step"]: r for r in recorder.reports}
    last = recorder.reports[-1]
    assert (last["step"], last[STOPPED_AT_STEP], last[BEST_STEP]) == (stopped, stopped, best)
    assert last[EVAL_REWARD_STD_MEMBERS] == SPREADS[best // 2]
    assert evaluation(last) == evaluation(by_step[best])
    assert_same_weights(lora(recorder.checkpoints[stopped]), lora(recorder.checkpoints[best]))


def test_a_resumed_trial_keeps_the_weights_it_kept_before_the_interruption(tmp_path):
    trial = stopping_trial(tmp_path, on=EVAL_REWARD_MEAN, patience=2)
    whole, given = run_rigged(tmp_path, trial, EVAL_REWARD_MEAN, REWARDS, name="whole")
    interrupted = store(tmp_path, "interrupted")  # stopped after step 6: the kept weights are step 4's
    shutil.copytree(whole.checkpoints[6], interrupted.root / "checkpoint-000006")
    # the same weights get the same values: a resume that continues exactly sees what the whole run saw
    resumed, _ = run_rigged(tmp_path, trial, EVAL_REWARD_MEAN, REWARDS, given, interrupted, "resumed")
    last = resumed.reports[-1]
    assert (last["step"], last[STOPPED_AT_STEP], last[BEST_STEP]) == (8, 8, 4)
    assert evaluation(last) == evaluation(whole.reports[-1])
    assert_same_weights(lora(resumed.checkpoints[8]), lora(whole.checkpoints[4]))


def test_without_a_rule_a_trial_runs_to_its_budget_on_its_last_weights(tmp_path):
    trial = trial_of(tmp_path, **RUN)
    assert trial.stopping is None and "stopping" not in trial.params()
    recorder, _ = run_rigged(tmp_path, trial, EVAL_REWARD_MEAN, REWARDS)
    last = recorder.reports[-1]
    assert last["step"] == 10 and last[BUDGET_SPENT] == 1.0 and last[EVAL_REWARD_MEAN] == REWARDS[-1]
    assert all(STOPPED_AT_STEP not in r and BEST_STEP not in r for r in recorder.reports)
    assert evaluations_per_trial(trial) + 1 == evaluations_per_trial(stopping_trial(tmp_path, on=EVAL_REWARD_MEAN))


def refusal(tmp_path, **changes) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, **RUN, **changes}))
    with pytest.raises(ExperimentError) as error:
        load_experiment(path)
    return str(error.value)


def test_a_rule_the_trial_cannot_read_is_refused_naming_the_key(tmp_path):
    message = refusal(tmp_path, reward="toy_clip", stopping={"on": "member_spread"})
    assert "bad.yaml: stopping.on: member_spread needs a reward with members" in message
    message = refusal(tmp_path, stopping={"on": "eval_loss"})
    assert "stopping.on: expected one of member_spread, eval_reward_mean" in message
    message = refusal(tmp_path, stopping={"on": EVAL_REWARD_MEAN, "rise": 2.0})
    assert "stopping: rise applies to on: member_spread only" in message
    assert "stopping.patience" in refusal(tmp_path, stopping={"on": EVAL_REWARD_MEAN, "patience": 0})
