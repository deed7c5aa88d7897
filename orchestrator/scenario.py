"""Run one scenario of a lab in one mode: bring the lab up, run the steps with the probe
writing, read back, compute metrics, check expectations; always heal and tear down."""

from __future__ import annotations

import secrets
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .actions import ACTIONS, server_snapshot
from .clients import (LabSentinel, admin_client, current_master, is_ready, master_connection, probe_connection,
                      replication_states, sentinel_connection, wait_until)
from .errors import ScenarioAborted, UsageError
from .expect import Check, check_expectations
from .labs import Lab, Scenario
from .lifecycle import RunSettings, bring_up, preflight, prepare, sigterm_as_interrupt, teardown
from .paths import state_dir
from .metrics import Observation, compute_metrics, parse_server_load_s
from .probe import OK, Probe, error_counts
from .runtime import Engine, LabRuntime
from .sentinel_watch import SentinelWatch
from .topology import MASTER, REPLICA, SENTINEL, Node, Topology, derive_topology

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
    roles: dict[str, str] = field(default_factory=dict)     # data node -> role at the end, as INFO says
    error: str = ""                # why the scenario stopped before it could be measured

    def as_dict(self) -> dict:
        return {"lab": self.lab, "scenario": self.scenario, "mode": self.mode, "image": self.image,
                "passed": self.passed, "duration_s": round(self.duration_s, 3),
                "metrics": self.metrics, "checks": [c.as_dict() for c in self.checks],
                "events": [e.as_dict() for e in self.events], "roles": self.roles, "error": self.error,
                "error_kinds": self.error_kinds, "waited_s": round(self.waited_s, 3),
                "phases_s": {k: round(v, 3) for k, v in self.phases.items()}}


OLD_MASTER = "old-master"   # target: the node that was master when the first fault struck


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
        self.probe_via = ""
        self.waited_s = 0.0
        self.old_master: Node | None = None
        self.last_resolved: Node | None = None
        self.heals: dict[str, Callable[[], None]] = {}   # undo of faults still in effect, by node
        self.watch: SentinelWatch | None = None
        self.sentinel: LabSentinel | None = None

    def event(self, what: str, source: str = "tool", at: float | None = None) -> None:
        self.events.append(Event(t=(self.clock() if at is None else at) - self.t0, what=what, source=source))

    def resolve(self, target: str) -> Node:
        """A node name or a role, resolved against the live topology now: `master` is the node
        that is master at this moment (Sentinel's answer, or the one the replicas follow),
        `replica` a replica of it, `old-master` the master when the first fault struck."""
        node = self.topo.node(target) or self._by_role(target)
        if node is None:
            raise ScenarioAborted(f"no node matches target {target!r}")
        self.last_resolved = node
        return node

    def _by_role(self, role: str) -> Node | None:
        if role == SENTINEL:
            return next(iter(self.topo.sentinels), None)
        if role == OLD_MASTER:
            return self.old_master or self.topo.data_nodes[0]
        if role not in (MASTER, REPLICA):
            return None
        if len(self.topo.data_nodes) == 1:
            return self.topo.data_nodes[0] if role == MASTER else None
        master = current_master(self.topo)
        if role == MASTER:
            return self.topo.node(master) if master else self.topo.with_role(MASTER)[0]
        states = replication_states(self.topo)
        replicas = [n for n in self.topo.data_nodes if n.name in states and states[n.name].role == REPLICA
                    and states[n.name].master == master]
        return (replicas or self.topo.with_role(REPLICA) or [None])[0]

    def sleep(self, seconds: float) -> None:
        self.waited_s += seconds
        time.sleep(seconds)

    def note_fault_target(self, node: Node) -> None:
        """Before the first fault: remember the master and record server-reported dataset
        figures of the node about to be hit."""
        if "fault" not in self.marks and not self.server:
            self.old_master = self.resolve(MASTER) if len(self.topo.data_nodes) > 1 else node
            self.last_resolved = node
            self.server.update(server_snapshot(node))

    def start_probe(self, wait_replicas: int = 0, wait_timeout_ms: int = 100) -> None:
        """Start writing. With Sentinels the probe finds the master through redis-py's Sentinel
        client; in a replication lab it asks the nodes which one the replicas follow (as an
        operator would repoint clients); a single node it writes to directly."""
        if self.probe is not None:
            raise ScenarioAborted("the probe was already started")
        topo = self.topo
        if topo.sentinels:
            self.sentinel = LabSentinel(topo)
            connect, self.probe_via = (lambda: sentinel_connection(self.sentinel)), "through Sentinel"
        elif len(topo.data_nodes) > 1:
            connect, self.probe_via = (lambda: master_connection(topo)), "to the node the replicas follow"
        else:
            node = topo.data_nodes[0]
            connect, self.probe_via = (lambda: probe_connection(node)), f"to {node.name}"
        self.probe = Probe(connect, run_id=topo.run_id, clock=self.clock,
                           wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms)
        self.probe.start()
        confirm = f", each write confirmed by WAIT {wait_replicas} {wait_timeout_ms}" if wait_replicas else ""
        self.event(f"probe starts writing {self.probe_via}{confirm}")

    def stop_probe(self) -> None:
        if self.probe is not None and self.probe.running:
            self.probe.stop()
            self.event(f"probe stopped after {len(self.probe.attempts)} attempts")

    def start_watch(self) -> None:
        if self.topo.sentinels:
            self.watch = SentinelWatch(self.topo, clock=self.clock)
            self.watch.start()

    def heal_all(self) -> None:
        """Undo faults still in effect (a paused node, a partition), so a kept lab is whole."""
        for name, heal in list(self.heals.items()):
            heal()
            self.heals.pop(name, None)
            self.event(f"healed {name}")

    def close(self) -> None:
        self.stop_probe()
        if self.watch is not None:
            self.watch.stop()
        if self.sentinel is not None:
            self.sentinel.close()


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
        on_sentinel = ctx.last_resolved is not None and ctx.last_resolved.is_sentinel
        if spec.mark and spec.mark not in ctx.marks and not on_sentinel:
            ctx.marks[spec.mark] = (invoked, returned)


