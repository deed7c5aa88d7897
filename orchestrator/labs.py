"""Load lab files (YAML) into frozen dataclasses and validate them.

A lab file is data: a topology, scenarios made of steps that name registered
actions, and expectations that name registered metrics. Everything a typo could
break is checked here, before a container starts (see `lab validate`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import LabFileError, UsageError
from .paths import LABS_DIR

PERSISTENCE_MODES = ("none", "rdb", "aof-everysec", "aof-always", "rdb+aof")
TOPOLOGY_KINDS = ("single", "replication", "sentinel", "cluster")
# Sentinel settings a lab file may give (per monitored master), with Redis' own defaults
# replaced by lab-friendly ones where they only shorten waits.
SENTINEL_SETTINGS = ("quorum", "down-after-milliseconds", "failover-timeout", "parallel-syncs")
AOF_MODES = ("aof-everysec", "aof-always", "rdb+aof")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(value: Any) -> float:
    """'2s', '500ms', '1m' or a number of seconds -> seconds (float). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r} (a number of seconds >= 0)")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (write 2s, 500ms or 1m)")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


@dataclass(frozen=True)
class Bound:
    """An expected range for one metric; either side may be open."""

    min: float | None = None
    max: float | None = None

    def holds(self, observed: float | None) -> bool:
        if observed is None:
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
        values = " ".join(str(v) for v in self.args.values())
        return f"{self.action} {values}".strip()


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

    def expectations(self, mode: str) -> dict[str, Bound]:
        """The bounds that hold in `mode`: the common ones overlaid with the mode's own."""
        merged = dict(self.expect)
        merged.update(self.expect_by_mode.get(mode, {}))
        return merged


@dataclass(frozen=True)
class TopologySpec:
    kind: str                      # single | replication | sentinel
    persistence: str
    modes: tuple[str, ...]
    save: str
    config: Mapping[str, Any]      # redis.conf settings for every data node
    replicas: int = 0              # replicas of the master (replication, sentinel); of each master (cluster)
    sentinels: int = 0             # Sentinel processes (sentinel)
    masters: int = 1               # masters, each serving a share of the slots (cluster)
    sentinel: Mapping[str, str] = field(default_factory=dict)  # SENTINEL_SETTINGS given by the file


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


# ---------------------------------------------------------------- finding labs

def lab_names() -> list[str]:
    return sorted(p.stem for p in LABS_DIR.glob("*.yaml"))


