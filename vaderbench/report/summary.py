"""The efficiency study's summary as typed values: what `efficiency.analyse` finds, what the findings and the
README's block read, and `summary.json` as their serialisation (`to_json` / `from_json`, which round-trip).

`summary.json`'s layout (kept as the shipped reports have it):

    {"reference": method or null,
     "resolutions": {label: {"targets": {target: reward},
                             "methods": {method: {"final": interval, "seeds": n, <truth>: interval, ...,
                                                  "headroom_closed": interval,
                                                  "<spending>_to_target": {target: {"reached": "k/n",
                                                                                    "mean_of_reached": x}}}},
                             "precision": {"widest_half_width": x, "target": x, "met": bool, "seeds_needed": n}}},
     "ratios": {label: {"<reference>/<other>": {target: {spending: {"ratio": interval, "upper_bound": bool}
                                                                   or {"ratio": null, "note": why}}}}},
     "headroom": {label: {"chance": x, "base": x, "oracle": x, "<truth>_base": x, ...}},
     "gaps": {label: {measure: {"best_baseline": method, "difference": interval, "detectable": x}}},
     "slopes": {measure: interval},
     "movement": {label: {"queries_to_move": x, "methods": {method: {"gain": interval, "moved": bool,
                                                                      "queries": x}}} or null},
     "tuning": {"score_evaluations": n,
                "regrets": {label: {method: {"proxy": {"setting": {key: value}, "gold": x},
                                             "truth": {"setting": {key: value}, "gold": x}, "regret": x}}}}}

An interval is [mean, low, high], null where undefined (one seed: no bounds). A measure is `reward` (the learned
reward, final) or a truth (`gold`, `fidelity`); "gaps" and "slopes" hold the measures where they exist (a gap
needs the reference and a baseline, a slope two resolutions); "tuning" only where the study had a tuning stage.
"moved" and "regret" are read off the values beside them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: the ways a cost to a target is counted, in `summary.json`'s order: reward queries and device-seconds
SPENDINGS = ("queries", "device_s")


@dataclass(frozen=True)
class Interval:
    """A mean and its 95% interval; NaN where undefined."""

    mean: float
    low: float
    high: float

    @property
    def bounded(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def excludes(self, null: float) -> bool:
        """Whether the interval lies wholly on one side of `null` (the claim it supports)."""
        return self.bounded and (self.low > null or self.high < null)

    @classmethod
    def of(cls, estimate) -> Interval:
        """The interval of a `stats.Estimate`."""
        return cls(estimate.mean, estimate.low, estimate.high)

    def to_json(self) -> list[float | None]:
        return [None if math.isnan(v) else float(v) for v in (self.mean, self.low, self.high)]

    @classmethod
    def from_json(cls, values: list[float | None]) -> Interval:
        return cls(*(math.nan if v is None else v for v in values))


@dataclass(frozen=True)
class CostToTarget:
    """What a method's trials spent to first reach a target: how many of them reached it, and their mean."""

    reached: int
    trials: int
    mean_of_reached: float | None

    def to_json(self) -> dict[str, Any]:
        return {"reached": f"{self.reached}/{self.trials}", "mean_of_reached": self.mean_of_reached}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> CostToTarget:
        reached, trials = values["reached"].split("/")
        return cls(int(reached), int(trials), values["mean_of_reached"])


