"""`vaderbench list`: what an experiment file can name."""

from __future__ import annotations

from vaderbench.catalogue import load_all
from vaderbench.registry import ALIGNERS, MODELS, PROMPT_SETS, REWARDS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "list", help="list the aligners, rewards, base models and prompt sets by their YAML names"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    load_all()
    for title, registry in (
        ("aligners (method:)", ALIGNERS),
        ("rewards (reward:)", REWARDS),
        ("base models (model:)", MODELS),
        ("prompt sets (prompts:)", PROMPT_SETS),
    ):
        print(title)
        names = registry.names()
        width = max((len(n) for n in names), default=0)
        for name in names:
            print(f"  {name.ljust(width)}  {registry.summary(name)}")
        if not names:
            print("  (none)")
        print()
    return 0
