"""Malformed experiment files, each refused by `vaderbench validate` and `vaderbench run` before anything starts:
exit code 2, one line naming the file, the key and what was expected, no traceback, nothing written.

The files are `tests/data/malformed/*.yaml`; the first line of each says what it must be answered with
(`# expect <key> | <part of the message>`). Names that would become paths outside the output folder, YAML aliases
(recursive ones and a billion laughs), nesting, unknown and bad keys of a tuning space.
"""

from pathlib import Path

import pytest

from vaderbench.cli import main
from vaderbench.experiment.yamlfile import MAX_FILE_BYTES

MALFORMED = Path(__file__).resolve().parent / "data" / "malformed"


def expected_answer(path: Path) -> tuple[str, str]:
    """(the key, part of the message) the file's first line promises."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect "), path
    key, message = first.removeprefix("# expect ").split(" | ")
    return key, message


def refused(path: Path, capsys, *command: str) -> str:
    assert main([*command, str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("path", sorted(MALFORMED.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_malformed_file_is_refused_naming_the_file_and_the_key_and_nothing_is_written(
    path, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # `run` would write runs/<name> here, or climb out of it
    key, message = expected_answer(path)
    for command in ("validate", "run"):
        err = refused(path, capsys, command)
        assert err.startswith(f"vaderbench: error: {path}: {key}: ") and message in err, err
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escaped-study").exists()


def test_a_file_larger_than_an_experiment_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text("methods: {vader: {}}\n" + "# padding\n" * (MAX_FILE_BYTES // 10))
    err = refused(path, capsys, "validate")
    assert f"{path}: {path.stat().st_size} bytes: more than an experiment file's {MAX_FILE_BYTES}" in err


def test_a_file_whose_stem_is_no_safe_name_needs_a_name(tmp_path, capsys):
    path = tmp_path / "my study.yaml"
    path.write_text("methods: {vader: {batch_size: 2}}\n")
    err = refused(path, capsys, "validate")
    assert f"{path}: name: the file's stem (the default `name`) becomes a folder name" in err and "set `name:`" in err
    path.write_text("name: my_study\nmethods: {vader: {batch_size: 2}}\nvideo: {frames: 2, resolution: 8}\n")
    assert main(["validate", str(path)]) == 0