def observe(ctx: RunContext) -> Observation:
    """Stop the probe; find the master now; read every acknowledged key back from it; note
    what the servers say (roles, replicas in sync, Sentinel events)."""
    probe = ctx.probe
    if probe is None:
        raise ScenarioAborted("the scenario never started the probe", "add `- probe: start` to its steps")
    ctx.stop_probe()
    topo = ctx.topo
    master = _final_master(ctx)
    reader = admin_client(master, timeout_s=10)
    try:
        readback = probe.read_back(reader)
    finally:
        reader.close()
    if "restart" in ctx.marks:
        ctx.server["server_load_s"] = parse_server_load_s(ctx.runtime.logs(master))
    if len(topo.data_nodes) > 1:
        states = replication_states(topo)
        ctx.server["replicas_in_sync"] = sum(1 for s in states.values()
                                             if s.role == REPLICA and s.master == master.name and s.link_up)
        ctx.server["max_node_kept"] = _most_kept(ctx, probe)
        ctx.server["final_master"] = master.name
    if ctx.watch is not None:
        ctx.watch.stop()
        ctx.server["sentinels_watched"] = len(topo.sentinels)
    return Observation(attempts=probe.attempts, readback=readback, marks=ctx.marks,
                       probe_window=(probe.started_at, probe.stopped_at), server=ctx.server,
                       server_events=ctx.watch.events if ctx.watch else [])


def _final_master(ctx: RunContext) -> Node:
    """The master after recovery (ready to answer), where the read-back happens."""
    found: list[Node] = []

    def ready_master() -> bool:
        node = ctx.resolve(MASTER)
        found[:] = [node]
        return is_ready(node)

    if not wait_until(ready_master, READ_BACK_READY_TIMEOUT_S):
        raise ScenarioAborted(f"no master was ready for the read-back within {READ_BACK_READY_TIMEOUT_S:g} s"
                              + (f" (last candidate {found[0].name})" if found else ""))
    return found[0]


def _most_kept(ctx: RunContext, probe: Probe) -> int | None:
    """Of the writes acknowledged before the fault, the most that any one data node holds now."""
    if "fault" not in ctx.marks:
        return None
    _, effective = ctx.marks["fault"]
    keys = [probe.key_for(a.seq) for a in probe.attempts if a.outcome == OK and a.completed <= effective]
    most = 0
    for node in ctx.topo.data_nodes:
        client = admin_client(node, timeout_s=10)
        try:
            present = sum(1 for i in range(0, len(keys), 1000) for v in client.mget(keys[i:i + 1000]) if v is not None)
        except Exception:  # noqa: BLE001 - a node that is down holds nothing we can count
            continue
        finally:
            client.close()
        most = max(most, present)
    return most


def final_roles(topo: Topology) -> dict[str, str]:
    """Each data node's role at the end as INFO replication says (`down` if it does not answer)."""
    if len(topo.data_nodes) == 1:
        return {}
    states = replication_states(topo)
    roles = {}
    for node in topo.data_nodes:
        state = states.get(node.name)
        if state is None:
            roles[node.name] = "down"
        elif state.role == MASTER:
            roles[node.name] = MASTER
        else:
            roles[node.name] = f"replica of {state.master} (link {'up' if state.link_up else 'down'})"
    return roles


def client_events(ctx: RunContext, obs: Observation) -> list[Event]:
    """The probe's view of the fault, for the timeline beside the tool's steps and the servers'."""
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
    if ctx.probe is not None and len(ctx.topo.data_nodes) > 1:
        current = None
        for at, port in ctx.probe.connections:
            node = next((n for n in ctx.topo.nodes if n.host_port == port), None)
            if node is not None and node.name != current:
                found.append(Event(at - ctx.t0, f"probe connected to {node.name}", "client"))
                current = node.name
    return found


def server_events(ctx: RunContext, obs: Observation) -> list[Event]:
    """Sentinel's events, with the addresses it announces replaced by node names."""
    ips = {n.ip: n.name for n in ctx.topo.nodes if n.ip}

    def named(text: str) -> str:
        return " ".join(ips.get(word, _named_address(word, ips)) for word in text.split(" "))

    return [Event(e.at - ctx.t0, f"{e.source}: {named(e.describe())}", "server") for e in obs.server_events]


def _named_address(word: str, ips: dict[str, str]) -> str:
    """`10.213.x.12:6379` -> `redis-2:6379`."""
    host, _, port = word.rpartition(":")
    return f"{ips[host]}:{port}" if host in ips else word


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
                  roles=roles)


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

