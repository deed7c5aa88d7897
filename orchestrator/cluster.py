"""Redis Cluster: form it, read each node's view of it, check that the nodes agree, and read
the cluster's own events from the nodes' logs.

Nodes announce fixed addresses inside the lab network; host clients reach them through the
published ports with redis-py's `address_remap` (`cluster_client`), the same translation
the Sentinel labs use (`clients.Remap`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import redis
from redis.cluster import ClusterNode as StartupNode
from redis.cluster import RedisCluster
from redis.crc import key_slot

from .clients import (HOST, PROBE_CONNECT_TIMEOUT_S, PROBE_SOCKET_TIMEOUT_S, Remap, admin_client, no_retry,
                      replication_of)
from .sentinel_watch import ServerEvent
from .topology import REDIS_PORT, SPARE, Node, Topology

SLOTS = 16384


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES, with the address turned into the lab's node name."""

    id: str
    name: str
    role: str                          # master | replica
    master_id: str | None              # for a replica: its master's id
    failing: bool                      # flagged fail or fail? (PFAIL)
    slots: tuple[tuple[int, int], ...]  # slot ranges it serves (masters)

    @property
    def slot_count(self) -> int:
        return slot_count(self.slots)


def slot_count(ranges) -> int:
    """How many slots the (start, end) ranges cover."""
    return sum(end - start + 1 for start, end in ranges)


def members(topo: Topology) -> list[Node]:
    """The data nodes that form the cluster at start (not the spare one a scenario adds)."""
    return [n for n in topo.data_nodes if n.role != SPARE]


def create_cluster(runtime, topo: Topology) -> str:
    """`redis-cli --cluster create` inside the lab network (run in the first node's container):
    the first `masters` nodes become masters, the others their replicas."""
    nodes = members(topo)
    masters = sum(1 for n in nodes if n.role == "master")
    per_master = (len(nodes) - masters) // masters
    return runtime.exec(nodes[0], ["redis-cli", "--cluster", "create", *[f"{n.ip}:{REDIS_PORT}" for n in nodes],
                                   "--cluster-replicas", str(per_master), "--cluster-yes"])


def _cluster_command(node: Node, subcommand: str, timeout_s: float = 0.5) -> str | None:
    """The text a CLUSTER subcommand answers on `node`, or None if it does not answer."""
    client = admin_client(node, timeout_s=timeout_s)
    try:
        raw = client.execute_command("CLUSTER", subcommand)
    except redis.RedisError:
        return None
    finally:
        client.close()
    return raw if isinstance(raw, str) else raw.decode()


def cluster_nodes(node: Node, topo: Topology) -> list[ClusterNode] | None:
    """CLUSTER NODES as `node` sees it, or None if it does not answer."""
    text = _cluster_command(node, "NODES")
    return None if text is None else parse_cluster_nodes(text, topo)


def parse_cluster_nodes(text: str, topo: Topology) -> list[ClusterNode]:
    found = []
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags, master = parts[0], parts[1], set(parts[2].split(",")), parts[3]
        ip = address.split(":")[0]
        slots = []
        for item in parts[8:]:
            if item.startswith("["):      # a slot being migrated or imported
                continue
            start, _, end = item.partition("-")
            slots.append((int(start), int(end or start)))
        found.append(ClusterNode(id=node_id, name=topo.name_of(ip), role="master" if "master" in flags else "replica",
                                 master_id=None if master == "-" else master,
                                 failing=bool(flags & {"fail", "fail?"}), slots=tuple(slots)))
    return found


def cluster_state(node: Node) -> str | None:
    """cluster_state from CLUSTER INFO (ok | fail), or None if the node does not answer."""
    match = re.search(r"cluster_state:(\w+)", _cluster_command(node, "INFO") or "")
    return match.group(1) if match else None


def slot_map(view: list[ClusterNode]) -> tuple:
    """The slot map a view describes: (ranges, master name) sorted; what nodes must agree on."""
    return tuple(sorted((r, n.name) for n in view if n.role == "master" for r in n.slots))


def role_map(view: list[ClusterNode]) -> tuple:
    """Who replicates whom in a view: (node, role, its master's name) sorted."""
    names = {n.id: n.name for n in view}
    return tuple(sorted((n.name, n.role, names.get(n.master_id or "", "")) for n in view))


def majority_view(topo: Topology, nodes: list[Node] | None = None) -> tuple[list[ClusterNode] | None, int, int]:
    """(the view most answering nodes share, how many share its slot map, how many answered)."""
    return _majority([cluster_nodes(n, topo) for n in (members(topo) if nodes is None else nodes)])


def _majority(views: list[list[ClusterNode] | None]) -> tuple[list[ClusterNode] | None, int, int]:
    answered = [v for v in views if v is not None]
    if not answered:
        return None, 0, 0
    counts = Counter(slot_map(v) for v in answered)
    best, agreeing = counts.most_common(1)[0]
    # of the views with that slot map, the one that knows the most replica-master links
    view = max((v for v in answered if slot_map(v) == best), key=lambda v: sum(1 for n in v if n.master_id))
    return view, agreeing, len(answered)


