"""Figure 5 (top) of the paper: held-out reward against reward queries, per method and resolution,
mean and 95% CI over seeds.

Reads the runs from MLflow and writes OUTPUT_DIR/report/sample_efficiency.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/sample_efficiency.py runs/efficiency
    python analysis/sample_efficiency.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("sample_efficiency", __doc__))
