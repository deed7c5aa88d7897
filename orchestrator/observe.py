"""After the steps: read every acknowledged key back from the master of the moment, and
gather what the servers and the probe say (roles, replicas in sync, Sentinel's events,
the client's view of the fault) for the metrics and the timeline."""

from __future__ import annotations

import time

from .clients import Remap, admin_client, is_ready, replication_states, wait_until
from .cluster import cluster_client, log_events, majority_view, not_yet_formed, redirect_count, shards
from .context import Event, RunContext
from .errors import ScenarioAborted
from .metrics import Observation, parse_server_load_s, switches
from .probe import OK, READ_BATCH, Probe, batches
from .topology import MASTER, REPLICA, Node, Topology

READ_BACK_READY_TIMEOUT_S = 30.0


def observe(ctx: RunContext) -> Observation:
    """Stop the probe; find the master now; read every acknowledged key back from it; note
    what the servers say (roles, replicas in sync, Sentinel events)."""
    probe = ctx.probe
    if probe is None:
        raise ScenarioAborted("the scenario never started the probe", "add `- probe: start` to its steps")
    ctx.stop_probe()
    topo = ctx.topo
    if topo.kind == "cluster":
        return _observe_cluster(ctx, probe)
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
    if ctx.watch is not None:
        ctx.watch.stop()
        ctx.server["failover_watch"] = "sentinel"
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
            present = sum(1 for batch in batches(keys, READ_BATCH) for v in client.mget(batch) if v is not None)
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
        remap, current = Remap(ctx.topo), None
        for at, port in ctx.probe.connections:
            node = remap.by_host_port(port)
            if node is not None and node.name != current:
                found.append(Event(at - ctx.t0, f"probe connected to {node.name}", "client"))
                current = node.name
    return found


def promotions(topo: Topology, obs: Observation) -> list[str]:
    """Each failover as the servers announced it (metrics.switches, the events `failovers`
    counts): Sentinel's "old -> new" master, or the cluster replica that won its election."""
    found = []
    for event in switches(obs):
        if event.name == "+switch-master":   # detail: <master name> <old ip> <port> <new ip> <port>
            _, old, _, new, _ = event.detail.split()
            found.append(f"{topo.name_of(old)} -> {topo.name_of(new)}")
        else:
            found.append(f"{event.source} (won the election)")
    return found


def server_events(ctx: RunContext, obs: Observation) -> list[Event]:
    """Sentinel's events, with the addresses it announces replaced by node names."""
    ips = {n.ip: n.name for n in ctx.topo.nodes if n.ip}

    def named(text: str) -> str:
        return " ".join(ips.get(word, _named_address(word, ips)) for word in text.split(" "))

    return [Event(e.at - ctx.t0, f"{e.source}: {named(e.describe())}", "server") for e in obs.server_events]


def _named_address(word: str, ips: dict[str, str]) -> str:
    """`10.227.188.12:6379` -> `redis-2:6379`."""
    host, _, port = word.rpartition(":")
    return f"{ips[host]}:{port}" if host in ips else word


def _observe_cluster(ctx: RunContext, probe: Probe) -> Observation:
    """Wait until the cluster is ok again, read every key back through RedisCluster (each from the
    master of its slot), and gather the cluster's own figures: its events from the nodes' logs,
    the redirects the nodes sent, and the slot map every node agrees on."""
    topo, up = ctx.topo, ctx.cluster_up()
    if not wait_until(lambda: not_yet_formed(topo, up) is None, READ_BACK_READY_TIMEOUT_S):
        raise ScenarioAborted(f"the cluster was not ok for the read-back within {READ_BACK_READY_TIMEOUT_S:g} s: "
                              f"{not_yet_formed(topo, up)}")
    client = cluster_client(topo)
    try:
        readback = probe.read_back(_ClusterReader(client))
    finally:
        client.close()
    view, agreeing, _ = majority_view(topo, up)
    counts = [shard.slot_count for shard in shards(view)]
    ctx.server.update(nodes_agreeing=agreeing, master_slots_min=min(counts), master_slots_max=max(counts),
                      redirects=redirect_count(up) - ctx.server.get("redirects_at_start", 0),
                      failover_watch="cluster")
    names = {n.id: n.name for n in view}
    events = log_events(ctx.runtime, topo, names, time.time() - time.monotonic(), since=ctx.t0)
    return Observation(attempts=probe.attempts, readback=readback, marks=ctx.marks,
                       probe_window=(probe.started_at, probe.stopped_at), server=ctx.server, server_events=events)


class _ClusterReader:
    """Probe.read_back reads with mget; in a cluster the keys live on several masters."""

    def __init__(self, client):
        self._client = client

    def mget(self, keys):
        return self._client.mget_nonatomic(keys)
