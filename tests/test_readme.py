"""The README: its two quick-start commands, its size, and a study block that matches the report it cites."""

import importlib.util
from pathlib import Path

from vaderbench.report.findings import at_a_glance
from vaderbench.report.summary import Gap, Headroom, Interval, MethodResult, Precision, Resolution, Summary

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


def test_the_readme_block_is_the_report_s_findings_at_a_glance(tmp_path, monkeypatch):
    module = readme_study()
    monkeypatch.setattr(module, "ROOT", tmp_path)  # the block names the report by its path under the repository
    report = tmp_path / "docs" / "results" / "study"
    report.mkdir(parents=True)
    method = MethodResult(Interval(0.6, 0.5, 0.7), seeds=4, truths={"gold": Interval(0.3, 0.2, 0.4)})
    summary = Summary(
        reference="vader",
        resolutions={
            label: Resolution(
                targets={},
                methods={"vader": method, "ddpo": method},
                headroom=Headroom(None, None, None, {"gold": 0.35}),
                precision=Precision(None, None, None, None),
                gaps={"reward": Gap("ddpo", Interval(*difference), 0.1)},
            )
            for label, difference in (("16", (0.2, 0.1, 0.3)), ("32", (0.05, -0.05, 0.15)))
        },
        slopes={"reward": Interval(-0.1, -0.3, 0.1)},
    )
    (report / "summary.json").write_text(summary.to_json())
    (report / "report.md").write_text("# Report\n\nStudy started then.\n")
    block = module.block(report)
    assert "\n".join(at_a_glance(Summary.from_json(summary.to_json()))) in block
    assert "grows with resolution) is undecided here on the learned reward" in block
    assert "Against the best baseline VADER is ahead at 16 px on the learned reward." in block
    assert block.endswith(
        "Study started then. Full report: [docs/results/study/report.md](docs/results/study/report.md).\n" + module.END
    )
