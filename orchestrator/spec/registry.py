"""The registries lab files are checked against: topology kinds, step actions, workloads and
metrics. `spec` only keeps them; the plug-in packages fill them when imported
(`orchestrator.kinds`, `.faults`, `.workloads`, `.measure.metrics`), and `load_plugins()`
imports those by name, as entry points would be loaded, so no import arrow points up.

Applicability is declared where a thing is defined and checked here, in one place:
- a kind declares its *capabilities* (`network`: a lab network that can be cut; `replicaof`:
  replicas that follow a master by REPLICAOF; `failover`: servers that elect a new master and
  announce it; `slots`: cluster slots), the roles it resolves and the wait conditions it answers;
- an action or metric declares the capabilities it requires, and the persistence modes it
  applies to; a metric also the workload it reads and the actions it needs in the scenario.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from .params import Param, bind

PLUGIN_PACKAGES = ("orchestrator.workloads", "orchestrator.measure.metrics", "orchestrator.kinds",
                   "orchestrator.faults")
FAULT, RESTART = "fault", "restart"    # step marks the metrics time from


def load_plugins() -> None:
    """Import the packages that fill the registries (once; later calls cost nothing)."""
    for name in PLUGIN_PACKAGES:
        importlib.import_module(name)


# ------------------------------------------------------------------ kinds

class KindDecl(Protocol):
    """What validation asks of a topology kind (see orchestrator/kinds/base.py for the whole interface)."""

    name: str
    summary: str
    fields: tuple[Param, ...]          # topology keys beyond kind, persistence, modes, save, config
    capabilities: frozenset[str]
    conditions: tuple[str, ...]        # wait_for conditions it answers beyond ready and exited

    def check_params(self, params: dict[str, Any]) -> tuple[str, str] | None:
        """(key, problem) for a cross-field problem of the topology fields, or None."""

    def owned_settings(self) -> Mapping[str, str]:
        """redis.conf settings the kind sets itself -> why a lab file may not set them."""

    def targets(self, params: Mapping[str, Any], uses: Callable[[str], bool]) -> tuple[str, ...]:
        """Node names and roles a step may target in a lab of this shape."""

    def replicas_per_master(self, params: Mapping[str, Any]) -> int:
        """How many replicas each master has (what WAIT can count on)."""

    def node_count(self, params: Mapping[str, Any], uses: Callable[[str], bool]) -> int:
        """How many host ports a run needs."""


KINDS: dict[str, KindDecl] = {}
GENERIC_CONDITIONS = ("ready", "exited")
CONDITIONS: list[str] = list(GENERIC_CONDITIONS)   # grows as kinds register theirs


def register_kind(kind: KindDecl) -> KindDecl:
    KINDS[kind.name] = kind
    known = {c for k in KINDS.values() for c in k.conditions} - set(GENERIC_CONDITIONS)
    CONDITIONS[:] = list(GENERIC_CONDITIONS) + sorted(known)    # the same order whichever kind came first
    return kind


# ------------------------------------------------------------------ actions

@dataclass(frozen=True)
class Action:
    """A step a lab file may name. `func(ctx, **args)` carries it out."""

    name: str
    func: Callable
    summary: str
    params: tuple[Param, ...] = ()
    mark: str | None = None                      # FAULT or RESTART: a time the metrics use
    requires: frozenset[str] = frozenset()       # kind capabilities it needs
    modes: tuple[str, ...] | None = None         # persistence modes it applies to (None: all)
    workloads: tuple[str, ...] | None = None     # workloads it acts on (None: any; e.g. killing a consumer)
    open_options: bool = False                   # passes further names on (the probe's workload options)

    def usage(self) -> str:
        parts = [p.usage() for p in self.params]
        return f"{self.name}: {', '.join(parts)}" if parts else f"{self.name}: (no arguments)"

    def bind(self, arg: Any) -> dict[str, Any]:
        """Bind what the lab file gives to the parameters; raises TypeError/ValueError."""
        return bind(self.params, arg, self.open_options)

    def targets(self, args: Mapping[str, Any]) -> list[str]:
        return [args[p.name] for p in self.params if p.type == "target" and p.name in args]


ACTIONS: dict[str, Action] = {}


def action(name: str, summary: str, params: tuple[Param, ...] = (), **options):
    """Register the decorated function as the step `name`."""
    def register(func):
        ACTIONS[name] = Action(name=name, func=func, summary=summary, params=tuple(params), **options)
        return func
    return register


# ------------------------------------------------------------------ workloads

class WorkloadDecl(Protocol):
    name: str
    summary: str
    options: tuple[Param, ...]
    history: str        # what its observe() returns, which its metrics read: "writes" (keys written), "messages"

    def check_options(self, options: Mapping[str, Any], kind: KindDecl,
                      params: Mapping[str, Any]) -> tuple[str, str] | None:
        """(option, problem) for an option that does not apply to this lab, or None."""

    def check_step(self, action: str, args: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[str, str] | None:
        """(argument, problem) for a step that acts on the workload (an action declaring
        `workloads`) but names something it does not have (a consumer), or None."""


WORKLOADS: dict[str, WorkloadDecl] = {}


def history_of(workload: str) -> str:
    """The kind of history a workload records (several workloads may record writes)."""
    return getattr(WORKLOADS.get(workload), "history", workload)


def register_workload(workload):
    WORKLOADS[workload.name] = workload
    return workload


# ------------------------------------------------------------------ metrics

@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    short: str                                   # one line for tables
    compute: Callable[[Any], float | int | None]
    requires: frozenset[str] = frozenset()       # kind capabilities
    workload: str | None = "writes"              # the history it reads ("writes", "messages"; None: any)
    needs: tuple[str, ...] = ()                  # actions of which the scenario must use one

    @property
    def method(self) -> str:
        return " ".join((self.compute.__doc__ or "").split())

    def applies(self, capabilities: frozenset[str], workload: str, uses: Callable[[str], bool]) -> str | None:
        """None if the metric can be measured in such a run, else why not."""
        missing = self.requires - capabilities
        if missing:
            return f"needs a topology with {', '.join(sorted(missing))}"
        history = history_of(workload)
        if self.workload is not None and self.workload != history:
            return f"is measured on a {self.workload} history (this scenario's {workload} workload records {history})"
        if self.needs and not any(uses(a) for a in self.needs):
            return f"needs a {' or '.join(self.needs)} step"
        return None


METRICS: dict[str, Metric] = {}


def metric(name: str, unit: str, short: str, **options):
    """Register the decorated function (Observation -> value) as the metric `name`; its
    docstring says how it is measured (`lab run --explain`)."""
    def register(func):
        METRICS[name] = Metric(name=name, unit=unit, short=short, compute=func, **options)
        return func
    return register


@dataclass(frozen=True)
class Applicability:
    """The facts applicability is judged on for one scenario of one lab."""

    kind: KindDecl
    params: Mapping[str, Any]
    workload: str
    actions: frozenset[str] = field(default_factory=frozenset)

    def uses(self, action_name: str) -> bool:
        return action_name in self.actions

    def metrics(self) -> dict[str, Metric]:
        """The metrics a run of this scenario reports, in the order reports show them."""
        return {m.name: m for m in ordered_metrics()
                if m.applies(self.kind.capabilities, self.workload, self.uses) is None}


def ordered_metrics() -> list[Metric]:
    """Every metric in report order: the workload's own first, then what every kind's servers
    report, then the kinds' own; registration order within each (modules register in a fixed
    order of their own, whichever of them is imported first)."""
    def group(m: Metric) -> int:
        return 0 if m.workload is not None else 2 if m.requires else 1
    return sorted(METRICS.values(), key=group)
