"""Sample videos before and after alignment, read from the trials' GIF artifacts.

Per series, one finished trial (the highest resolution, then the lowest seed) and two of its GIFs: the
one named like the start (`start`, `before`, `base`, `initial`) and the one named like the end (`end`,
`after`, `final`); failing names, the GIFs with the lowest and highest number in their path (a step).
Each becomes a row of evenly spaced frames, the first and the last included.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from vaderbench.report.select import method_first

START_WORDS = ("start", "before", "base", "initial", "init")
END_WORDS = ("end", "after", "final", "last")


def gif_paths(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            found.extend(gif_paths(client, run_id, info.path))
        elif info.path.lower().endswith(".gif"):
            found.append(info.path)
    return found


def words_in(path: str) -> set[str]:
    return set(re.split(r"[^a-z]+", Path(path).stem.lower()))


def start_and_end(paths: list[str]) -> tuple[str, str] | None:
    """The start and end GIFs among a run's GIF paths, or None if they cannot be told apart."""
    starts = [p for p in paths if words_in(p) & set(START_WORDS)]
    ends = [p for p in paths if words_in(p) & set(END_WORDS)]
    if starts and ends:
        return sorted(starts)[0], sorted(ends)[-1]
    numbered = [(int(n[-1]), p) for p in paths if (n := re.findall(r"\d+", p))]
    if len({number for number, _ in numbered}) >= 2:
        numbered.sort()
        return numbered[0][1], numbered[-1][1]
    return None


def frame_row(path: Path, count: int) -> np.ndarray:
    """`count` evenly spaced frames of a GIF (first and last included), RGB uint8 [F, H, W, 3]."""
    frames = iio.imread(path, index=None)
    if frames.ndim == 3:  # a single-frame GIF reads as one image
        frames = frames[None]
    frames = frames[..., :3]
    chosen = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    return frames[chosen]


@contextmanager
def quiet_downloads():
    """No progress bar per downloaded GIF on the user's terminal (MLflow reads this variable per download)."""
    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"]
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before


def representative_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """One finished trial per series: the highest resolution, then the lowest seed."""
    order = trials.assign(seed_order=pd.to_numeric(trials["seed"], errors="coerce"))
    order = order.sort_values(["side", "seed_order"], ascending=[False, True])
    return method_first(order.groupby("series").head(1), ["series"])


def sample_strips(client: MlflowClient, trials: pd.DataFrame, frames: int = 4):
    """(strips, notes): strips as (method, series, moment, frames) for `figures.samples`; notes on what is missing."""
    strips, notes = [], []
    with tempfile.TemporaryDirectory() as scratch, quiet_downloads():
        for _, trial in representative_trials(trials).iterrows():
            pair = start_and_end(gif_paths(client, trial["run_id"]))
            if pair is None:
                notes.append(f"{trial['series']}: run {trial['run_id']} has no start and end GIF artifacts")
                continue
            for moment, artifact in zip(("before", "after"), pair):
                local = client.download_artifacts(trial["run_id"], artifact, scratch)
                strips.append((trial["method"], trial["series"], f"{moment}\n({Path(artifact).name})",
                               frame_row(Path(local), frames)))
    return strips, notes
