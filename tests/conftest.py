"""Shared pytest setup. Tests never reach a network: real-model code is tested on tiny local models."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray per test module (a start costs seconds on 2 cores); a subprocess joins it by address."""
    import ray

    from vaderbench.runner.sweep import start_ray

    start_ray(None)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
