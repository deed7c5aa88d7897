"""Run one scenario of a lab in one mode: bring the lab up, run the steps with the probe
writing, read back, compute metrics, check expectations; always heal and tear down."""

from __future__ import annotations

import secrets
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from .actions import ACTIONS, RESTART
from .context import Event, RunContext
from .errors import UsageError
from .expect import Check, check_expectations
from .labs import Lab, Scenario
from .lifecycle import (RunSettings, bring_up, preflight, prepare, shielded_from_interrupts, sigterm_as_interrupt,
                        teardown)
from .metrics import compute_metrics, shard_rows
from .observe import client_events, final_roles, observe, promotions, server_events
from .paths import state_dir
from .probe import error_counts
from .runtime import Engine
from .topology import Node, Topology, derive_topology


@dataclass
class Result:
    lab: str
    scenario: str
    mode: str
    image: str
    summary: str
    explain: str
    passed: bool
    duration_s: float
    metrics: dict
    checks: list[Check]
    events: list[Event]
    error_kinds: dict[str, int] = field(default_factory=dict)
    waited_s: float = 0.0          # time spent in `wait` steps (inherent to the scenario)
    phases: dict[str, float] = field(default_factory=dict)  # wall time of up, steps, read-back, teardown
    roles: dict[str, str] = field(default_factory=dict)     # data node -> role at the end, as INFO says
    error: str = ""                # why the scenario stopped before it could be measured
    shards: list[dict] = field(default_factory=list)         # cluster: figures per shard (metrics.shard_rows)
    promoted: list[str] = field(default_factory=list)        # each failover: who became master

    def as_dict(self) -> dict:
        return {"lab": self.lab, "scenario": self.scenario, "mode": self.mode, "image": self.image,
                "passed": self.passed, "duration_s": round(self.duration_s, 3),
                "metrics": self.metrics, "checks": [c.as_dict() for c in self.checks],
                "events": [e.as_dict() for e in self.events], "roles": self.roles, "promoted": self.promoted,
                "shards": self.shards, "error": self.error, "error_kinds": self.error_kinds,
                "waited_s": round(self.waited_s, 3),
                "phases_s": {k: round(v, 3) for k, v in self.phases.items()}}


def run_steps(ctx: RunContext, scenario: Scenario) -> None:
    for step in scenario.steps:
        spec = ACTIONS[step.action]
        invoked = ctx.clock()
        if step.action != "probe":   # the probe says itself when it starts and stops
            ctx.event(step.describe())
        described = len(ctx.events) - 1
        ctx.last_resolved = None
        spec.func(ctx, **step.args)
        returned = ctx.clock()
        node = ctx.last_resolved
        if step.action != "probe" and node is not None and node.name not in ctx.events[described].what:
            # a role resolved when the step ran: say which node it was
            ctx.events[described] = replace(ctx.events[described], what=f"{ctx.events[described].what} ({node.name})")
        if spec.mark and spec.mark not in ctx.marks and _marks_the_probe(ctx, spec.mark, node):
            ctx.marks[spec.mark] = (invoked, returned)


def _marks_the_probe(ctx: RunContext, mark: str, node: Node | None) -> bool:
    """Whether a fault or restart step is one the probe's metrics should time: not a step on a
    Sentinel, and a restart only of the node the probe last wrote to (restarting an old master
    after a failover does not bring the probe's writes back)."""
    if node is not None and node.is_sentinel:
        return False
    if mark == RESTART and node is not None and ctx.probe is not None and ctx.probe.connections:
        return ctx.probe.connections[-1][1] == node.host_port
    return True


def default_mode(lab: Lab, scenario: Scenario) -> str:
    """The lab's persistence mode if the scenario runs in it, else the scenario's first mode."""
    return lab.topology.persistence if lab.topology.persistence in scenario.modes else scenario.modes[0]


def run_scenario(lab: Lab, scenario_name: str, mode: str | None, settings: RunSettings,
                 engine: Engine | None = None, run_id: str | None = None) -> Result:
    """Run one scenario in one mode (default: `default_mode`) and return its Result.
    Raises LabError subclasses for what the user can fix; the lab is removed in every case
    unless `settings.keep`. `run_id` (default: a new one) labels everything the run makes."""
    scenario = lab.scenario(scenario_name)
    mode = modes_to_run(lab, scenario, mode)[0] if mode else default_mode(lab, scenario)
    engine = engine or Engine()
    topo = derive_topology(lab, mode, run_id=run_id or new_run_id(), image=settings.image,
                           port_base=settings.port_base, scenario=scenario)
    preflight(topo, engine)
    started = time.monotonic()
    phases: dict[str, float] = {}
    ctx: RunContext | None = None
    with sigterm_as_interrupt(), project_directory(topo, settings.keep) as project_dir:
        runtime = prepare(topo, project_dir)
        try:
            bring_up(runtime)
            phases["up"] = time.monotonic() - started
            ctx = RunContext(topo, runtime)
            ctx.start_watch()
            ctx.event(f"lab up: {', '.join(n.name for n in topo.nodes)} ready ({mode})")
            try:
                run_steps(ctx, scenario)
            finally:
                ctx.heal_all()
            phases["steps"] = time.monotonic() - started - phases["up"]
            obs = observe(ctx)
            roles = final_roles(topo)
            phases["read_back"] = time.monotonic() - started - phases["up"] - phases["steps"]
        finally:
            with shielded_from_interrupts():
                if ctx is not None:
                    ctx.close()
                if not settings.keep:
                    phases["teardown"] = teardown(runtime)
    metrics = compute_metrics(obs)
    checks = check_expectations(scenario.expectations(mode), metrics)
    events = sorted(ctx.events + client_events(ctx, obs) + server_events(ctx, obs), key=lambda e: e.t)
    return Result(lab=lab.name, scenario=scenario.name, mode=mode, image=settings.image,
                  summary=scenario.summary, explain=scenario.explain,
                  passed=all(c.passed for c in checks), duration_s=time.monotonic() - started,
                  metrics=metrics, checks=checks, events=events,
                  error_kinds=dict(error_counts(obs.attempts)), waited_s=ctx.waited_s, phases=phases,
                  roles=roles, shards=shard_rows(obs), promoted=promotions(topo, obs))


def new_run_id() -> str:
    return secrets.token_hex(3)


@contextmanager
def project_directory(topo: Topology, keep: bool):
    """A temporary directory for the rendered project; a lasting one when the lab is kept
    (its containers bind-mount the rendered redis.conf)."""
    if keep:
        path = state_dir() / topo.project
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix=f"{topo.project}-") as tmp:
            yield Path(tmp)


def modes_to_run(lab: Lab, scenario: Scenario, requested: str | None) -> list[str]:
    """All modes of the scenario, or the requested one (validated)."""
    if requested is None:
        return list(scenario.modes)
    lab.check_mode(requested)
    if requested not in scenario.modes:
        raise UsageError(f"scenario {scenario.name!r} does not run in mode {requested!r}",
                         f"its modes are: {', '.join(scenario.modes)}")
    return [requested]

