"""Figure 12 of the paper: VADER against on- and off-policy DDPO and DPO, held-out reward against device-hours.

Reads the runs from MLflow and writes OUTPUT_DIR/report/on_off_policy.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/on_off_policy.py runs/efficiency
    python analysis/on_off_policy.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("on_off_policy", __doc__))
