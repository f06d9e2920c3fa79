"""The real-model files' defended entry (`vader-ensemble` in modelscope_hps.yaml and wan_hps.yaml) runs as the file
writes it, on tiny random weights saved in the real layouts: only the weights' paths, the sizes and the budget are
changed, its reward ensemble, aggregate, LoRA scales, reference and held-out rewards are the file's."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_models as tm
import torch
import yaml
from studies import trial_loop

from vaderbench.experiment.load import load_experiment
from vaderbench.metrics import (
    EVAL_HELD_OUT_REWARD_MEAN,
    EVAL_REFERENCE_REWARD_MEAN,
    EVAL_REWARD_MEAN,
    REWARD_MEAN,
    at_lora_scale,
)
from vaderbench.rewards import WeightedSum

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
ENTRY = "vader-ensemble"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-defences")
    clip_model = tm.register_tiny_open_clip(folder)
    return {
        "modelscope": str(tm.save_tiny_modelscope(folder / "modelscope")),
        "wan": str(tm.save_tiny_wan(folder / "wan")),
        "hpsv2": {"checkpoint": str(tm.save_tiny_open_clip(folder / "hps.pt", "state_dict")), "clip_model": clip_model},
        "pickscore": {"model": str(tm.save_tiny_pickscore(folder / "pick")), "processor": str(folder / "pick")},
        "aesthetic": {
            "head": str(tm.save_tiny_aesthetic_head(folder / "head.pth")),
            "clip_model": clip_model,
            "clip_checkpoint": str(tm.save_tiny_open_clip(folder / "clip.pt")),
        },
    }


def tiny(spec, weights):
    """A reward spec (a name, {name: weight}, an ensemble) with every real reward pointed at its tiny weights."""
    if isinstance(spec, str):
        return {spec: weights[spec]} if spec in weights else spec
    if "ensemble" in spec:
        return {"ensemble": {**spec["ensemble"], "of": [tiny(member, weights) for member in spec["ensemble"]["of"]]}}
    return {name: {"weight": weight, **weights[name]} for name, weight in spec.items()}


@pytest.mark.parametrize("file, frames", [("modelscope_hps.yaml", 4), ("wan_hps.yaml", 5)])
def test_the_defended_entry_of_a_real_model_file_runs_on_tiny_weights(tiny_weights, tmp_path, file, frames):
    study = yaml.safe_load((EXPERIMENTS / file).read_text())
    entry = study["methods"][ENTRY]
    entry["reward"] = tiny(entry["reward"], tiny_weights)
    entry["reward"]["ensemble"]["standardise"] = 4  # the file's 32 base videos, at a test's size
    name = study["model"]["name"]
    study |= {
        "model": {"name": name, "path": tiny_weights[name]},  # float32 weights on a CPU
        "reward": tiny(study["reward"], tiny_weights),
        "prompts": {k: str(EXPERIMENTS / v) for k, v in study["prompts"].items()},
        "video": {"frames": frames, "resolution": 16},
        "sampler": {**study["sampler"], "num_steps": 2},
        "policy": {**study["policy"], "precision": "no", "lora_rank": 2},
        "methods": {ENTRY: {**entry, "batch_size": 2}},
        "sweep": {"seed": [0]},
        "budget": {"steps": 1},
        "eval": {**study["eval"], "every": 1, "videos": 2, "sample_videos": 0},
        "resources": {"workers": 1, "cpus_per_worker": 1},
    }
    for key in ("reference_reward", "held_out_reward"):
        study["eval"][key] = tiny(study["eval"][key], tiny_weights)
    path = tmp_path / file
    path.write_text(yaml.safe_dump(study))
    (trial,) = load_experiment(path).trials
    loop = trial_loop(trial, tmp_path)
    reports = []
    loop.run(reports.append)
    start, step = reports
    # fitted on the base model: HPSv2 and the aesthetic score, each on a scale of its own
    assert {f"base_reward_{stat}{m}" for stat in ("mean", "std") for m in range(2)} <= set(start)
    assert all(start[f"base_reward_std{m}"] > 0 for m in range(2))
    scored = (EVAL_REWARD_MEAN, EVAL_REFERENCE_REWARD_MEAN, EVAL_HELD_OUT_REWARD_MEAN)
    for report in (start, step):
        for metric in (*scored, *(at_lora_scale(m, 0.5) for m in scored)):
            assert torch.isfinite(torch.tensor(report[metric])), metric
    assert torch.isfinite(torch.tensor(step[REWARD_MEAN]))
    # the reference reward's HPSv2 is the ensemble's: one copy of the model
    reference = loop.scoring_rewards["reference_reward"]
    hps = reference.rewards["hpsv2"] if isinstance(reference, WeightedSum) else reference
    assert hps is loop.aligner.reward.rewards[0]
