"""A new method is one file: an aligner registered anywhere is picked up by the contract tests, the experiment
files and the report with no other edit. Shown with a throwaway aligner registered inside the test (VADER
under another name, title and colour), removed again when the test ends."""

import pytest
import test_aligners
import yaml
from contract import aligner_names
from studies import TINY_WORLD

from vaderbench.algorithms.vader import Vader
from vaderbench.experiment.load import load_experiment
from vaderbench.registry import ALIGNERS
from vaderbench.report.efficiency import reward_gradient
from vaderbench.report.figures import method_colour
from vaderbench.report.select import method_display, method_order, reference_method

TINY = {**TINY_WORLD, "budget": {"steps": 2}}


@pytest.fixture
def twin(monkeypatch):
    ALIGNERS.names()  # the catalogue first: the copies below hold every shipped aligner
    monkeypatch.setattr(ALIGNERS, "_entries", dict(ALIGNERS._entries))
    monkeypatch.setattr(ALIGNERS, "_summaries", dict(ALIGNERS._summaries))

    # what a new file in algorithms/ holds
    @ALIGNERS.register("twin", "VADER again, to show that a new method needs no other edit")
    class Twin(Vader):
        name = "twin"
        title = "Twin"
        family = "reward-gradient"

    return Twin


def test_the_contract_tests_run_on_a_newly_registered_aligner(twin):
    # the contract tests are parametrised over aligner_names() when they are collected; the cheapest of them
    # run here on the new one (the others take seconds per aligner and run on every file in algorithms/)
    assert "twin" in aligner_names()
    test_aligners.test_aligner_declares_its_name_title_and_family("twin")
    test_aligners.test_every_aligner_refuses_the_common_bad_settings("twin", {"learning_rate": 1}, "unknown setting")


def test_experiment_files_take_a_newly_registered_aligner(twin, tmp_path):
    named = tmp_path / "named.yaml"
    named.write_text(yaml.safe_dump({**TINY, "methods": {"twin": {"batch_size": 2, "truncation": {"k": 2}}}}))
    (trial,) = load_experiment(named)[1]
    assert (trial.method, trial.aligner, trial.params()["method"]) == ("twin", "twin", "twin")
    assert trial.settings["truncation"] == {"k": 2}
    every = tmp_path / "every.yaml"  # no `methods:`: every registered aligner at its defaults
    every.write_text(yaml.safe_dump(TINY))
    assert {t.method for t in load_experiment(every)[1]} == set(aligner_names()) >= {"twin", "vader"}


def test_the_report_names_orders_colours_and_compares_a_newly_registered_aligner(twin):
    assert method_display("twin") == "Twin"
    # the report's order: by family, then by name; twin is a reward-gradient method like VADER
    assert method_order(["dpo", "vader", "base", "ddpo", "twin"]) == ["base", "twin", "vader", "ddpo", "dpo"]
    colours = [method_colour(m) for m in ("base", "vader", "twin", "ddpo", "dpo")]
    assert len(set(colours)) == len(colours)
    # the reference is the first reward-gradient method among the trials
    assert reference_method(["ddpo", "vader"]) == "vader" and reference_method(["vader", "twin", "dpo"]) == "twin"
    assert reward_gradient("twin") and not reward_gradient("dpo")  # never one of the baselines
