"""Run one scenario of a lab in one mode: bring the lab up, run the steps with the workload
running, read back, compute metrics, check expectations; always heal and tear down.

A problem found before anything starts (Docker down, a port in use, the lab already running)
raises a LabError (exit 2). Once the lab is starting, whatever keeps the run from measuring (a
node that never becomes ready, a step that cannot complete, the workload dying, a Docker or
Redis error, a bug) makes the result an ERROR that says why; the lab is removed in every case
unless `settings.keep`.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .context import RunContext
from .engine.docker import Engine
from .engine.lifecycle import (RunSettings, bring_up, preflight, prepare, shielded_from_interrupts,
                               sigterm_as_interrupt, teardown)
from .engine.nodes import NodeCommandError
from .engine.topology import Node, Topology
from .engine.unsynced import fuse_available
from .errors import LabError, ScenarioAborted, UsageError
from .events import ClockOffset, Event, ServerEvent
from .kinds import kind_of
from .measure.expect import ERROR, SKIP, check_expectations, status_of
from .measure.metrics import compute_metrics, parse_server_load_s, switches
from .measure.observation import Observation
from .measure.result import Result
from .spec import ACTIONS, METRICS, RESTART, WORKLOADS, Applicability, Lab, Scenario
from .spec.paths import state_dir

Progress = Callable[[str, "int | None"], None]    # (phase, writes acknowledged so far)


def _quiet(phase: str, acked: int | None = None) -> None:
    pass


def run_steps(ctx: RunContext, scenario: Scenario, progress: Progress = _quiet) -> None:
    for step in scenario.steps:
        spec = ACTIONS[step.action]
        progress(f"step {step.index + 1}/{len(scenario.steps)}: {step.describe()}",
                 ctx.workload.acked_so_far if ctx.workload is not None else None)
        invoked = ctx.clock()
        if step.action != "probe":   # the workload says itself when it starts and stops
            ctx.event(step.describe())
        described = len(ctx.events) - 1
        ctx.last_resolved = ctx.took_effect = None
        spec.func(ctx, **step.args)
        returned = ctx.clock()
        # when the fault happened: the step's own record if it has one (within the step), else its return
        effective = returned if ctx.took_effect is None else min(max(ctx.took_effect, invoked), returned)
        node = ctx.last_resolved
        if step.action != "probe" and node is not None and node.name not in ctx.events[described].what:
            # a role resolved when the step ran: say which node it was
            ctx.events[described] = replace(ctx.events[described], what=f"{ctx.events[described].what} ({node.name})")
        if spec.mark and spec.mark not in ctx.marks and _marks_the_workload(ctx, spec.mark, node):
            ctx.marks[spec.mark] = (invoked, effective)
            if spec.mark == RESTART:
                ctx.restarted = node


def _marks_the_workload(ctx: RunContext, mark: str, node: Node | None) -> bool:
    """Whether a fault or restart step is one the workload's metrics should time: not a step on a
    Sentinel, and a restart only of the node the workload last wrote to (restarting an old master
    after a failover does not bring its writes back)."""
    if node is not None and node.is_sentinel:
        return False
    endpoint = ctx.workload.endpoint if ctx.workload is not None else None
    if mark == RESTART and node is not None and endpoint is not None:
        return endpoint == node.host_port
    return True


def run_scenario(lab: Lab, scenario_name: str, mode: str | None, settings: RunSettings,
                 engine: Engine | None = None, run_id: str | None = None, progress: Progress = _quiet) -> Result:
    """Run one scenario in one mode (default: the lab's own) and return its Result. `run_id`
    (default: a new one) labels everything the run makes; `progress` hears each phase."""
    scenario = lab.scenario(scenario_name)
    mode = lab.modes_to_run(scenario, mode)[0] if mode else lab.default_mode(scenario)
    kind = kind_of(lab)
    topo = kind.derive(lab, mode, run_id or new_run_id(), settings.image, settings.port_base, scenario)
    if topo.mounted:
        available, reason = fuse_available()
        if not available:
            return skipped_result(lab, scenario.name, mode, settings.image,
                                  f"the power-loss filesystem needs FUSE: {reason}")
        if settings.keep:
            raise UsageError("a power-loss scenario cannot be kept running: its filesystems go with the tool",
                             "run it without --keep")
    engine = engine or Engine()
    preflight(topo, engine)
    run = _Run(lab, scenario, topo, kind, progress)
    started = time.monotonic()
    with sigterm_as_interrupt(), project_directory(topo, settings.keep) as project_dir:
        handle = prepare(topo, project_dir)
        try:
            run.go(handle, started)
        finally:
            with shielded_from_interrupts():
                if run.ctx is not None:
                    run.ctx.close()
                if not settings.keep:
                    progress("teardown", run.acked())
                    run.phases["teardown"] = teardown(handle)
    return run.result(mode, settings.image, time.monotonic() - started)


class _Run:
    """The state of one run while it goes, and the Result it makes."""

    def __init__(self, lab: Lab, scenario: Scenario, topo: Topology, kind, progress: Progress):
        self.lab, self.scenario, self.topo, self.kind, self.progress = lab, scenario, topo, kind, progress
        self.ctx: RunContext | None = None
        self.phases: dict[str, float] = {}
        self.error = ""
        self.obs: Observation | None = None
        self.roles: dict[str, str] = {}
        self.fields: dict = {}
        self.timeline: list[Event] = []
        self.clock = ClockOffset()

    def acked(self) -> int | None:
        workload = self.ctx.workload if self.ctx is not None else None
        return workload.acked_so_far if workload is not None else None

    def go(self, handle, started: float) -> None:
        """Up, steps, read-back; an error after the lab began to start becomes the run's error."""
        ticker = _Ticker(self)
        try:
            self.progress("up", None)
            bring_up(handle, self.kind)
            self.phases["up"] = time.monotonic() - started
            ctx = self.ctx = RunContext(self.topo, handle.runtime, self.kind, nodes=handle.nodes,
                                        workload=self.scenario.workload, mounts=handle.mounts)
            self.kind.start_events(ctx)
            if handle.first_attempt:
                ctx.event(f"lab started a second time: the first start did not settle ({handle.first_attempt})")
            ctx.event(f"lab up: {', '.join(n.name for n in self.topo.nodes)} ready ({self.topo.mode})")
            try:
                ticker.start()
                run_steps(ctx, self.scenario, ticker.say)
            finally:
                ticker.stop()
                ctx.heal_all()
            self.phases["steps"] = time.monotonic() - started - self.phases["up"]
            self.progress("read-back", self.acked())
            self.measure(ctx)
            self.phases["read_back"] = time.monotonic() - started - self.phases["up"] - self.phases["steps"]
        except LabError as exc:
            self.error = str(exc)
        except NodeCommandError as exc:
            self.error = f"a command to a node failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - a run that cannot measure is an ERROR, never a crash
            traceback.print_exc(file=sys.stderr)
            self.error = f"unexpected {type(exc).__name__} (a bug in redis-ha-lab, traceback above): {exc}"

    def measure(self, ctx: RunContext) -> None:
        """Stop the workload, read back, and gather what the servers say."""
        workload = ctx.workload
        if workload is None:
            raise ScenarioAborted("the scenario never started the probe", "add `- probe: start` to its steps")
        ctx.stop_workload()
        if workload.failure:
            raise ScenarioAborted(workload.failure, "the run measured nothing after that")
        history = workload.observe()
        restarted = getattr(ctx, "restarted", None)
        if restarted is not None:
            ctx.facts.server_load_s = parse_server_load_s(ctx.runtime.logs(restarted))
        ctx.kind.observe(ctx, workload.keys_acked_before_fault(history))
        self.roles = ctx.kind.final_roles(ctx)
        self.clock.finish()
        events = ctx.kind.server_events(ctx, self.clock.offset)
        self.obs = Observation(history=history, marks=dict(ctx.marks), window=workload.window, facts=ctx.facts,
                               kind_facts=ctx.kind_facts, server_events=events)
        self.fields = workload.report_fields(history)
        self.timeline = sorted(workload.client_events(history) + named_server_events(ctx, events), key=lambda e: e.t)

    def result(self, mode: str, image: str, duration_s: float) -> Result:
        scenario, ctx = self.scenario, self.ctx
        applies = Applicability(kind=self.kind, params=self.lab.topology.params, workload=scenario.workload.name,
                                actions=frozenset(s.action for s in scenario.steps))
        names = list(applies.metrics())
        metrics = compute_metrics(self.obs, names) if self.obs is not None else {}
        checks = [] if self.error else check_expectations(scenario.expectations(mode), metrics,
                                                          WORKLOADS[scenario.workload.name].invariants)
        events = sorted((ctx.events if ctx else []) + self.timeline, key=lambda e: e.t)
        if self.fields.get("mislabelled"):
            events.append(Event(events[-1].t if events else 0.0, "writes recorded as refused were found afterwards: "
                                + ", ".join(f"{n} {k}" for k, n in self.fields["mislabelled"].items()), "client"))
        return Result(lab=self.lab.name, scenario=scenario.name, mode=mode, image=image, summary=scenario.summary,
                      explain=scenario.explain, status=status_of(checks, self.error), duration_s=duration_s,
                      metrics=metrics, checks=checks, events=events, waited_s=ctx.waited_s if ctx else 0.0,
                      phases=self.phases, roles=self.roles, error=self.error,
                      promoted=promotions(self.obs) if self.obs is not None else [],
                      clock_drift_s=self.clock.drift_s,
                      metric_info={n: {"unit": METRICS[n].unit, "short": METRICS[n].short, "method": METRICS[n].method}
                                   for n in names},
                      error_kinds=self.fields.get("error_kinds", {}), mislabelled=self.fields.get("mislabelled", {}),
                      shards=self.fields.get("shards", []), timeline=self.fields.get("timeline", {}))


class _Ticker:
    """Passes each step on to the progress callback, and repeats the current one every
    TICK_S with a fresh count of acknowledged writes, so a long `wait` still shows writes flowing."""

    TICK_S = 0.5

    def __init__(self, run: _Run):
        self.run, self.phase = run, "steps"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)

    def say(self, phase: str, acked: int | None) -> None:
        self.phase = phase
        self.run.progress(phase, acked)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_S):
            self.run.progress(self.phase, self.run.acked())


