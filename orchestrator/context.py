"""What a step action sees while a scenario runs: the topology, the runtime, the probe,
the clock, the timeline, and the faults still to heal. Roles are resolved here, live."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .actions import server_snapshot
from .clients import (LabSentinel, current_master, master_connection, probe_connection, replication_states,
                      sentinel_connection)
from .errors import ScenarioAborted
from .cluster import cluster_client, majority_view, members, redirect_count, shards
from .probe import ClusterProbe, Probe
from .runtime import LabRuntime
from .sentinel_watch import SentinelWatch
from .topology import MASTER, REPLICA, SENTINEL, Node, Topology


@dataclass(frozen=True)
class Event:
    t: float        # seconds since the start of the run
    what: str
    source: str     # tool | client | server

    def as_dict(self) -> dict:
        return {"t": round(self.t, 3), "what": self.what, "source": self.source}


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
        self.waited_s = 0.0
        self.old_master: Node | None = None
        self.last_resolved: Node | None = None
        self.heals: dict[str, Callable[[], None]] = {}   # undo of faults still in effect, by node
        self.down: set[str] = set()     # data nodes the scenario killed or stopped and has not started
        self.watch: SentinelWatch | None = None
        self.sentinel: LabSentinel | None = None
        self.in_cluster: list[Node] = members(topo) if topo.kind == "cluster" else []   # grows with add_node

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
        if self.topo.kind == "cluster":
            return self._in_first_shard(role)
        if len(self.topo.data_nodes) == 1:
            return self.topo.data_nodes[0] if role == MASTER else None
        master = current_master(self.topo)
        if role == MASTER:
            return self.topo.node(master) if master else self.topo.with_role(MASTER)[0]
        states = replication_states(self.topo)
        replicas = [n for n in self.topo.data_nodes if n.name in states and states[n.name].role == REPLICA
                    and states[n.name].master == master]
        return (replicas or self.topo.with_role(REPLICA) or [None])[0]

    def cluster_up(self) -> list[Node]:
        """The cluster's nodes that the scenario has not left down."""
        return [n for n in self.in_cluster if n.name not in self.down]

    def _in_first_shard(self, role: str) -> Node | None:
        """In a cluster, `master` is the master serving slot 0 now and `replica` one of its replicas."""
        view, _, _ = majority_view(self.topo, self.cluster_up())
        if view is None:
            return None
        first = shards(view)[0]
        names = [first.master] if role == MASTER else list(first.replicas)
        return self.topo.node(names[0]) if names else None

    def sleep(self, seconds: float) -> None:
        self.waited_s += seconds
        time.sleep(seconds)

    def note_fault_target(self, node: Node) -> None:
        """Before the first fault: remember the master and record server-reported dataset
        figures of the node about to be hit."""
        if "fault" not in self.marks and "fault_target" not in self.server:
            self.old_master = self.resolve(MASTER) if len(self.topo.data_nodes) > 1 else node
            self.last_resolved = node
            self.server.update(server_snapshot(node))
            self.server["fault_target"] = node.name

    def start_probe(self, wait_replicas: int = 0, wait_timeout_ms: int = 100) -> None:
        """Start writing. With Sentinels the probe finds the master through redis-py's Sentinel
        client; in a replication lab it asks the nodes which one the replicas follow (as an
        operator would repoint clients); a single node it writes to directly."""
        if self.probe is not None:
            raise ScenarioAborted("the probe was already started")
        topo = self.topo
        probe_class = Probe
        if topo.kind == "cluster":
            view, _, _ = majority_view(topo, self.cluster_up())
            self.server["shards_at_start"] = shards(view)
            self.server["redirects_at_start"] = redirect_count(self.cluster_up())
            connect, via, probe_class = (lambda: cluster_client(topo)), "through RedisCluster", ClusterProbe
        elif topo.sentinels:
            self.sentinel = LabSentinel(topo)
            connect, via = (lambda: sentinel_connection(self.sentinel)), "through Sentinel"
        elif len(topo.data_nodes) > 1:
            connect, via = (lambda: master_connection(topo)), "to the node the replicas follow"
        else:
            node = topo.data_nodes[0]
            connect, via = (lambda: probe_connection(node)), f"to {node.name}"
        self.probe = probe_class(connect, run_id=topo.run_id, clock=self.clock,
                                 wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms)
        self.probe.start()
        confirm = f", each write confirmed by WAIT {wait_replicas} {wait_timeout_ms}" if wait_replicas else ""
        self.event(f"probe starts writing {via}{confirm}")

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
