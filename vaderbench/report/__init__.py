"""`vaderbench report`: the paper's figures and tables regenerated from the runs in MLflow.

`write_report(output_dir, experiment=..., tracking_uri=...)` (from `vaderbench.report.build`) writes
`<output_dir>/report/` (each figure as PNG and SVG, and `report.md` with the tables), logs it to the
experiment's parent run, and returns the path of `report.md` and the sections.
"""

from __future__ import annotations

__all__ = ["write_report"]


def __getattr__(name: str):
    # imported on first use: the CLI imports this package to build its parser, and plotting libraries are slow
    if name == "write_report":
        from vaderbench.report.build import write_report

        return write_report
    raise AttributeError(f"module 'vaderbench.report' has no attribute {name!r}")
