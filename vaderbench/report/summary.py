"""The efficiency study's summary as typed values: what `efficiency.analyse` finds, what the findings and the
README's block read, and `summary.json` as their serialisation (`to_json` / `from_json`, which round-trip).

`summary.json`'s layout (kept as the shipped reports have it):

    {"reference": method or null,
     "resolutions": {label: {"targets": {target: reward},
                             "methods": {method: {"final": interval, "seeds": n, <truth>: interval, ...,
                                                  "headroom_closed": interval,
                                                  "<spending>_to_target": {target: {"reached": "k/n",
                                                                                    "mean_of_reached": x}}}},
                             "gap": {"best_baseline": method, "difference": interval, "detectable": x},
                             "precision": {"widest_half_width": x, "target": x, "met": bool, "seeds_needed": n}}},
     "ratios": {label: {"<reference>/<other>": {target: {spending: {"ratio": interval, "upper_bound": bool}
                                                                   or {"ratio": null, "note": why}}}}},
     "headroom": {label: {"chance": x, "base": x, "oracle": x, "<truth>_base": x, ...}},
     "gap_slope": interval}

An interval is [mean, low, high], null where undefined (one seed: no bounds); "gap" and "gap_slope" only where
they exist.
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
    """The reference method minus the best baseline (Welch's interval), and the smallest gap detectable."""

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
    gap: Gap | None = None
    #: other method -> target -> spending -> reference / other
    ratios: dict[str, dict[str, dict[str, Ratio]]] = field(default_factory=dict)

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
    #: the gap against log2(resolution): a least-squares slope with its bootstrap interval
    gap_slope: Interval | None = None

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
        }
        if self.gap_slope is not None:
            values["gap_slope"] = self.gap_slope.to_json()
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
                gap=Gap.from_json(at["gap"]) if "gap" in at else None,
                ratios={
                    pair.removeprefix(f"{reference}/"): {
                        target: {spending: Ratio.from_json(cell) for spending, cell in per_spending.items()}
                        for target, per_spending in per_target.items()
                    }
                    for pair, per_target in pairs.items()
                },
            )
        slope = values.get("gap_slope")
        return cls(reference, resolutions, None if slope is None else Interval.from_json(slope))


def resolution_json(at: Resolution) -> dict[str, Any]:
    values: dict[str, Any] = {
        "targets": at.targets,
        "methods": {method: result.to_json() for method, result in at.methods.items()},
    }
    if at.gap is not None:
        values["gap"] = at.gap.to_json()
    values["precision"] = at.precision.to_json()
    return values
