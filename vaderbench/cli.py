"""The `vaderbench` command line. Each command group lives in its own module and adds its sub-parser here.

A user's mistake (a bad file, a bad name, a bad value) ends with a one-line message and a non-zero
exit code, never a traceback: commands raise `UserError`, or ValueError/FileNotFoundError from
validation, and `main` prints them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# modules that define `add_parser(subparsers)`; each sets `func` on its parser
COMMAND_MODULES = (
    "vaderbench.commands.run",
    "vaderbench.experiment.commands",
    "vaderbench.report.commands",
    "vaderbench.commands.listing",
    "vaderbench.toyworld.commands",
)


class UserError(Exception):
    """A mistake of the user's, reported without a traceback (exit code `code`)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaderbench",
        description=(
            "Benchmark ways of aligning video diffusion models to reward models: reward-gradient backprop "
            "(VADER), policy gradients (DDPO-PPO) and preference optimisation (Diffusion-DPO), from one YAML file."
        ),
        epilog="Start with `vaderbench list` to see what a YAML file can name.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"vaderbench: error: {error}", file=sys.stderr)
        return error.code
    except (ValueError, FileNotFoundError) as error:
        print(f"vaderbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from vaderbench.runner.signals import interrupted_exit_code

        print("vaderbench: interrupted", file=sys.stderr)
        return interrupted_exit_code()


if __name__ == "__main__":
    sys.exit(main())