def lab_path(name_or_path: str) -> Path:
    """A lab name from labs/ or the path of a lab file of the user's own."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise UsageError(f"no lab file at {name_or_path}", "give the path of a .yaml lab file or a name from `lab list`")
        return candidate
    path = LABS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UsageError(f"unknown lab {name_or_path!r}", f"choose one of: {', '.join(lab_names())} (or a path to a lab file)")
    return path


def load_lab(name_or_path: str) -> Lab:
    return parse_lab(lab_path(name_or_path))


def load_all_labs() -> list[Lab]:
    return [load_lab(name) for name in lab_names()]


# ---------------------------------------------------------------- parsing

def parse_lab(path: Path) -> Lab:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise LabFileError(path, "", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise LabFileError(path, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return _Parser(path).lab(raw)


class _Parser:
    """Turns the YAML tree into dataclasses; every error names the key path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str):
        raise LabFileError(self.path, key, problem)

    def mapping(self, value, key: str, allowed: set[str] | None = None, required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for name in required:
            if name not in value:
                self.fail(f"{key}.{name}" if key else name, "is required")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    self.fail(f"{key}.{name}" if key else str(name), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def text(self, value, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "must be a non-empty string")
        return value.strip()

    def modes(self, value, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(key, "must be a non-empty list of modes")
        for mode in value:
            if mode not in PERSISTENCE_MODES:
                self.fail(key, f"unknown mode {mode!r} (known: {', '.join(PERSISTENCE_MODES)})")
        return tuple(value)

    def config(self, value, key: str) -> dict:
        value = self.mapping(value or {}, key)
        for name, setting in value.items():
            if not isinstance(setting, (str, int, float)) or isinstance(setting, bool):
                self.fail(f"{key}.{name}", "redis.conf values must be strings or numbers (write \"yes\"/\"no\" in quotes)")
            if not re.fullmatch(r"[A-Za-z0-9-]+", str(name)) or "\n" in str(setting) or "\r" in str(setting):
                self.fail(f"{key}.{name}", "a redis.conf setting is one directive name and a one-line value")
        return {str(k): str(v) for k, v in value.items()}

    def lab(self, raw) -> Lab:
        raw = self.mapping(raw, "", {"name", "summary", "topology", "scenarios"}, ("name", "summary", "topology", "scenarios"))
        name = self.text(raw["name"], "name")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            self.fail("name", "use lower-case letters, digits and dashes (it names Docker resources)")
        topology = self.topology(raw["topology"])
        scenarios_raw = self.mapping(raw["scenarios"], "scenarios")
        if not scenarios_raw:
            self.fail("scenarios", "a lab needs at least one scenario")
        scenarios = {str(n): self.scenario(str(n), s, topology) for n, s in scenarios_raw.items()}
        return Lab(name=name, summary=self.text(raw["summary"], "summary"), path=self.path,
                   topology=topology, scenarios=scenarios)

    def topology(self, raw) -> TopologySpec:
        key = "topology"
        raw = self.mapping(raw, key, {"kind", "persistence", "modes", "save", "config", "replicas", "sentinels",
                                      "sentinel", "masters"}, ("kind",))
        kind = raw["kind"]
        if kind not in TOPOLOGY_KINDS:
            self.fail(f"{key}.kind", f"unknown topology kind {kind!r} (known: {', '.join(TOPOLOGY_KINDS)})")
        persistence = raw.get("persistence", "rdb")
        if persistence not in PERSISTENCE_MODES:
            self.fail(f"{key}.persistence", f"unknown mode {persistence!r} (known: {', '.join(PERSISTENCE_MODES)})")
        modes = self.modes(raw.get("modes", [persistence]), f"{key}.modes")
        save = raw.get("save", "3600 1 300 100 60 10000")
        if not isinstance(save, str) or not re.fullmatch(r"(\s*\d+\s+\d+)+\s*", save):
            self.fail(f"{key}.save", "save points are pairs of numbers: \"<seconds> <changes> ...\"")
        replicas = self.size(raw, "replicas", kind, {"replication", "sentinel", "cluster"},
                             default=1 if kind == "cluster" else 2, most=5)
        sentinels = self.size(raw, "sentinels", kind, {"sentinel"}, default=3, most=7)
        masters = self.size(raw, "masters", kind, {"cluster"}, default=3, most=5) or 1
        if kind == "cluster" and masters < 3:
            self.fail(f"{key}.masters", "a Redis Cluster needs at least 3 masters (a majority must be able to vote)")
        sentinel = {}
        if "sentinel" in raw:
            if kind != "sentinel":
                self.fail(f"{key}.sentinel", f"only a sentinel topology has Sentinel settings (this one is {kind})")
            sentinel = self.config(raw["sentinel"], f"{key}.sentinel")
            for name, value in sentinel.items():
                if name not in SENTINEL_SETTINGS:
                    self.fail(f"{key}.sentinel.{name}", f"unknown Sentinel setting (known: {', '.join(SENTINEL_SETTINGS)})")
                if not re.fullmatch(r"[1-9][0-9]*", value):
                    self.fail(f"{key}.sentinel.{name}", f"must be a whole number greater than 0, not {value!r}")
            if int(sentinel.get("quorum", 1)) > sentinels:
                self.fail(f"{key}.sentinel.quorum", f"must be a whole number from 1 to {sentinels} (the number of Sentinels)")
        return TopologySpec(kind=kind, persistence=persistence, modes=modes, save=save.strip(),
                            config=self.config(raw.get("config"), f"{key}.config"),
                            replicas=replicas, sentinels=sentinels, sentinel=sentinel, masters=masters)

    def size(self, raw: dict, name: str, kind: str, kinds: set[str], default: int, most: int) -> int:
        """A node count: allowed only for `kinds`, a whole number from 1 to `most`."""
        key = f"topology.{name}"
        if kind not in kinds:
            if name in raw:
                self.fail(key, f"a {kind} topology has no {name} (only {', '.join(sorted(kinds))} do)")
            return 0
        value = raw.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            self.fail(key, f"must be a whole number from 1 to {most}")
        return value

    def scenario(self, name: str, raw, topology: TopologySpec) -> Scenario:
        key = f"scenarios.{name}"
        raw = self.mapping(raw, key, {"summary", "explain", "steps", "modes", "config", "expect", "expect_by_mode"},
                           ("summary", "explain", "steps"))
        modes = self.modes(raw.get("modes", list(topology.modes)), f"{key}.modes")
        steps_raw = raw["steps"]
        if not isinstance(steps_raw, list) or not steps_raw:
            self.fail(f"{key}.steps", "must be a non-empty list of steps")
        steps = tuple(self.step(s, f"{key}.steps[{i}]", i) for i, s in enumerate(steps_raw))
        if not any(s.action == "probe" and s.args.get("command") == "start" for s in steps):
            self.fail(f"{key}.steps", "nothing would be measured: add `- probe: start` before the fault")
        expect = self.bounds(raw.get("expect", {}), f"{key}.expect")
        by_mode_raw = self.mapping(raw.get("expect_by_mode", {}), f"{key}.expect_by_mode")
        by_mode = {}
        for mode, bounds in by_mode_raw.items():
            if mode not in modes:
                self.fail(f"{key}.expect_by_mode.{mode}", f"not one of this scenario's modes ({', '.join(modes)})")
            by_mode[mode] = self.bounds(bounds, f"{key}.expect_by_mode.{mode}")
        for mode in modes:
            if not expect and not by_mode.get(mode):
                self.fail(f"{key}.expect", f"no expectation for mode {mode!r}: a scenario must state what should happen")
        return Scenario(name=name, summary=self.text(raw["summary"], f"{key}.summary"),
                        explain=" ".join(self.text(raw["explain"], f"{key}.explain").split()),
                        steps=steps, modes=modes, config=self.config(raw.get("config"), f"{key}.config"),
                        expect=expect, expect_by_mode=by_mode)

    def step(self, raw, key: str, index: int) -> Step:
        from .actions import ACTIONS

        if not isinstance(raw, dict) or len(raw) != 1:
            self.fail(key, "a step is a mapping with one action, e.g. `- kill: master`")
        (action, arg), = raw.items()
        if action not in ACTIONS:
            self.fail(key, f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")
        spec = ACTIONS[action]
        try:
            args = spec.bind(arg)
        except (TypeError, ValueError) as exc:
            self.fail(f"{key}.{action}", f"{exc} (usage: {spec.usage()})")
        return Step(action=action, args=args, index=index)

    def bounds(self, raw, key: str) -> dict[str, Bound]:
        from .metrics import METRICS

        raw = self.mapping(raw or {}, key)
        result = {}
        for metric, bound in raw.items():
            if metric not in METRICS:
                self.fail(f"{key}.{metric}", f"unknown metric (known: {', '.join(METRICS)})")
            bound = self.mapping(bound, f"{key}.{metric}", {"min", "max"})
            if not bound:
                self.fail(f"{key}.{metric}", "give min, max or both")
            for side, value in bound.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    self.fail(f"{key}.{metric}.{side}", "must be a number")
            if "min" in bound and "max" in bound and bound["min"] > bound["max"]:
                self.fail(f"{key}.{metric}", "min is greater than max")
            result[metric] = Bound(min=bound.get("min"), max=bound.get("max"))
        return result

