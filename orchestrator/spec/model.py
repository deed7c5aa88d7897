"""A lab file as frozen dataclasses: what `spec.load` returns and everything else reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

PERSISTENCE_MODES = ("none", "rdb", "aof-no", "aof-everysec", "aof-always", "rdb+aof")
AOF_MODES = ("aof-no", "aof-everysec", "aof-always", "rdb+aof")
DEFAULT_WORKLOAD = "writes"


@dataclass(frozen=True)
class Bound:
    """An expected range for one metric; either side may be open. Both sides are finite."""

    min: float | None = None
    max: float | None = None

    def holds(self, observed: float | None) -> bool:
        if observed is None or (isinstance(observed, float) and not math.isfinite(observed)):
            return False
        if self.min is not None and observed < self.min:
            return False
        return self.max is None or observed <= self.max

    def as_dict(self) -> dict:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return f"= {_fmt(self.min)}" if self.min == self.max else f"{_fmt(self.min)} .. {_fmt(self.max)}"
        return f">= {_fmt(self.min)}" if self.min is not None else f"<= {_fmt(self.max)}"


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Step:
    action: str
    args: Mapping[str, Any]
    index: int

    def describe(self) -> str:
        values = " ".join(str(v) for v in self.args.values() if not isinstance(v, Mapping))
        return f"{self.action} {values}".strip()


@dataclass(frozen=True)
class WorkloadSpec:
    """Which workload a scenario runs (a registry key) and the options the lab file gave it."""

    name: str = DEFAULT_WORKLOAD
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    explain: str
    steps: tuple[Step, ...]
    modes: tuple[str, ...]
    config: Mapping[str, Any]
    expect: Mapping[str, Bound]
    expect_by_mode: Mapping[str, Mapping[str, Bound]]
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)

    def expectations(self, mode: str) -> dict[str, Bound]:
        """The bounds that hold in `mode`: the common ones overlaid with the mode's own."""
        merged = dict(self.expect)
        merged.update(self.expect_by_mode.get(mode, {}))
        return merged

    def uses(self, action: str) -> bool:
        return any(step.action == action for step in self.steps)


@dataclass(frozen=True)
class TopologySpec:
    """The lab file's `topology:`. `params` holds the fields the kind declares (replicas,
    sentinels, masters, sentinel settings, ...), already validated by it; they read as
    attributes too (`spec.replicas`)."""

    kind: str
    persistence: str
    modes: tuple[str, ...]
    save: str
    config: Mapping[str, str]       # redis.conf settings for every data node
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str):
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"a {self.__dict__.get('kind')} topology has no {name!r}")


@dataclass(frozen=True)
class Lab:
    name: str
    summary: str
    path: Path
    topology: TopologySpec
    scenarios: Mapping[str, Scenario] = field(default_factory=dict)

    def scenario(self, name: str) -> Scenario:
        try:
            return self.scenarios[name]
        except KeyError:
            known = ", ".join(self.scenarios)
            raise UsageError(f"lab {self.name!r} has no scenario {name!r}", f"choose one of: {known}") from None

    def check_mode(self, mode: str) -> str:
        if mode not in PERSISTENCE_MODES:
            raise UsageError(f"unknown mode {mode!r}", f"choose one of: {', '.join(PERSISTENCE_MODES)}")
        return mode

    def default_mode(self, scenario: Scenario) -> str:
        """The lab's persistence mode if the scenario runs in it, else the scenario's first mode."""
        return self.topology.persistence if self.topology.persistence in scenario.modes else scenario.modes[0]

    def modes_to_run(self, scenario: Scenario, requested: str | None) -> list[str]:
        """All modes of the scenario, or the requested one (validated)."""
        if requested is None:
            return list(scenario.modes)
        self.check_mode(requested)
        if requested not in scenario.modes:
            raise UsageError(f"scenario {scenario.name!r} does not run in mode {requested!r}",
                             f"its modes are: {', '.join(scenario.modes)}")
        return [requested]
