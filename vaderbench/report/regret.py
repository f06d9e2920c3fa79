"""Tuning regret: the gold a method gave up because the tuning stage chose its setting on the proxy (the tuning
score: the learned reward, folded at the oracle's) rather than on the truth it stands for.

Per method and resolution, among the settings whose tuning trials all ran to the budget:
- a setting's *score* on a metric: the mean over its tuning seeds of `recent_mean(the trial's values of the metric
  at its evaluations, last)`, `last` being the study's `tune.score_evaluations` (the stage's own rule,
  `experiment.tuning.setting_scores`);
- the *proxy's choice*: the best score on the tuning score (the setting the study ran); the *truth's*: the best on
  gold (`eval_gold_mean`), the choice a user who saw the truth would have made; of equal scores, the setting whose
  trials started first (the first drawn);
- *regret*: the truth's choice's gold score minus the proxy's choice's (0 where both chose the same setting).
"""

from __future__ import annotations

import pandas as pd

from vaderbench.metrics import BUDGET_SPENT, EVAL_GOLD_MEAN, TUNING_SCORE
from vaderbench.report.select import last_points, short_name, with_resolution
from vaderbench.report.summary import Choice, Regret, Tuning
from vaderbench.report.tables import best_setting, recent_means, tuned_keys


def tuning_regret(trials: pd.DataFrame, metrics: pd.DataFrame, last: int) -> Tuning | None:
    """The regret of every method's tuning at every tuning resolution; None without tuning trials that logged
    both the tuning score and gold. `trials`: the finished tuning trials."""
    if trials.empty or not {TUNING_SCORE, EVAL_GOLD_MEAN} <= set(metrics["metric"]):
        return None
    trials = with_resolution(trials)
    keys = tuned_keys(trials)
    ids = trials["run_id"]
    spent = last_points(metrics, BUDGET_SPENT, ids).set_index("run_id")["value"].eq(1)
    rows = trials.assign(
        proxy=trials["run_id"].map(recent_means(metrics, TUNING_SCORE, ids, last)),
        gold=trials["run_id"].map(recent_means(metrics, EVAL_GOLD_MEAN, ids, last)),
        spent=trials["run_id"].map(spent).fillna(False).astype(bool),
    )
    settings = rows.groupby(["method", "side", "resolution_label", *keys], as_index=False, dropna=False).agg(
        proxy=("proxy", "mean"),
        gold=("gold", "mean"),
        ran=("spent", "all"),
        scored=("proxy", "count"),
        seeds=("run_id", "size"),
        started=("start_time", "min"),
    )
    # a setting competes only if every one of its trials ran to the budget and logged a score
    settings = settings[settings["ran"] & settings["scored"].eq(settings["seeds"])]

    def choice(row: pd.Series) -> Choice:
        return Choice({short_name(k): str(row[k]) for k in keys}, float(row["gold"]))

    regrets: dict[str, dict[str, Regret]] = {}
    for (_, label, method), candidates in settings.groupby(["side", "resolution_label", "method"], sort=True):
        proxy = choice(candidates.loc[best_setting(candidates, "proxy")])
        truth = choice(candidates.loc[best_setting(candidates, "gold")])
        regrets.setdefault(label, {})[method] = Regret(proxy, truth)
    return Tuning(last, regrets) if regrets else None
