"""Table 7 of the paper: peak memory per combination of the memory switches that vary across the trials.

Reads the runs from MLflow and writes OUTPUT_DIR/report/memory.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/memory_table.py runs/efficiency
    python analysis/memory_table.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("memory", __doc__))
