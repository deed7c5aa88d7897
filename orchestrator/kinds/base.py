"""The interface every topology kind implements, with the defaults most kinds keep.

A kind answers everything that differs between a single node, a replicated master, a
Sentinel-watched master and a cluster, so that no code outside `kinds/` asks which kind a lab
is. Its static half (fields, nodes and settings, targets, what `lab up` prints) is all that
`lab validate` needs; its live half receives the lab's handle or the run's context, which
carry Docker (`runtime`) and the Redis servers (`nodes`), so this package never imports
redis-py or python-on-whales itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

from ..engine.poll import wait_until
from ..engine.topology import (MASTER, OLD_MASTER, Node, Setting, Topology, base_settings, lab_addresses, labels_for,
                               merge_settings, mode_keeps_data, project_name)
from ..errors import ScenarioAborted
from ..events import Event, ServerEvent
from ..spec import Lab, Param, Scenario, parse_duration


@dataclass(frozen=True)
class WriteRoute:
    """How a workload reaches the lab: `connect()` returns a writer (engine.nodes.DirectWriter
    or ClusterWriter); `via` says how, for the timeline."""

    connect: Callable[[], Any]
    via: str


@dataclass(frozen=True)
class KeyRange:
    """A part of the key space that fails and recovers on its own (a cluster shard): its label
    and how to tell whether a key belongs to it."""

    label: str
    master: str
    replicas: tuple[str, ...]
    slots: int
    holds: Callable[[str], bool]


class Kind:
    """A topology kind. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    summary: ClassVar[str]
    fields: ClassVar[tuple[Param, ...]] = ()
    capabilities: ClassVar[frozenset[str]] = frozenset()
    conditions: ClassVar[tuple[str, ...]] = ()      # wait_for conditions beyond ready and exited
    roles: ClassVar[tuple[str, ...]] = (MASTER, OLD_MASTER)

    # ------------------------------------------------------------ the lab file

    def check_params(self, params: dict[str, Any], fail: Callable[[str, str], None]) -> dict[str, Any]:
        """Cross-field checks of the kind's topology fields; returns them (normalised)."""
        return params

    def owned_settings(self) -> Mapping[str, str]:
        """redis.conf settings this kind sets itself -> why a lab file may not set them."""
        return {}

    def data_names(self, params: Mapping[str, Any], uses: Callable[[str], bool]) -> list[str]:
        """Names of the data nodes, in port order."""
        return ["redis-1"]

    def other_names(self, params: Mapping[str, Any]) -> list[str]:
        """Names of the nodes that hold no data (Sentinels), after the data nodes."""
        return []

    def targets(self, params: Mapping[str, Any], uses: Callable[[str], bool]) -> tuple[str, ...]:
        return tuple(self.data_names(params, uses) + self.other_names(params)) + self.roles

    def replicas_per_master(self, params: Mapping[str, Any]) -> int:
        return 0

    def node_count(self, params: Mapping[str, Any], uses: Callable[[str], bool]) -> int:
        return len(self.data_names(params, uses)) + len(self.other_names(params))

    # ------------------------------------------------------------ the plan

    def derive(self, lab: Lab, mode: str, run_id: str, image: str, port_base: int,
               scenario: Scenario | None = None) -> Topology:
        """Expand the lab's topology spec into nodes for one run in one persistence mode. Data
        nodes get ports port_base, port_base+1, ...; other nodes the ports after them."""
        project = project_name(lab.name, run_id)
        uses = scenario.uses if scenario is not None else (lambda action: False)
        extra = dict(lab.topology.config)
        if scenario is not None:
            extra.update(scenario.config)
        lab_friendly = [Setting(k, v, "set by the lab file") for k, v in extra.items()]
        base = base_settings(mode, lab.topology.save)
        names = self.data_names(lab.topology.params, uses)
        subnet, ips = self.addresses(port_base, names, self.other_names(lab.topology.params))
        filesystem = power_loss_filesystem(scenario)
        nodes = []
        for i, name in enumerate(names):
            role = self.role_at_start(lab.topology.params, i, name, uses)
            settings = merge_settings(base + self.data_settings(lab.topology.params, name, role, names, ips),
                                      lab_friendly)
            nodes.append(Node(name=name, role=role, container=f"{project}-{name}", host_port=port_base + i,
                              volume=f"{project}-{name}-data" if mode_keeps_data(mode) and not filesystem else None,
                              config_file=f"{name}.conf", settings=settings,
                              edge_network=f"{project}-{name}" if self.edges(uses) else None, ip=ips.get(name),
                              data_mount=f"mounts/{name}" if filesystem else None))
        nodes += self.other_nodes(lab, project, port_base + len(names), names, ips, uses)
        return Topology(lab=lab.name, kind=self.name, mode=mode, run_id=run_id, project=project, image=image,
                        nodes=tuple(nodes), labels=labels_for(lab.name, run_id, mode), subnet=subnet,
                        filesystem=filesystem)

    def addresses(self, port_base: int, data_names: list[str], other_names: list[str]):
        """(subnet, {name: fixed address}) of the lab network; (None, {}) for a kind whose nodes
        need not know each other."""
        return None, {}

    def edges(self, uses: Callable[[str], bool]) -> bool:
        """Whether every node gets a network of its own to the host (for partitions)."""
        return False

    def role_at_start(self, params: Mapping[str, Any], index: int, name: str, uses) -> str:
        return MASTER

    def data_settings(self, params: Mapping[str, Any], name: str, role: str, names: list[str],
                      ips: dict[str, str]) -> list[Setting]:
        """redis.conf lines the kind adds to a data node (replicaof, cluster-enabled ...)."""
        return []

    def other_nodes(self, lab: Lab, project: str, first_port: int, data_names: list[str], ips: dict[str, str],
                    uses) -> list[Node]:
        return []

    def up_lines(self, topo: Topology) -> list[str]:
        """What `lab up` prints after the list of nodes: how to use this kind of lab."""
        return []

    # ------------------------------------------------------------ live: bring-up

    def start_stages(self, topo: Topology) -> list[list[Node]]:
        """The nodes in the order they start: a stage starts once every node of the one before
        answers. Default: all at once."""
        return [list(topo.nodes)]

    def form(self, lab) -> None:
        """After every node answers: make the topology (e.g. create the cluster)."""

    def not_settled(self, lab) -> str | None:
        """What the lab still lacks before a fault can teach anything, or None when ready."""
        return None

    # ------------------------------------------------------------ live: a run

    def new_facts(self, topo: Topology) -> Any:
        """The kind's own facts for one run (a dataclass its metrics read), or None."""
        return None

    def resolve(self, ctx, role: str) -> Node | None:
        """The node a role names now (`master`, `replica`, ...), or None."""
        return ctx.topo.data_nodes[0] if role == MASTER else None

    def condition(self, ctx, name: str) -> tuple[Callable[[], bool], Callable[[], str], Callable[[], str]]:
        """For `wait_for: <name>` (one of the kind's `conditions`): (check, what is still
        missing, what the timeline says once it holds)."""
        raise KeyError(name)

    def writes(self, ctx, wait_replicas: int, wait_timeout_ms: int) -> WriteRoute:
        """How a workload writes: to the single node."""
        node = ctx.topo.data_nodes[0]
        return WriteRoute(lambda: ctx.nodes.direct_writer(node, wait_replicas, wait_timeout_ms), f"to {node.name}")

    def client_env(self, ctx) -> dict[str, str]:
        """Where the lab is, for a client program of the user's own (environment variables,
        documented in README): the kind, the data nodes' host addresses, the master's at this
        moment, and the map from lab-network addresses (what servers announce) to host ports."""
        master = self.resolve(ctx, MASTER)
        return {
            "LAB_KIND": self.name,
            "LAB_NODES": ",".join(f"127.0.0.1:{n.host_port}" for n in ctx.topo.data_nodes),
            "LAB_MASTER": f"127.0.0.1:{master.host_port}" if master is not None else "",
            "LAB_ADDRESS_MAP": ",".join(f"{n.ip}:{n.port}=127.0.0.1:{n.host_port}" for n in ctx.topo.nodes if n.ip),
        }

    def key_ranges(self, ctx) -> list[KeyRange]:
        """Parts of the key space that fail on their own (cluster shards) at the workload's start; []: one."""
        return []

    def start_events(self, ctx) -> None:
        """Start listening to the servers' events, if the kind has a live source (ctx.watch)."""

    def reader(self, ctx):
        """After recovery: a client (mget, close) on the data as it stands, for the read-back.
        Raises ScenarioAborted if no node can serve it in time."""
        return ctx.nodes.admin_client(ready_master(ctx), timeout_s=10)

    def observe(self, ctx, acked_before_fault: list[str]) -> None:
        """After the steps and the read-back: record the kind's own figures in ctx.kind_facts.
        `acked_before_fault` are the keys acknowledged before the fault took effect."""

    def server_events(self, ctx, offset: float) -> list[ServerEvent]:
        """The servers' events of the run, on the run's monotonic clock (`offset`: wall - monotonic)."""
        return ctx.watch.events if ctx.watch is not None else []

    def final_roles(self, ctx) -> dict[str, str]:
        """Each data node's role at the end, as the servers say ({} where roles do not change)."""
        return {}

    def connection_events(self, ctx, connections: list[tuple[float, int | None]]) -> list[Event]:
        """The client's moves between nodes, for the timeline ([] when there is one node)."""
        return []

    def close(self, ctx) -> None:
        """Release what the kind opened for the run (clients)."""


