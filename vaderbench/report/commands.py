"""`vaderbench report [OUTPUT_DIR]`: regenerate the figures and tables of a study from its MLflow runs."""

from __future__ import annotations

import argparse
import sys


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the runs are: shared by `vaderbench report` and the scripts in `analysis/`."""
    parser.add_argument(
        "output_dir",
        nargs="?",
        metavar="OUTPUT_DIR",
        help="the output folder of a `vaderbench run` (its mlflow.db is the store; the report goes to "
        "OUTPUT_DIR/report/)",
    )
    parser.add_argument(
        "--experiment", metavar="NAME", help="MLflow experiment (default: the store's only one with runs)"
    )
    parser.add_argument(
        "--tracking-uri", metavar="URI", help="MLflow tracking URI (default: sqlite:///OUTPUT_DIR/mlflow.db)"
    )


def check_store_arguments(args: argparse.Namespace) -> None:
    from vaderbench.cli import UserError

    if args.output_dir is None and args.tracking_uri is None:
        raise UserError("give OUTPUT_DIR (the folder of a `vaderbench run`) or --tracking-uri URI")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="regenerate the figures and tables (PNG, SVG, report.md) from the runs in MLflow",
        description="Reads the trials of one MLflow experiment and writes OUTPUT_DIR/report/: the resolution gap, "
        "sample and compute efficiency, K ablation, generalisation, on- vs off-policy, memory and sample videos, "
        "each figure as PNG and SVG, and report.md with the tables (mean ± 95% CI over seeds). Without OUTPUT_DIR "
        "the report goes to runs/<experiment>/report/.",
    )
    add_store_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vaderbench.report.build import write_report

    check_store_arguments(args)
    path, sections = write_report(args.output_dir, experiment=args.experiment, tracking_uri=args.tracking_uri)
    for section in sections:
        if section.skipped:
            print(f"skipped {section.name}: {section.skipped}")
    print(f"report: {path}")
    return 0


def section_main(name: str, description: str, argv: list[str] | None = None) -> int:
    """The scripts in `analysis/`: regenerate one figure (OUTPUT_DIR/report/<name>.png and .svg) and print its
    Markdown."""
    from vaderbench.cli import UserError
    from vaderbench.report.build import render_section

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_store_arguments(args)
        print(render_section(name, args.output_dir, experiment=args.experiment, tracking_uri=args.tracking_uri))
    except (UserError, ValueError, FileNotFoundError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
