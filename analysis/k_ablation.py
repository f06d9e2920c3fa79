"""Table 9 of the paper: training reward at steps 1, 100, 200, 300 (where logged) for each K of truncated backprop.

Reads the runs from MLflow and writes OUTPUT_DIR/report/k_ablation.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/k_ablation.py runs/efficiency
    python analysis/k_ablation.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("k_ablation", __doc__))
