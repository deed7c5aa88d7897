"""Bring a lab up and tear it down: pre-flight checks, render, start, readiness, cleanup.

One lifecycle for `lab up` (which keeps the lab) and for scenario runs (which remove it). What
"ready" means beyond every node answering is the kind's to say (`kind.form`, `kind.not_settled`).
"""

from __future__ import annotations

import errno
import os
import shutil
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
from .unsynced import UnsyncedError, UnsyncedMount, fuse_available

READY_TIMEOUT_S = 30.0
REDIS_USER = (999, 999)    # the uid/gid Redis runs as in the official image and in `lab image build`'s


@dataclass(frozen=True)
class RunSettings:
    image: str                 # resolved image name
    port_base: int
    keep: bool = False         # leave the lab running after the run


@dataclass
class LabHandle:
    """A lab being brought up or run, as kinds see it: its plan, Docker, the Redis servers, and
    the power-loss filesystems serving the data directories (by node name) when it has any."""

    topo: Topology
    runtime: LabRuntime
    nodes: ModuleType = field(default=redis_nodes)
    project_dir: Path | None = None
    mounts: dict = field(default_factory=dict)
    first_attempt: str = ""    # why the first start did not settle, when the lab had to start twice

    def mount_filesystems(self) -> None:
        """Mount a power-loss filesystem for every node whose data directory needs one (before
        its container starts: a bind mount sees only what is mounted when it is made). The
        caller unmounts them in `teardown`, even if this raises."""
        if not self.topo.mounted:
            return
        ok, reason = fuse_available()
        if not ok:
            raise EnvironmentProblem(f"the power-loss filesystem cannot be mounted: {reason}",
                                     "install fuse3 (scripts/setup does), or run scenarios without power_loss")
        for node in self.topo.mounted:
            where = self.project_dir / node.data_mount
            mount = UnsyncedMount(where / "backing", where / "data", owner=REDIS_USER, **self.topo.filesystem)
            self.mounts[node.name] = mount
            try:
                mount.start()
            except UnsyncedError as exc:
                raise RuntimeFailure(f"mounting the power-loss filesystem for {node.name} failed: {exc}") from None

    def unmount_filesystems(self) -> None:
        for name, mount in list(self.mounts.items()):
            mount.stop()
            self.mounts.pop(name)


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


def partitions_possible() -> tuple[bool, str]:
    """Whether this host can cut a node off its peers (packet filter rules in the node's network
    namespace, set from the host): root, nsenter and iptables; when not, why."""
    if os.geteuid() != 0:
        return False, "cutting a node off its peers needs root on the host (iptables in its network namespace)"
    missing = [tool for tool in ("nsenter", "iptables") if not shutil.which(tool)]
    if missing:
        return False, f"{' and '.join(missing)} not installed (Debian: apt-get install util-linux iptables)"
    return True, ""


def preflight(topo: Topology, engine: Engine) -> None:
    """Engine reachable, lab not already up, ports free, partitions possible if the scenario
    makes one: checked before anything starts."""
    if topo.partitionable:
        ok, reason = partitions_possible()
        if not ok:
            raise EnvironmentProblem(f"this scenario partitions the lab, but {reason}", "run it as root, or skip it")
    engine.version()
    running = engine.lab_containers(topo.lab, project=topo.project)
    if running:
        raise UsageError(f"lab {topo.lab!r} is already running ({len(running)} containers)",
                         f"remove it with `lab down {topo.lab}` first")
    for port in topo.ports:
        check_port_free(port)


def prepare(topo: Topology, project_dir: Path) -> LabHandle:
    """Render the project into `project_dir`; nothing starts yet."""
    return LabHandle(topo, LabRuntime(topo, render_project(topo, project_dir)), project_dir=project_dir)


def bring_up(lab: LabHandle, kind, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Mount the power-loss filesystems if the lab has any, start the nodes stage by stage as the
    kind orders them (compose starts each stage's nodes in parallel), wait until each answers,
    let the kind form the topology (`kind.form`) and wait until it says it is settled. A lab
    whose nodes all answered but that did not settle is removed and started once more from
    nothing; `lab.first_attempt` then says why. Nothing of a scenario has happened yet, so no
    measurement is affected. The caller owns cleanup: call `teardown(lab)` in a finally, even
    if this raises."""
    lab.mount_filesystems()
    try:
        _start(lab, kind, timeout_s)
    except NotSettled as exc:
        lab.first_attempt = exc.message
        _remove_for_a_new_start(lab)
        try:
            _start(lab, kind, timeout_s)
        except NotSettled as again:
            raise NotSettled(f"{again.message} (and on a first start: {lab.first_attempt})", again.hint) from None


def _start(lab: LabHandle, kind, timeout_s: float) -> None:
    stages = kind.start_stages(lab.topo)
    for stage in stages:
        lab.runtime.up(stage if len(stages) > 1 else None)
        wait_answering(lab, stage, timeout_s)
    kind.form(lab)
    if not wait_until(lambda: kind.not_settled(lab) is None, timeout_s):
        raise NotSettled(f"lab {lab.topo.lab} did not settle within {timeout_s:g} s: {kind.not_settled(lab)}",
                         "see `docker logs` of the nodes (`lab up` keeps the lab for a look)")


def _remove_for_a_new_start(lab: LabHandle) -> None:
    """Remove the lab's containers and volumes and its power-loss filesystems with what they
    held, and mount fresh ones."""
    teardown(lab)
    for node in lab.topo.mounted:
        shutil.rmtree(lab.project_dir / node.data_mount, ignore_errors=True)
    lab.mount_filesystems()


class NotSettled(RuntimeFailure):
    """Every node answered, but the lab did not reach the state a scenario starts from."""


def wait_answering(lab: LabHandle, nodes, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Every one of `nodes` answers (and has loaded its data). Raises RuntimeFailure with the
    container's state and last log lines of the first that does not."""
    for node in nodes:
        if not wait_until(lambda: lab.nodes.is_ready(node), timeout_s):
            state, code = lab.runtime.state(node)
            logs = lab.runtime.logs(node, tail=5).strip().replace("\n", " | ")
            raise RuntimeFailure(f"{node.name} did not become ready within {timeout_s:g} s "
                                 f"(container {state}, exit code {code})",
                                 f"last log lines: {logs or '(none)'}")


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


def teardown(lab: LabHandle) -> float:
    """Remove the run's containers, networks and volumes, then unmount its power-loss
    filesystems (nothing uses them any more); returns seconds it took."""
    started = time.monotonic()
    with shielded_from_interrupts():
        try:
            lab.runtime.down()
        finally:
            lab.unmount_filesystems()
    return time.monotonic() - started
