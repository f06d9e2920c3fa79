"""Shared pytest setup. Tests never reach a network: real-model code is tested on tiny local models."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# One thread, as a trial's process has (`cpus_per_worker: 1`). The tests' tensors are tiny, and two OpenMP
# threads on 2 cores shared with another busy process spin-wait for each other: the tiny model's fit took
# 0.9-2.6 s a step on two threads there against 0.02 s on one.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray per test module (a start costs seconds on 2 cores); a subprocess joins it by address."""
    import ray

    from vaderbench.runner.sweep import start_ray

    start_ray(None)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """A whole toy-world build of `tiny_world.TINY_BUILD` (about 15 s on 2 cores, most of it the aesthetic
    stage), made once: the build's determinism test and the aesthetic stage's rebuild test both compare with it."""
    from tiny_world import TINY_BUILD

    from vaderbench.cli import main

    folder = tmp_path_factory.mktemp("tiny-build")
    assert main(["toyworld", "build", "--out", str(folder), *TINY_BUILD]) == 0
    return folder
