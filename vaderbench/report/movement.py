"""Did training move each method's reward beyond its seeds' noise, and how many reward queries did the reference
need to move its own? A baseline that did not move in N queries is only evidence against it if N is several
times what the reference needed (at least `BUDGET_MULTIPLE` times: a smaller budget never gave it a fair chance).

A trial's *gain* at an evaluation is its held-out reward there minus its own step-0 reward (the base model on the
same evaluation noise), so the pairing by seed removes the noise the seeds share. A method *moved* when the 95%
t-interval over seeds of its gain at the last evaluation lies above 0. The reference's *queries to move*: the
reward queries spent by the first evaluation at which its gain's interval lies above 0; a method's seeds spend
the same queries by the same evaluation, so its evaluations are aligned by step and the queries averaged.
"""

from __future__ import annotations

import pandas as pd

from vaderbench.report.stats import t_interval
from vaderbench.report.summary import Gain, Interval, Movement

#: the fewest times the reference's queries to move that a baseline's budget must be before its not moving counts
BUDGET_MULTIPLE = 4


def gains(points: pd.DataFrame) -> pd.DataFrame:
    """`points` (run_id, step, reward, queries at every evaluation) with `gain`: reward minus the trial's step 0."""
    base = points[points["step"] == 0].set_index("run_id")["reward"]
    return points.assign(gain=points["reward"] - points["run_id"].map(base)).dropna(subset=["gain"])


def queries_to_move(gained: pd.DataFrame) -> float | None:
    """The mean queries at the first evaluation after step 0 whose gain over seeds has an interval above 0."""
    for _, at in gained[gained["step"] > 0].groupby("step", sort=True):
        if t_interval(at["gain"]).low > 0:  # NaN (one seed) is not above 0
            return float(at["queries"].mean())
    return None


def movement(points: pd.DataFrame, method_of: pd.Series, reference: str | None) -> Movement:
    """Each method's gain at its last evaluation and the reference's queries to move, at one resolution.

    `points`: run_id, step, reward, queries at every evaluation; `method_of`: run_id -> method."""
    gained = gains(points).assign(method=lambda frame: frame["run_id"].map(method_of))
    last = gained.sort_values("step").groupby("run_id").last()
    methods = {
        method: Gain(Interval.of(t_interval(at["gain"])), float(at["queries"].mean()))
        for method, at in last.groupby("method")
    }
    return Movement(methods, queries_to_move(gained[gained["method"] == reference]))
