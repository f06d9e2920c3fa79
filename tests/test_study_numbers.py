"""The smoke study's held-out rewards are the numbers recorded before any speed work (within 1e-4).

Speed work (kernels, memory formats, fused ops) must not move a study's results. The reference numbers
in `data/smoke_eval_rewards.json` were recorded by running this file as a script on the commit named
inside it; rerun it (`python tests/test_study_numbers.py`) only when the smoke study itself changes,
and say why in the commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMOKE = HERE.parent / "experiments" / "smoke.yaml"
REFERENCE = HERE / "data" / "smoke_eval_rewards.json"
TOLERANCE = 1e-4


def smoke_eval_rewards() -> dict[str, dict[str, float]]:
    """Every smoke trial, run in this process: "<method>_r<resolution>" -> {step: eval_reward_mean}."""
    import tempfile

    from vaderbench.experiment.load import load_experiment
    from vaderbench.runner.checkpoint import CheckpointStore
    from vaderbench.runner.trial import run_trial

    rewards = {}
    for trial in load_experiment(SMOKE)[1]:
        reports = []
        with tempfile.TemporaryDirectory() as checkpoints:
            run_trial(trial, reports.append, CheckpointStore(Path(checkpoints)))
        rewards[f"{trial.method}_r{trial.resolution}"] = {
            str(r["step"]): r["eval_reward_mean"] for r in reports if "eval_reward_mean" in r
        }
    return rewards


def test_smoke_study_held_out_rewards_match_the_recorded_numbers():
    reference = json.loads(REFERENCE.read_text())
    measured = smoke_eval_rewards()
    assert set(measured) == set(reference["rewards"]), (
        "the smoke study's trials changed: if experiments/smoke.yaml was edited on purpose, record new numbers "
        f"with `python {Path(__file__).relative_to(HERE.parent)}`"
    )
    differences = {
        (trial, step): abs(value - reference["rewards"][trial][step])
        for trial, steps in measured.items()
        for step, value in steps.items()
    }
    assert set(differences) == {(t, s) for t, steps in reference["rewards"].items() for s in steps}
    worst = max(differences, key=differences.get)
    assert differences[worst] <= TOLERANCE, (worst, differences[worst])


if __name__ == "__main__":
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    REFERENCE.write_text(json.dumps({"commit": commit, "rewards": smoke_eval_rewards()}, indent=2) + "\n")
    print(f"recorded {REFERENCE} at {commit}", file=sys.stderr)
