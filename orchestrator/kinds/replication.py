"""A master and its replicas (REPLICAOF), no Sentinel: failover is by hand. The Sentinel kind
builds on this one."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

from ..engine.topology import MASTER, OLD_MASTER, REDIS_PORT, REPLICA, Node, Setting, Topology
from ..events import Event
from ..measure.metrics import fact_metric
from ..spec import Param
from ..spec.registry import register_kind
from .base import Replicated, WriteRoute

READ_BATCH = 1000


@dataclass
class ReplicationFacts:
    """What the servers of a replicated lab reported at the end of a run."""

    replicas_in_sync: int | None = None
    max_node_kept: int | None = None


def master_by_roles(states: Mapping[str, Any]) -> str | None:
    """The master the replicas follow: of the nodes that say they are master, the one most
    replicas point at with their link up (an isolated old master still calls itself master)."""
    masters = [name for name, s in states.items() if s.role == "master"]
    if not masters:
        return None
    followers = Counter(s.master for s in states.values() if s.role == "replica" and s.link_up)
    return max(masters, key=lambda name: (followers.get(name, 0), -masters.index(name)))


def replication_roles(ctx) -> dict[str, str]:
    """Each data node's role at the end as INFO replication says (`down` if it does not answer)."""
    states = ctx.nodes.replication_states(ctx.topo)
    roles = {}
    for node in ctx.topo.data_nodes:
        state = states.get(node.name)
        if state is None:
            roles[node.name] = "down"
        elif state.role == MASTER:
            roles[node.name] = MASTER
        else:
            roles[node.name] = f"replica of {state.master} (link {'up' if state.link_up else 'down'})"
    return roles