@dataclass(frozen=True)
class MethodResult:
    """One method at one resolution, over its seeds."""

    #: held-out reward after training
    final: Interval
    seeds: int
    #: truth key (`gold`, `fidelity`) -> its value on the same videos, where the world knows it
    truths: dict[str, Interval] = field(default_factory=dict)
    #: the share of the base-to-oracle headroom closed (None where the oracle or the base is unknown)
    headroom_closed: Interval | None = None
    #: spending -> target -> cost
    costs: dict[str, dict[str, CostToTarget]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {"final": self.final.to_json(), "seeds": self.seeds}
        values |= {key: truth.to_json() for key, truth in self.truths.items()}
        if self.headroom_closed is not None:
            values["headroom_closed"] = self.headroom_closed.to_json()
        for spending, per_target in self.costs.items():
            values[f"{spending}_to_target"] = {target: cost.to_json() for target, cost in per_target.items()}
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> MethodResult:
        known = {"final", "seeds", "headroom_closed", *(f"{s}_to_target" for s in SPENDINGS)}
        closed = values.get("headroom_closed")
        return cls(
            final=Interval.from_json(values["final"]),
            seeds=values["seeds"],
            truths={key: Interval.from_json(v) for key, v in values.items() if key not in known},
            headroom_closed=None if closed is None else Interval.from_json(closed),
            costs={
                spending: {t: CostToTarget.from_json(c) for t, c in values[f"{spending}_to_target"].items()}
                for spending in SPENDINGS
                if f"{spending}_to_target" in values
            },
        )


@dataclass(frozen=True)
class Gap:
    """On one measure: the reference method minus the best baseline on that measure (Welch's interval), and the
    smallest gap the study could detect."""

    best_baseline: str
    difference: Interval
    detectable: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "best_baseline": self.best_baseline,
            "difference": self.difference.to_json(),
            "detectable": self.detectable,
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Gap:
        return cls(values["best_baseline"], Interval.from_json(values["difference"]), values["detectable"])


@dataclass(frozen=True)
class Gain:
    """One method's final learned reward minus its step-0 reward, paired per seed (mean, 95% t-interval), and the
    reward queries it spent by its last evaluation (mean over seeds)."""

    gain: Interval
    queries: float

    @property
    def moved(self) -> bool:
        """Whether training moved the reward beyond the seeds' noise: the gain's interval lies above 0."""
        return bool(self.gain.bounded and self.gain.low > 0)

    def to_json(self) -> dict[str, Any]:
        return {"gain": self.gain.to_json(), "moved": self.moved, "queries": self.queries}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Gain:
        return cls(Interval.from_json(values["gain"]), values["queries"])


@dataclass(frozen=True)
class Movement:
    """Whether each method moved its reward at one resolution, and the reward queries the reference needed to
    move its own: the first evaluation at which its mean gain over seeds has a 95% interval above 0 (None: never)."""

    methods: dict[str, Gain]
    queries_to_move: float | None

    def budget_ratio(self, method: str) -> float | None:
        """The queries `method` spent over those the reference needed to move (None where it never moved)."""
        return None if not self.queries_to_move else self.methods[method].queries / self.queries_to_move

    def to_json(self) -> dict[str, Any]:
        return {
            "queries_to_move": self.queries_to_move,
            "methods": {method: gain.to_json() for method, gain in self.methods.items()},
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Movement:
        return cls({m: Gain.from_json(g) for m, g in values["methods"].items()}, values["queries_to_move"])


@dataclass(frozen=True)
class Choice:
    """A tuning setting (its tuned keys as logged) and its gold score (the tuning score's rule on gold)."""

    setting: dict[str, str]
    gold: float

    def to_json(self) -> dict[str, Any]:
        return {"setting": self.setting, "gold": self.gold}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Choice:
        return cls(values["setting"], values["gold"])


@dataclass(frozen=True)
class Regret:
    """One method's tuning at one resolution: the setting chosen on the proxy (the tuning score) and the one a
    user who saw the truth would have chosen (the same rule on gold)."""

    proxy: Choice
    truth: Choice

    @property
    def regret(self) -> float:
        """The gold the proxy's choice gave up (0 where both chose the same setting)."""
        return self.truth.gold - self.proxy.gold

    def to_json(self) -> dict[str, Any]:
        return {"proxy": self.proxy.to_json(), "truth": self.truth.to_json(), "regret": self.regret}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Regret:
        return cls(Choice.from_json(values["proxy"]), Choice.from_json(values["truth"]))


@dataclass(frozen=True)
class Tuning:
    """The tuning stage's regret: label -> method -> regret, with the evaluations a score averages."""

    score_evaluations: int
    regrets: dict[str, dict[str, Regret]]

    def to_json(self) -> dict[str, Any]:
        return {
            "score_evaluations": self.score_evaluations,
            "regrets": {
                label: {method: regret.to_json() for method, regret in per_method.items()}
                for label, per_method in self.regrets.items()
            },
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Tuning:
        return cls(
            values["score_evaluations"],
            {
                label: {method: Regret.from_json(r) for method, r in per_method.items()}
                for label, per_method in values["regrets"].items()
            },
        )


@dataclass(frozen=True)
class Precision:
    """The widest final-reward half-width against the precision target, and the seeds that would meet it."""

    widest_half_width: float | None
    target: float | None
    met: bool | None
    seeds_needed: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Precision:
        return cls(**values)


@dataclass(frozen=True)
class Ratio:
    """Reference / another method of the mean cost to a target: None with a note where the reference missed
    it in some seed; an upper bound where the other method did."""

    ratio: Interval | None
    upper_bound: bool = False
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.ratio is None:
            return {"ratio": None, "note": self.note}
        return {"ratio": self.ratio.to_json(), "upper_bound": self.upper_bound}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Ratio:
        if values["ratio"] is None:
            return cls(None, note=values["note"])
        return cls(Interval.from_json(values["ratio"]), upper_bound=values["upper_bound"])


@dataclass(frozen=True)
class Headroom:
    """The reward of chance videos, of the base model and of the oracle render on the evaluation prompts, and
    the base model's value of each truth."""

    chance: float | None
    base: float | None
    oracle: float | None
    truth_bases: dict[str, float] = field(default_factory=dict)

    @property
    def span(self) -> float | None:
        """Oracle minus base (None where either is unknown)."""
        return None if self.oracle is None or self.base is None else self.oracle - self.base

    def to_json(self) -> dict[str, Any]:
        own = {"chance": self.chance, "base": self.base, "oracle": self.oracle}
        return own | {f"{key}_base": value for key, value in self.truth_bases.items()}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Headroom:
        bases = {key.removesuffix("_base"): v for key, v in values.items() if key not in ("chance", "base", "oracle")}
        return cls(values["chance"], values["base"], values["oracle"], bases)


@dataclass(frozen=True)
class TruthAt:
    """One truth at one resolution: the base model's value and each method's after training."""

    base: float
    after: dict[str, Interval]


@dataclass(frozen=True)
class Resolution:
    """Everything the summary says at one resolution."""

    #: target name -> reward (`best_baseline`, `half_headroom`)
    targets: dict[str, float]
    methods: dict[str, MethodResult]
    headroom: Headroom
    precision: Precision
    #: measure (`reward`, `gold`, `fidelity`) -> the reference minus the best baseline on it
    gaps: dict[str, Gap] = field(default_factory=dict)
    #: other method -> target -> spending -> reference / other
    ratios: dict[str, dict[str, dict[str, Ratio]]] = field(default_factory=dict)
    movement: Movement | None = None

    def truth(self, key: str) -> TruthAt | None:
        """Truth `key` where it was logged (methods in the summary's order); None elsewhere."""
        base = self.headroom.truth_bases.get(key)
        after = {m: result.truths[key] for m, result in self.methods.items() if key in result.truths}
        return TruthAt(base, after) if after and base is not None else None


@dataclass(frozen=True)
class Summary:
    """An efficiency study's summary (see the module's docstring)."""

    #: the method the others are compared with (the reward-gradient one), None when the study has none
    reference: str | None
    #: resolution label -> what was found there, in the study's order of resolutions
    resolutions: dict[str, Resolution]
    #: measure -> its gap against log2(resolution): a least-squares slope with its bootstrap interval
    slopes: dict[str, Interval] = field(default_factory=dict)
    tuning: Tuning | None = None

    def to_json(self) -> str:
        """`summary.json`'s text."""
        ratio_pairs = {
            label: {
                f"{self.reference}/{other}": {
                    target: {spending: ratio.to_json() for spending, ratio in per_spending.items()}
                    for target, per_spending in per_target.items()
                }
                for other, per_target in at.ratios.items()
            }
            for label, at in self.resolutions.items()
        }
        values: dict[str, Any] = {
            "reference": self.reference,
            "resolutions": {label: resolution_json(at) for label, at in self.resolutions.items()},
            "ratios": ratio_pairs,
            "headroom": {label: at.headroom.to_json() for label, at in self.resolutions.items()},
            "gaps": {
                label: {measure: gap.to_json() for measure, gap in at.gaps.items()}
                for label, at in self.resolutions.items()
            },
            "slopes": {measure: slope.to_json() for measure, slope in self.slopes.items()},
            "movement": {
                label: None if at.movement is None else at.movement.to_json() for label, at in self.resolutions.items()
            },
        }
        if self.tuning is not None:
            values["tuning"] = self.tuning.to_json()
        return json.dumps(values, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Summary:
        values = json.loads(text)
        reference = values["reference"]
        resolutions = {}
        for label, at in values["resolutions"].items():
            pairs = values["ratios"][label]
            resolutions[label] = Resolution(
                targets=at["targets"],
                methods={m: MethodResult.from_json(result) for m, result in at["methods"].items()},
                headroom=Headroom.from_json(values["headroom"][label]),
                precision=Precision.from_json(at["precision"]),
                gaps={measure: Gap.from_json(gap) for measure, gap in values["gaps"][label].items()},
                ratios={
                    pair.removeprefix(f"{reference}/"): {
                        target: {spending: Ratio.from_json(cell) for spending, cell in per_spending.items()}
                        for target, per_spending in per_target.items()
                    }
                    for pair, per_target in pairs.items()
                },
                movement=None if (moved := values["movement"][label]) is None else Movement.from_json(moved),
            )
        return cls(
            reference,
            resolutions,
            slopes={measure: Interval.from_json(slope) for measure, slope in values["slopes"].items()},
            tuning=Tuning.from_json(values["tuning"]) if "tuning" in values else None,
        )


def resolution_json(at: Resolution) -> dict[str, Any]:
    values: dict[str, Any] = {
        "targets": at.targets,
        "methods": {method: result.to_json() for method, result in at.methods.items()},
    }
    values["precision"] = at.precision.to_json()
    return values
