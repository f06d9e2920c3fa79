"""The command line: `list` shows each registry by its YAML names; no command prints help and fails."""

import subprocess
import sys

from vaderbench.cli import main
from vaderbench.registry import ALIGNERS


def test_list_prints_every_registry_section(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sections = ["aligners (method:)", "rewards (reward:)", "base models (model:)", "prompt sets (prompts:)"]
    positions = [out.index(title) for title in sections]
    assert positions == sorted(positions)
    aligners = out[positions[0] : positions[1]]
    for name in ALIGNERS.names():
        assert f"  {name} " in aligners
    assert "colourfulness" in out[positions[1] : positions[2]]
    assert "toy-random" in out[positions[2] : positions[3]]


def test_no_command_prints_help_and_exits_non_zero(capsys):
    assert main([]) == 2
    assert "usage: vaderbench" in capsys.readouterr().out


def test_a_name_lookup_imports_registering_modules_only_until_the_name_is_found():
    # validating a toy-world file must not pay for every real model's libraries (seconds of imports)
    script = (
        "import sys\n"
        "from vaderbench.registry import ALIGNERS, MODELS\n"
        "assert 'vader' in ALIGNERS and 'toy' in MODELS\n"
        "print('vaderbench.models.cogvideox' in sys.modules, 'diffusers' in sys.modules)\n"
        "assert 'no-such-model' not in MODELS\n"
        "print('vaderbench.models.cogvideox' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]  # the toy model needs diffusers; an unknown name loads everything


def test_help_does_not_import_torch():
    script = "import sys\nfrom vaderbench.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)\n"
    assert (
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