class Replication(Replicated):
    name = "replication"
    summary = "a master and its replicas (REPLICAOF); failover is by hand"
    fields = (Param("replicas", "count", default=2, most=5),)
    capabilities = frozenset({"network", "replicaof"})
    conditions = ("new_master", "replicas_synced")
    roles = (MASTER, REPLICA, OLD_MASTER)

    # ------------------------------------------------------------ the plan

    def owned_settings(self) -> Mapping[str, str]:
        why = "set by the tool: the topology says who replicates whom (and `promote` changes it)"
        return {"replicaof": why, "slaveof": why}

    def data_names(self, params, uses) -> list[str]:
        return [f"redis-{i + 1}" for i in range(1 + params["replicas"])]

    def role_at_start(self, params, index, name, uses) -> str:
        return MASTER if index == 0 else REPLICA

    def data_settings(self, params, name, role, names, ips) -> list[Setting]:
        settings = [self.SYNC_AT_ONCE]
        if role == REPLICA:
            settings.append(Setting("replicaof", f"{ips[names[0]]} {REDIS_PORT}", f"replicate the master at start "
                                                                                 f"({names[0]})"))
        return settings

    # ------------------------------------------------------------ live: bring-up

    def not_settled(self, lab) -> str | None:
        """Every replica's link to the first node is up."""
        master = lab.topo.data_nodes[0].name
        for node in lab.topo.data_nodes[1:]:
            state = lab.nodes.replication_of(node, lab.topo)
            if state is None:
                return f"{node.name} does not answer INFO replication"
            if state.role != "replica":
                return f"{node.name} says it is a master, not a replica of {master}"
            if state.master != master:
                return f"{node.name} replicates {state.master or 'an address outside the lab'}, not {master}"
            if not state.link_up:
                return f"{node.name} is not yet in sync with {master}: {state.link_report}"
        return None

    # ------------------------------------------------------------ live: roles

    def new_facts(self, topo: Topology) -> ReplicationFacts:
        return ReplicationFacts()

    def master_name(self, ctx) -> str | None:
        """The node that is master now: the one the replicas follow."""
        return master_by_roles(ctx.nodes.replication_states(ctx.topo))

    def resolve(self, ctx, role: str) -> Node | None:
        if role not in (MASTER, REPLICA):
            return None
        master = self.master_name(ctx)
        if role == MASTER:
            return ctx.topo.node(master) if master else ctx.topo.with_role(MASTER)[0]
        states = ctx.nodes.replication_states(ctx.topo)
        replicas = [n for n in ctx.topo.data_nodes if n.name in states and states[n.name].role == REPLICA
                    and states[n.name].master == master]
        return (replicas or ctx.topo.with_role(REPLICA) or [None])[0]

    def condition(self, ctx, name: str):
        checks = {"new_master": self._new_master_ready, "replicas_synced": self._replicas_synced}
        if name not in checks:
            return super().condition(ctx, name)
        return ((lambda: checks[name](ctx)), (lambda: self._roles(ctx)),
                (lambda: f"{name.replace('_', ' ')}: {ctx.resolve(MASTER).name} is master"))

    def _new_master_ready(self, ctx) -> bool:
        old = ctx.resolve(OLD_MASTER).name
        name = self.master_name(ctx)
        if name is None or name == old:
            return False
        states = ctx.nodes.replication_states(ctx.topo)
        return name in states and states[name].role == "master"

    def _replicas_synced(self, ctx) -> bool:
        """Every data node the scenario has not left down answers, and all but the master
        replicate it with their link up (a node just started must answer first: it may still be loading)."""
        master = self.master_name(ctx)
        states = ctx.nodes.replication_states(ctx.topo)
        if master is None or master not in states or states[master].role != "master":
            return False
        expected = [n.name for n in ctx.topo.data_nodes if n.name not in ctx.down and n.name != master]
        return all(name in states and states[name].role == "replica" and states[name].master == master
                   and states[name].link_up for name in expected)

    def _roles(self, ctx) -> str:
        roles = ", ".join(f"{n}: {s.role}" + (f" of {s.master}" if s.master else "")
                          for n, s in ctx.nodes.replication_states(ctx.topo).items())
        return f"roles now: {roles or 'none answers'}"

    # ------------------------------------------------------------ live: the workload

    def writes(self, ctx, wait_replicas: int, wait_timeout_ms: int) -> WriteRoute:
        """To the master as the replicas see it now (a client repointed by an operator)."""
        def connect():
            name = master_by_roles(ctx.nodes.replication_states(ctx.topo))
            if name is None:
                raise ctx.nodes.NoMasterError("no master: no node that answers says role:master")
            return ctx.nodes.direct_writer(ctx.topo.node(name), wait_replicas, wait_timeout_ms)
        return WriteRoute(connect, "to the node the replicas follow")

    def connection_events(self, ctx, connections) -> list[Event]:
        remap, current, found = ctx.nodes.Remap(ctx.topo), None, []
        for at, port in connections:
            node = remap.by_host_port(port) if port is not None else None
            if node is not None and node.name != current:
                found.append(Event(at - ctx.t0, f"probe connected to {node.name}", "client"))
                current = node.name
        return found

    # ------------------------------------------------------------ live: after the steps

    def observe(self, ctx, acked_before_fault: list[str]) -> None:
        master = self.master_name(ctx)
        states = ctx.nodes.replication_states(ctx.topo)
        facts: ReplicationFacts = ctx.kind_facts
        facts.replicas_in_sync = sum(1 for s in states.values()
                                     if s.role == REPLICA and s.master == master and s.link_up)
        if "fault" in ctx.marks:
            facts.max_node_kept = max((self._kept(ctx, node, acked_before_fault) for node in ctx.topo.data_nodes),
                                      default=0)

    @staticmethod
    def _kept(ctx, node: Node, keys: list[str]) -> int:
        """How many of `keys` the node holds now (0 if it does not answer)."""
        client = ctx.nodes.admin_client(node, timeout_s=10)
        try:
            return sum(1 for start in range(0, len(keys), READ_BATCH)
                       for value in client.mget(keys[start:start + READ_BATCH]) if value is not None)
        except ctx.nodes.ERRORS:
            return 0
        finally:
            client.close()

    def final_roles(self, ctx) -> dict[str, str]:
        return replication_roles(ctx)


REPLICATION = register_kind(Replication())


replicas_in_sync = fact_metric(
    "replicas_in_sync", "nodes", "data nodes replicating the final master with their link up",
    """At the end, the data nodes whose INFO replication says role:slave, master_host = the final
    master and master_link_status:up. After a failover and the old master's return, all of them.""",
    of="kind_facts", requires=frozenset({"replicaof"}))


max_node_kept = fact_metric(
    "max_node_kept", "writes", "most of the before-fault acknowledged writes any one data node still holds",
    """After recovery, the writes acknowledged before the fault are read back (MGET) from every data
    node that answers; this is the largest count found on one node. 0 means every copy was wiped.""",
    of="kind_facts", workload="writes", requires=frozenset({"replicaof"}),
    needs=("kill", "stop", "pause", "partition", "power_loss"))
