"""Placement: whether a trial fits the cluster's nodes as Ray places it, and how many fit at once."""

from vaderbench.runner.placement import misfit, trials_at_once

TWO_SMALL_NODES = [{"CPU": 1.0, "memory": 1e9}, {"CPU": 1.0, "memory": 1e9}]


def resources(workers, cpus=1, gpus=0):
    return {"workers": workers, "cpus_per_worker": cpus, "gpus_per_worker": gpus}


def test_a_two_worker_trial_spreads_over_two_one_cpu_nodes():
    assert misfit(TWO_SMALL_NODES, resources(2)) is None
    assert trials_at_once(TWO_SMALL_NODES, 2, 1, 0) == 1
    assert trials_at_once(TWO_SMALL_NODES, 1, 1, 0) == 2


def test_a_worker_must_fit_on_one_node():
    problem = misfit(TWO_SMALL_NODES, resources(1, cpus=2))
    assert "1 worker(s) of 2 CPU each" in problem and "node 0: 1 CPU; node 1: 1 CPU" in problem
    assert "at most 0 such worker(s) fit" in problem


def test_gpus_count_per_node():
    nodes = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 16.0, "GPU": 2.0}]
    assert trials_at_once(nodes, 1, 4, 1) == 3
    assert misfit(nodes, resources(4, cpus=1, gpus=1)) is not None
    assert "0.5 GPU" not in misfit(nodes, resources(4, gpus=1))
