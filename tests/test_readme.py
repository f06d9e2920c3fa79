"""The README: its two quick-start commands, its size, and a study block that matches the report it cites."""

import importlib.util
import math
from pathlib import Path

from vaderbench.report.findings import headline
from vaderbench.report.summary import Gap, Headroom, Interval, MethodResult, Precision, Ratio, Resolution, Summary

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_study():
    spec = importlib.util.spec_from_file_location("readme_study", ROOT / "analysis" / "readme_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.encode()) <= 12_500
    assert 'pip install -e ".[test]" && vaderbench run experiments/efficiency.yaml' in text
    assert 'pip install -e ".[test]" && pytest' in text


def test_the_readme_study_block_is_the_one_its_report_gives():
    assert readme_study().main([str(ROOT / "docs" / "results" / "efficiency"), "--check"]) == 0


def test_the_headline_calls_a_claim_supported_only_when_its_interval_excludes_the_null():
    nan = math.nan
    method = MethodResult(Interval(0.6, 0.5, 0.7), seeds=4, truths={"gold": Interval(0.3, 0.2, 0.4)})

    def ratio(values, upper_bound):
        return {"ddpo": {"best_baseline": {"queries": Ratio(Interval(*values), upper_bound=upper_bound)}}}

    def at(difference, detectable, precision, ratios, truth_bases):
        return Resolution(
            targets={},
            methods={"vader": method, "ddpo": method},
            headroom=Headroom(None, None, None, truth_bases),
            precision=precision,
            gap=Gap("ddpo", Interval(*difference), detectable),
            ratios=ratios,
        )

    summary = Summary(
        reference="vader",
        resolutions={
            "16": at(
                (0.2, 0.1, 0.3), 0.1, Precision(0.1, 0.01, False, 41), ratio((0.2, 0.1, 0.4), True), {"gold": 0.35}
            ),
            "32": at((0.05, -0.05, 0.15), 0.2, Precision(None, None, None, None), ratio((nan, nan, nan), False), {}),
        },
        gap_slope=Interval(-0.1, -0.3, 0.1),
    )
    text = "\n".join(headline(summary))
    assert "16 px 0.20 [0.10, 0.30] (supported); 32 px 0.05 [-0.05, 0.15] (not supported)" in text
    assert "16 px (DDPO) <= 0.20 [0.10, 0.40]." in text  # an upper bound; no ratio at 32 px
    assert "Below the base model's" not in text  # gold 0.3 [0.2, 0.4] against base 0.35
    assert "shows no supported trend" in text and "over 4 seeds" in text
    assert "Precision: some final reward's 95% interval is wider than a tenth of the headroom" in text
    assert "(seeds per method that would meet it, at the spread seen: 41 at 16 px)." in text
