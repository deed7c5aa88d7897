"""What a step, a kind and a workload see while a scenario runs: the lab's plan, Docker
(`runtime`), the Redis servers (`nodes`, the engine's Redis module), the kind, the clock, the
timeline, the facts the servers reported, and the faults still to heal. Roles are resolved
here, live, by asking the kind."""

from __future__ import annotations

import time
from typing import Any, Callable

from .engine.topology import MASTER, OLD_MASTER, Node, Topology
from .errors import ScenarioAborted
from .events import Event
from .measure.observation import ServerFacts
from .spec import WORKLOADS, WorkloadSpec


class RunContext:
    """One run of one scenario, as the steps see it."""

    def __init__(self, topo: Topology, runtime, kind, nodes=None, clock: Callable[[], float] = time.monotonic,
                 workload: WorkloadSpec | None = None, mounts: dict | None = None):
        self.topo = topo
        self.runtime = runtime
        self.kind = kind
        self.nodes = nodes
        self.clock = clock
        self.t0 = clock()
        self.events: list[Event] = []
        self.marks: dict[str, tuple[float, float]] = {}
        self.facts = ServerFacts()
        self.kind_facts: Any = kind.new_facts(topo)
        self.workload_spec = workload or WorkloadSpec()
        self.workload = None
        self.waited_s = 0.0
        self.old_master: Node | None = None
        self.last_resolved: Node | None = None
        self.heals: dict[str, Callable[[], None]] = {}   # undo of faults still in effect, by node
        self.down: set[str] = set()     # data nodes the scenario killed or stopped and has not started
        self.watch = None               # the kind's server-event source, while it runs
        self.mounts = mounts or {}      # power-loss filesystems by node name (engine/unsynced)
        self.fsyncs_at_start: tuple[float, int] | None = None   # (time, fsync calls) as the workload started
        self.took_effect: float | None = None   # when the current step's fault happened, if it knows better than
                                                # "when the step returned" (kill, power_loss: the container's exit)

    def from_wall_clock(self, epoch_s: float) -> float:
        """A wall-clock time stamp (Docker's) on this run's clock."""
        return epoch_s - (time.time() - self.clock())

    def event(self, what: str, source: str = "tool", at: float | None = None) -> None:
        self.events.append(Event(t=(self.clock() if at is None else at) - self.t0, what=what, source=source))

    def resolve(self, target: str) -> Node:
        """A node name or a role, resolved against the live topology now: `master` is the node
        that is master at this moment (as the kind finds it), `replica` a replica of it,
        `old-master` the master when the first fault struck."""
        node = self.topo.node(target)
        if node is None and target == OLD_MASTER:
            node = self.old_master or self.topo.data_nodes[0]
        if node is None:
            node = self.kind.resolve(self, target)
        if node is None:
            raise ScenarioAborted(f"no node matches target {target!r}")
        self.last_resolved = node
        return node

    def sleep(self, seconds: float) -> None:
        self.waited_s += seconds
        time.sleep(seconds)

    def note_fault_target(self, node: Node) -> None:
        """Before the first fault: remember the master and record server-reported dataset
        figures of the node about to be hit."""
        if "fault" in self.marks or self.facts.fault_target is not None:
            return
        self.old_master = self.resolve(MASTER)
        self.last_resolved = node
        info = self.nodes.info(node)
        self.facts.dataset_keys = info.get("db0", {}).get("keys", 0) if info else None
        self.facts.dataset_bytes = info.get("used_memory_dataset")
        self.facts.rdb_changes_since_last_save = info.get("rdb_changes_since_last_save")
        self.facts.fault_target = node.name

    def start_workload(self, options: dict) -> None:
        """Start the scenario's workload (`probe: start`), with the options the lab file gave."""
        if self.workload is not None:
            raise ScenarioAborted("the probe was already started")
        workload_class = WORKLOADS[self.workload_spec.name]
        self.workload = workload_class(self, {**self.workload_spec.options, **options})
        if self.mounts:
            self.fsyncs_at_start = (self.clock(), self.fsync_calls())
        self.workload.start()
        self.event(self.workload.describe_start())

    def fsync_calls(self) -> int:
        """fsync and fdatasync calls the power-loss filesystems have seen so far, all nodes together."""
        return sum(mount.stats()["fsync_calls"] for mount in self.mounts.values())

    def stop_workload(self) -> None:
        if self.workload is not None and self.workload.running:
            self.workload.stop()
            self.event(self.workload.describe_stop())

    def heal_all(self) -> None:
        """Undo faults still in effect (a paused node, a partition), so a kept lab is whole."""
        for name, heal in list(self.heals.items()):
            heal()
            self.heals.pop(name, None)
            self.event(f"healed {name}")

    def close(self) -> None:
        self.stop_workload()
        if self.watch is not None:
            self.watch.stop()
        self.kind.close(self)
