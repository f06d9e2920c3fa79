"""`vaderbench report`: the paper's figures and tables regenerated from the runs in MLflow.

`generate_report(output_dir, experiment=..., tracking_uri=...)` writes `<output_dir>/report/` (each
figure as PNG and SVG, and `report.md` with the tables) and logs it to the experiment's parent run.
"""

from __future__ import annotations


def generate_report(output_dir=None, *, experiment=None, tracking_uri=None, parent_run_id=None):
    # imported on call: the CLI imports this package to build its parser, and plotting libraries are slow to load
    from vaderbench.report.build import generate_report as generate

    return generate(output_dir, experiment=experiment, tracking_uri=tracking_uri, parent_run_id=parent_run_id)


__all__ = ["generate_report"]