def not_yet_formed(topo: Topology, nodes: list[Node] | None = None) -> str | None:
    """What the cluster still lacks, or None: every node answers with cluster_state:ok, all
    agree on one slot map covering the 16384 slots, and every replica's link is up (a replica
    that never synced cannot take over)."""
    nodes = members(topo) if nodes is None else nodes
    if not nodes:
        return "no cluster node is up"
    for node in nodes:
        state = cluster_state(node)
        if state != "ok":
            return f"{node.name} says cluster_state:{state}"
    views = [cluster_nodes(n, topo) for n in nodes]
    view, agreeing, _ = _majority(views)
    if view is None or agreeing < len(nodes):
        return f"{agreeing} of {len(nodes)} nodes agree on the slot map"
    if len({role_map(v) for v in views if v is not None}) > 1:
        return "the nodes do not agree yet on which node replicates which (gossip still spreading)"
    covered = sum(n.slot_count for n in view if n.role == "master")
    if covered != SLOTS:
        return f"{covered} of {SLOTS} slots are served"
    for n in view:
        if n.role == "replica" and not n.failing:
            state = replication_of(topo.node(n.name), topo)
            if state is None or not state.link_up:
                return f"{n.name} has not synced with its master yet"
    return None


@dataclass(frozen=True)
class Shard:
    master: str                          # node name of the master
    replicas: tuple[str, ...]
    slots: tuple[tuple[int, int], ...]

    @property
    def slot_count(self) -> int:
        return slot_count(self.slots)

    def holds(self, slot: int) -> bool:
        return any(start <= slot <= end for start, end in self.slots)


def shards(view: list[ClusterNode]) -> list[Shard]:
    """The masters with their slots and replicas, in slot order (shard 0 serves slot 0)."""
    result = []
    for master in (n for n in view if n.role == "master" and n.slots):
        replicas = tuple(sorted(n.name for n in view if n.master_id == master.id))
        result.append(Shard(master=master.name, replicas=replicas, slots=tuple(sorted(master.slots))))
    return sorted(result, key=lambda s: s.slots[0][0])


def redirect_count(nodes: list[Node]) -> int:
    """MOVED and ASK replies the nodes have sent since they started (INFO errorstats)."""
    total = 0
    for node in nodes:
        client = admin_client(node, timeout_s=0.5)
        try:
            stats = client.info("errorstats")
        except redis.RedisError:
            continue
        finally:
            client.close()
        total += sum(stats.get(f"errorstat_{code}", {}).get("count", 0) for code in ("MOVED", "ASK"))
    return total


def shard_of_key(key: str, layout: list[Shard]) -> int | None:
    slot = key_slot(key.encode())
    return next((i for i, shard in enumerate(layout) if shard.holds(slot)), None)


def cluster_client(topo: Topology) -> RedisCluster:
    """redis-py's RedisCluster through the published ports: `address_remap` turns every
    announced address into 127.0.0.1 and the node's port. No hidden retries: a write that
    fails raises, and the probe counts it."""
    remap = Remap(topo)
    startup = [StartupNode(HOST, n.host_port) for n in members(topo)]   # any that answers will do
    return RedisCluster(startup_nodes=startup, address_remap=lambda a: remap.host_address(*a),
                        socket_timeout=PROBE_SOCKET_TIMEOUT_S, socket_connect_timeout=PROBE_CONNECT_TIMEOUT_S,
                        cluster_error_retry_attempts=0, retry=no_retry(), require_full_coverage=False)


# ------------------------------------------------------------------ the cluster's own events

_ID = r"(\w+)(?: \([^)]*\))?"   # a node ID; Redis 7.2 adds its name in brackets: "<id> ()"
_EVENTS = (  # log line (Redis 7.0 and 7.2 cluster.c) -> short name on the timeline
    (re.compile(rf"Marking node {_ID} as failing \(quorum reached\)"), "node marked FAIL"),
    (re.compile(rf"FAIL message received from {_ID} about {_ID}"), "FAIL message received"),
    (re.compile(r"Start of election delayed for (\d+) milliseconds"), "election delayed"),
    (re.compile(r"Starting a failover election for epoch (\d+)"), "election started"),
    (re.compile(rf"Failover auth granted to {_ID}"), "failover auth granted"),
    (re.compile(r"Failover election won"), "failover-won"),
    (re.compile(r"configEpoch set to (\d+) after successful failover"), "new configEpoch"),
    (re.compile(r"Cluster state changed: (\w+)"), "cluster state changed"),
    (re.compile(rf"Clear FAIL state for node {_ID}"), "FAIL cleared"),
    (re.compile(rf"Configuration change detected. Reconfiguring myself as a replica of {_ID}"), "becomes replica"),
)
_NODE_ID = re.compile(r"\b[0-9a-f]{40}\b")


def log_events(runtime, topo: Topology, names_by_id: dict[str, str], wall_to_monotonic: float,
               since: float) -> list[ServerEvent]:
    """The cluster events each node logged, timed by Docker's log timestamps (UTC, ns) and put on
    the run's monotonic clock (`wall_to_monotonic` = time.time() - time.monotonic()). Node IDs in
    the messages are replaced by node names."""
    found = []
    for node in topo.data_nodes:
        for line in runtime.logs(node, timestamps=True).splitlines():
            stamp, _, message = line.partition(" ")
            for pattern, name in _EVENTS:
                if pattern.search(message):
                    at = _docker_time(stamp) - wall_to_monotonic
                    if at >= since:
                        text = _NODE_ID.sub(lambda m: names_by_id.get(m.group(0), m.group(0)[:8]), _after_level(message))
                        found.append(ServerEvent(at=at, source=node.name, name=name, detail=text))
                    break
    return sorted(found, key=lambda e: e.at)


def _docker_time(stamp: str) -> float:
    """RFC 3339 with nanoseconds (2026-11-28T10:52:41.107219582Z) -> POSIX seconds."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(base + "+00:00").timestamp() + float(f"0.{frac or 0}")


def _after_level(text: str) -> str:
    """Redis' log line "1:M 28 Nov 2026 10:52:41.105 * message" -> "message"."""
    match = re.match(r"^\d+:\w \d+ \w+ \d+ [\d:.]+ [.*#-] (.*)$", text)
    return match.group(1) if match else text