def error_result(lab: Lab, scenario: str, mode: str, image: str, error: str, duration_s: float = 0.0) -> Result:
    """The result of a run that could not even start measuring (a worker that died, a lab that
    could not start): status ERROR with the reason."""
    chosen = lab.scenario(scenario)
    return Result(lab=lab.name, scenario=scenario, mode=mode, image=image, summary=chosen.summary,
                  explain=chosen.explain, status=ERROR, duration_s=duration_s, metrics={}, checks=[], events=[],
                  error=error)


def skipped_result(lab: Lab, scenario: str, mode: str, image: str, reason: str) -> Result:
    """A run this machine cannot do (status SKIP, with the reason): never a PASS."""
    chosen = lab.scenario(scenario)
    return Result(lab=lab.name, scenario=scenario, mode=mode, image=image, summary=chosen.summary,
                  explain=chosen.explain, status=SKIP, duration_s=0.0, metrics={}, checks=[], events=[], error=reason)


def promotions(obs: Observation) -> list[str]:
    """Each failover as the servers announced it (the events `failovers` counts): "old -> new"."""
    return [f"{e.replaces} -> {e.promotes}" if e.replaces else f"{e.promotes} (won the election)"
            for e in switches(obs)]


def named_server_events(ctx: RunContext, events: list[ServerEvent]) -> list[Event]:
    """The servers' events for the timeline, with lab-network addresses replaced by node names."""
    ips = {n.ip: n.name for n in ctx.topo.nodes if n.ip}

    def named(text: str) -> str:
        return " ".join(ips.get(word, _named_address(word, ips)) for word in text.split(" "))

    return [Event(e.at - ctx.t0, f"{e.source}: {named(e.describe())}", "server") for e in events]


def _named_address(word: str, ips: dict[str, str]) -> str:
    """`10.227.188.12:6379` -> `redis-2:6379`."""
    host, _, port = word.rpartition(":")
    return f"{ips[host]}:{port}" if host in ips else word


def new_run_id() -> str:
    return secrets.token_hex(3)


@contextmanager
def project_directory(topo: Topology, keep: bool):
    """A temporary directory for the rendered project; a lasting one when the lab is kept
    (its containers bind-mount the rendered redis.conf; `lab down` removes it)."""
    if keep:
        path = state_dir() / topo.project
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix=f"{topo.project}-") as tmp:
            yield Path(tmp)
