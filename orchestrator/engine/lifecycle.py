"""Bring a lab up and tear it down: pre-flight checks, render, start, readiness, cleanup.

One lifecycle for `lab up` (which keeps the lab) and for scenario runs (which remove it). What
"ready" means beyond every node answering is the kind's to say (`kind.form`, `kind.not_settled`).
"""

from __future__ import annotations

import errno
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import EnvironmentProblem, RuntimeFailure, UsageError
from . import nodes as redis_nodes
from .docker import Engine, LabRuntime
from .poll import wait_until
from .render import render_project
from .topology import Topology

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunSettings:
    image: str                 # resolved image name
    port_base: int
    keep: bool = False         # leave the lab running after the run


@dataclass
class LabHandle:
    """A lab being brought up or run, as kinds see it: its plan, Docker, and the Redis servers."""

    topo: Topology
    runtime: LabRuntime
    nodes: ModuleType = field(default=redis_nodes)


def check_port_free(port: int) -> None:
    """Raise EnvironmentProblem if something listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections of a previous run in TIME_WAIT do not make a port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise EnvironmentProblem(f"port {port} on 127.0.0.1 is already in use",
                                         "free it, or choose other ports with --port-base (e.g. --port-base 7200)") from None
            raise


def preflight(topo: Topology, engine: Engine) -> None:
    """Engine reachable, lab not already up, ports free: checked before anything starts."""
    engine.version()
    running = engine.lab_containers(topo.lab, project=topo.project)
    if running:
        raise UsageError(f"lab {topo.lab!r} is already running ({len(running)} containers)",
                         f"remove it with `lab down {topo.lab}` first")
    for port in topo.ports:
        check_port_free(port)


def prepare(topo: Topology, project_dir: Path) -> LabHandle:
    """Render the project into `project_dir`; nothing starts yet."""
    return LabHandle(topo, LabRuntime(topo, render_project(topo, project_dir)))


def bring_up(lab: LabHandle, kind) -> None:
    """Start every node (compose starts them in parallel), wait until each answers, let the kind
    form the topology (`kind.form`) and wait until it says it is settled. The caller owns
    cleanup: call `teardown(lab.runtime)` in a finally, even if this raises."""
    lab.runtime.up()
    wait_ready(lab, kind)


def wait_ready(lab: LabHandle, kind, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every node answers; then whatever the kind still lacks (replicas in sync, Sentinels that
    know each other, a formed cluster). Raises RuntimeFailure with the reason."""
    topo, runtime = lab.topo, lab.runtime
    for node in topo.nodes:
        if not wait_until(lambda: lab.nodes.is_ready(node), timeout_s):
            state, code = runtime.state(node)
            logs = runtime.logs(node, tail=5).strip().replace("\n", " | ")
            raise RuntimeFailure(f"{node.name} did not become ready within {timeout_s:g} s "
                                 f"(container {state}, exit code {code})",
                                 f"last log lines: {logs or '(none)'}")
    kind.form(lab)
    if not wait_until(lambda: kind.not_settled(lab) is None, timeout_s):
        raise RuntimeFailure(f"lab {topo.lab} did not settle within {timeout_s:g} s: {kind.not_settled(lab)}",
                             "see `docker logs` of the nodes (`lab up` keeps the lab for a look)")


@contextmanager
def shielded_from_interrupts():
    """Ignore Ctrl-C and SIGTERM while cleaning up, so a second signal cannot leave containers behind."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt():
    """Let SIGTERM (CI timeouts, `kill`) run the same cleanup as Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def teardown(runtime: LabRuntime) -> float:
    """Remove the run's containers, networks and volumes; returns seconds it took."""
    started = time.monotonic()
    with shielded_from_interrupts():
        runtime.down()
    return time.monotonic() - started
