"""Run one scenario of a lab in one mode: bring the lab up, run the steps with the probe
writing, read back, compute metrics, check expectations; always heal and tear down."""

from __future__ import annotations

import secrets
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .actions import ACTIONS, server_snapshot
from .clients import admin_client, is_ready, probe_connection, wait_until
from .errors import ScenarioAborted, UsageError
from .expect import Check, check_expectations
from .labs import Lab, Scenario
from .lifecycle import RunSettings, bring_up, preflight, prepare, sigterm_as_interrupt, teardown
from .paths import state_dir
from .metrics import Observation, compute_metrics, parse_server_load_s
from .probe import OK, Probe, error_counts
from .runtime import Engine, LabRuntime
from .topology import Node, Topology, derive_topology

READ_BACK_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Event:
    t: float        # seconds since the start of the run
    what: str
    source: str     # tool | client | server

    def as_dict(self) -> dict:
        return {"t": round(self.t, 3), "what": self.what, "source": self.source}


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

    def as_dict(self) -> dict:
        return {"lab": self.lab, "scenario": self.scenario, "mode": self.mode, "image": self.image,
                "passed": self.passed, "duration_s": round(self.duration_s, 3),
                "metrics": self.metrics, "checks": [c.as_dict() for c in self.checks],
                "events": [e.as_dict() for e in self.events], "error_kinds": self.error_kinds,
                "waited_s": round(self.waited_s, 3),
                "phases_s": {k: round(v, 3) for k, v in self.phases.items()}}


class RunContext:
    """What a step action sees: the topology, the runtime, the probe, the clock and the timeline."""

    def __init__(self, topo: Topology, runtime: LabRuntime, clock: Callable[[], float] = time.monotonic):
        self.topo = topo
        self.runtime = runtime
        self.clock = clock
        self.t0 = clock()
        self.events: list[Event] = []
        self.marks: dict[str, tuple[float, float]] = {}
        self.server: dict = {}
        self.probe: Probe | None = None
        self.probe_node: Node | None = None
        self.waited_s = 0.0

    def event(self, what: str, source: str = "tool", at: float | None = None) -> None:
        self.events.append(Event(t=(self.clock() if at is None else at) - self.t0, what=what, source=source))

    def resolve(self, target: str) -> Node:
        """A role (`master`) or a node name, resolved against the topology now."""
        for node in self.topo.nodes:
            if node.name == target:
                return node
        by_role = self.topo.with_role(target)
        if not by_role:
            raise ScenarioAborted(f"no node matches target {target!r}")
        return by_role[0]

    def sleep(self, seconds: float) -> None:
        self.waited_s += seconds
        time.sleep(seconds)

    def note_server_state(self, node: Node) -> None:
        """Record server-reported dataset figures right before the first fault."""
        if "fault" not in self.marks and not self.server:
            self.server.update(server_snapshot(node))

    def start_probe(self) -> None:
        if self.probe is not None:
            raise ScenarioAborted("the probe was already started")
        self.probe_node = self.resolve("master")
        node = self.probe_node
        self.probe = Probe(lambda: probe_connection(node), run_id=self.topo.run_id, clock=self.clock)
        self.probe.start()
        self.event(f"probe starts writing to {node.name}")

    def stop_probe(self) -> None:
        if self.probe is not None and self.probe.running:
            self.probe.stop()
            self.event(f"probe stopped after {len(self.probe.attempts)} attempts")


def run_steps(ctx: RunContext, scenario: Scenario) -> None:
    for step in scenario.steps:
        spec = ACTIONS[step.action]
        invoked = ctx.clock()
        if step.action != "probe":   # the probe says itself when it starts and stops
            ctx.event(step.describe())
        spec.func(ctx, **step.args)
        returned = ctx.clock()
        if spec.mark and spec.mark not in ctx.marks:
            ctx.marks[spec.mark] = (invoked, returned)


def observe(ctx: RunContext) -> Observation:
    """Stop the probe, wait for the probed node, read every acknowledged key back."""
    probe = ctx.probe
    if probe is None:
        raise ScenarioAborted("the scenario never started the probe", "add `- probe: start` to its steps")
    ctx.stop_probe()
    node = ctx.probe_node
    if not wait_until(lambda: is_ready(node), READ_BACK_READY_TIMEOUT_S):
        raise ScenarioAborted(f"{node.name} was not ready for the read-back within {READ_BACK_READY_TIMEOUT_S:g} s")
    reader = admin_client(node, timeout_s=10)
    try:
        readback = probe.read_back(reader)
    finally:
        reader.close()
    if "restart" in ctx.marks:
        ctx.server["server_load_s"] = parse_server_load_s(ctx.runtime.logs(node))
    return Observation(attempts=probe.attempts, readback=readback, marks=ctx.marks,
                       probe_window=(probe.started_at, probe.stopped_at), server=ctx.server)


def client_events(ctx: RunContext, obs: Observation) -> list[Event]:
    """The probe's view of the fault, for the timeline beside the tool's steps."""
    found = []
    if "fault" in obs.marks:
        _, effective = obs.marks["fault"]
        oks = obs.oks()
        last = [a for a in oks if a.completed <= effective]
        if last:
            found.append(Event(last[-1].completed - ctx.t0, f"last ack before the fault (probe:{last[-1].seq})", "client"))
        failures = [a for a in obs.attempts if a.outcome != OK and a.invoked >= (last[-1].completed if last else 0)]
        if failures:
            found.append(Event(failures[0].completed - ctx.t0, f"first failed write: {failures[0].error}", "client"))
        first = [a for a in oks if a.invoked >= effective]
        if first:
            found.append(Event(first[0].completed - ctx.t0, f"first ack after the fault (probe:{first[0].seq})", "client"))
    return found


def default_mode(lab: Lab, scenario: Scenario) -> str:
    """The lab's persistence mode if the scenario runs in it, else the scenario's first mode."""
    return lab.topology.persistence if lab.topology.persistence in scenario.modes else scenario.modes[0]


def run_scenario(lab: Lab, scenario_name: str, mode: str | None, settings: RunSettings,
                 engine: Engine | None = None) -> Result:
    """Run one scenario in one mode (default: `default_mode`) and return its Result.
    Raises LabError subclasses for what the user can fix; the lab is removed in every case
    unless `settings.keep`."""
    scenario = lab.scenario(scenario_name)
    mode = modes_to_run(lab, scenario, mode)[0] if mode else default_mode(lab, scenario)
    engine = engine or Engine()
    topo = derive_topology(lab, mode, run_id=secrets.token_hex(3), image=settings.image,
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
            ctx.event(f"lab up: {', '.join(n.name for n in topo.nodes)} ready ({mode})")
            run_steps(ctx, scenario)
            phases["steps"] = time.monotonic() - started - phases["up"]
            obs = observe(ctx)
            phases["read_back"] = time.monotonic() - started - phases["up"] - phases["steps"]
        finally:
            if ctx is not None:
                ctx.stop_probe()
            if not settings.keep:
                phases["teardown"] = teardown(runtime)
    metrics = compute_metrics(obs)
    checks = check_expectations(scenario.expectations(mode), metrics)
    events = sorted(ctx.events + client_events(ctx, obs), key=lambda e: e.t)
    return Result(lab=lab.name, scenario=scenario.name, mode=mode, image=settings.image,
                  summary=scenario.summary, explain=scenario.explain,
                  passed=all(c.passed for c in checks), duration_s=time.monotonic() - started,
                  metrics=metrics, checks=checks, events=events,
                  error_kinds=dict(error_counts(obs.attempts)), waited_s=ctx.waited_s, phases=phases)


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

