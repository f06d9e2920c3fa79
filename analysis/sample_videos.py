"""Sample videos before and after alignment: frames of each method's start and end GIFs.

Reads the runs from MLflow and writes OUTPUT_DIR/report/samples.png and .svg (as `vaderbench report` does for
every figure), then prints the section's Markdown with its table.

    python analysis/sample_videos.py runs/efficiency
    python analysis/sample_videos.py --tracking-uri http://mlflow.example:5000 --experiment efficiency OUTPUT_DIR
"""

import sys

from vaderbench.report.commands import section_main

if __name__ == "__main__":
    sys.exit(section_main("samples", __doc__))
