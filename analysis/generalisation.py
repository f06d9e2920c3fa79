"""Table 1 of the paper: base model and each method on training and held-out prompts.

Reads the runs from MLflow and writes OUTPUT_DIR/report/generalisation.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/generalisation.py runs/efficiency
    python analysis/generalisation.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("generalisation", __doc__))