class Replicated(Kind):
    """A kind whose nodes replicate each other over a lab network: they know each other by fixed
    addresses, a scenario that partitions gives every node a network of its own to the host, and
    `replicas` (a field of the kind) replicas follow each master."""

    # lab-friendly: Redis 7's default waits 5 s for more replicas before a diskless full sync
    SYNC_AT_ONCE = Setting("repl-diskless-sync-delay", "0", "lab-friendly: start a full sync at once (the 7.x "
                                                           "default waits 5 s for more replicas to join)")

    def replicas_per_master(self, params) -> int:
        return params["replicas"]

    def addresses(self, port_base, data_names, other_names):
        return lab_addresses(port_base, data_names, other_names)

    def edges(self, uses) -> bool:
        return uses("partition")


READ_BACK_READY_TIMEOUT_S = 30.0


def power_loss_filesystem(scenario: Scenario | None) -> dict[str, float] | None:
    """The power-loss filesystem's settings when the scenario loses power (its first power_loss
    step's), else None: then every data directory is served through it, from bring-up on."""
    step = next((s for s in scenario.steps if s.action == "power_loss"), None) if scenario else None
    if step is None:
        return None
    return {"dirty_expire_s": parse_duration(step.args["dirty_expire"]),
            "writeback_interval_s": parse_duration(step.args["writeback_interval"])}


def ready_master(ctx, timeout_s: float = READ_BACK_READY_TIMEOUT_S) -> Node:
    """The master after recovery, once it answers and has loaded its data (where the read-back
    happens). Raises ScenarioAborted if none is ready within `timeout_s`."""
    found: list[Node] = []

    def ready() -> bool:
        node = ctx.resolve(MASTER)
        found[:] = [node]
        return ctx.nodes.is_ready(node)

    if not wait_until(ready, timeout_s):
        raise ScenarioAborted(f"no master was ready for the read-back within {timeout_s:g} s"
                              + (f" (last candidate {found[0].name})" if found else ""))
    return found[0]
