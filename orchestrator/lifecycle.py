"""Bring a lab up and tear it down: pre-flight checks, render, start, readiness, cleanup.

Shared by `lab up` (which keeps the lab) and the scenario runner (which removes it).
"""

from __future__ import annotations

import errno
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .clients import is_ready, not_yet_settled, wait_until
from .cluster import create_cluster, not_yet_formed
from .errors import EnvironmentProblem, RuntimeFailure, UsageError
from .render import render_project
from .runtime import Engine, LabRuntime
from .topology import Topology

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunSettings:
    image: str                 # resolved image name
    port_base: int
    keep: bool = False         # leave the lab running after the run


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


def prepare(topo: Topology, project_dir: Path) -> LabRuntime:
    """Render the project into `project_dir`; nothing starts yet."""
    return LabRuntime(topo, render_project(topo, project_dir))


def bring_up(runtime: LabRuntime) -> None:
    """Start every node (compose starts them in parallel) and wait until all are ready.
    The caller owns cleanup: call `teardown(runtime)` in a finally, even if this raises."""
    runtime.up()
    wait_ready(runtime, runtime.topo)


def wait_ready(runtime: LabRuntime, topo: Topology, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every node answers; in replicated topologies, replicas are in sync and every Sentinel
    knows the master, its replicas and its peers. Raises RuntimeFailure with the reason."""
    for node in topo.nodes:
        if not wait_until(lambda: is_ready(node), timeout_s):
            state, code = runtime.state(node)
            logs = runtime.logs(node, tail=5).strip().replace("\n", " | ")
            raise RuntimeFailure(f"{node.name} did not become ready within {timeout_s:g} s "
                                 f"(container {state}, exit code {code})",
                                 f"last log lines: {logs or '(none)'}")
    if topo.kind == "cluster":
        create_cluster(runtime, topo)
        settled = not_yet_formed
    else:
        settled = not_yet_settled
    if len(topo.nodes) > 1 and not wait_until(lambda: settled(topo) is None, timeout_s):
        raise RuntimeFailure(f"lab {topo.lab} did not settle within {timeout_s:g} s: {settled(topo)}",
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
