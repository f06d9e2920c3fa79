"""Sample videos before and after alignment, read from the trials' GIF artifacts.

Per series, one finished trial (the highest resolution, its lowest seed) and two of its GIFs: the one
named like the start (`start`, `before`, `base`, `initial`) and the one named like the end (`end`,
`after`, `final`); failing names, the GIFs with the lowest and highest number in their path (a step).
A GIF shows the first evaluation videos side by side, and the JSON beside it (`runner.trial`) their
prompts and values (reward, gold). For each of the first captions the figure shows, one row each and
evenly spaced frames from the first to the last: the base model (a trial's start: every trial evaluates
the same base model on the same prompts and noise), each series' end, and the oracle render.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
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
    """One finished trial per series at the highest resolution: its lowest seed."""
    top = trials[trials["side"] == trials["side"].max()]
    order = top.assign(seed_order=pd.to_numeric(top["seed"], errors="coerce")).sort_values("seed_order")
    return method_first(order.groupby("series").head(1), ["series"])


def split_videos(strip: np.ndarray, count: int) -> list[np.ndarray]:
    """The `count` videos a sample GIF shows side by side ([F, H, N*W, 3] -> N x [F, H, W, 3])."""
    width = strip.shape[2] // count
    return [strip[:, :, i * width : (i + 1) * width] for i in range(count)]


@dataclass
class Row:
    """One row of the samples figure: a video of one caption, and the values logged with it."""

    label: str
    method: str
    frames: np.ndarray  # [F, H, W, 3]
    values: dict[str, float]


def read_samples(client: MlflowClient, run_id: str, artifact: str, scratch: str, frames: int):
    """(videos, their logged values) of a sample GIF and its JSON beside it (values empty without one)."""
    strip = frame_row(Path(client.download_artifacts(run_id, artifact, scratch)), frames)
    try:
        values = json.loads(
            Path(client.download_artifacts(run_id, str(Path(artifact).with_suffix(".json")), scratch)).read_text()
        )
    except Exception:  # a run from before the values were logged
        values = []
    count = len(values) or 1
    return split_videos(strip, count), values


def comparison_rows(client: MlflowClient, trials: pd.DataFrame, frames: int = 4, captions: int = 2):
    """(rows per caption, captions, notes): for the first `captions` sample prompts of the highest resolution,
    the base model (a trial's start), each series' end and the oracle render, with their logged values."""
    notes, start, oracle, ends = [], None, None, []
    with tempfile.TemporaryDirectory() as scratch, quiet_downloads():
        for _, trial in representative_trials(trials).iterrows():
            paths = gif_paths(client, trial["run_id"])
            pair = start_and_end([p for p in paths if "oracle" not in p])
            if pair is None:
                notes.append(f"{trial['series']}: run {trial['run_id']} has no start and end GIF artifacts")
                continue
            if start is None:
                start = read_samples(client, trial["run_id"], pair[0], scratch, frames)
                oracle_paths = [p for p in paths if Path(p).stem == "oracle"]
                if oracle_paths:
                    oracle = read_samples(client, trial["run_id"], oracle_paths[0], scratch, frames)
            ends.append(
                (trial["method"], trial["series"], read_samples(client, trial["run_id"], pair[1], scratch, frames))
            )
    if start is None:
        return [], [], notes
    shown = min(captions, len(start[0]))
    blocks, texts = [], []
    for i in range(shown):

        def row(label, method, videos, values, i=i):
            return Row(label, method, videos[i], values[i] if i < len(values) else {})

        rows = [row("base model", "base", *start)]
        rows += [row(series, method, *videos) for method, series, videos in ends]
        if oracle is not None:
            rows.append(row("oracle render", "base", *oracle))
        blocks.append(rows)
        texts.append(rows[0].values.get("prompt", f"sample {i + 1}"))
    return blocks, texts, notes
