"""Figure 3 of the paper: reward after training against resolution per method, and VADER's lead over
DDPO and DPO, mean and 95% CI over seeds.

Reads the runs from MLflow and writes OUTPUT_DIR/report/resolution_gap.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/resolution_gap.py runs/efficiency
    python analysis/resolution_gap.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("resolution_gap", __doc__))
