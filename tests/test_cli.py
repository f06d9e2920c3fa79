"""The command line: `list` shows each registry by its YAML names; no command prints help and fails."""

from vaderbench.cli import main


def test_list_prints_every_registry_section(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sections = ["aligners (method:)", "rewards (reward:)", "base models (model:)", "prompt sets (prompts:)"]
    positions = [out.index(title) for title in sections]
    assert positions == sorted(positions)
    aligners = out[positions[0] : positions[1]]
    for name in ("vader", "ddpo", "dpo"):
        assert f"  {name} " in aligners
    assert "colourfulness" in out[positions[1] : positions[2]]
    assert "toy-random" in out[positions[2] : positions[3]]


def test_no_command_prints_help_and_exits_non_zero(capsys):
    assert main([]) == 2
    assert "usage: vaderbench" in capsys.readouterr().out
