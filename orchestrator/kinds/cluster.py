"""Redis Cluster: masters serving shares of the 16384 slots, each with replicas; the cluster
fails over by itself. Here: form it, read each node's view of it, check that the nodes agree,
route the probe through redis-py's RedisCluster, and read the cluster's own events from the
nodes' logs.

Nodes announce fixed addresses inside the lab network; host clients reach them through the
published ports with redis-py's `address_remap` (engine.nodes.cluster_client).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..engine.poll import wait_until
from ..engine.topology import MASTER, OLD_MASTER, REDIS_PORT, REPLICA, SPARE, Node, Setting, Topology
from ..errors import ScenarioAborted
from ..events import ServerEvent, log_events
from ..measure.metrics import fact_metric
from ..spec import Param
from ..spec.registry import metric, register_kind
from ..workloads.writes import range_gaps
from .base import KeyRange, Replicated, WriteRoute
from .replication import replication_roles

SLOTS = 16384
CLUSTER_DEFAULTS = {"cluster-node-timeout": "2000"}   # lab-friendly; Redis' default is 15000
READ_BACK_READY_TIMEOUT_S = 30.0


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


@dataclass
class ClusterFacts:
    """What a run in the cluster lab read from the servers (and which nodes form the cluster)."""

    members: list[Node] = field(default_factory=list)   # grows with add_node
    shards_at_start: list[Shard] = field(default_factory=list)
    redirects_at_start: int = 0
    redirects: int | None = None
    nodes_agreeing: int | None = None
    master_slots_min: int | None = None
    master_slots_max: int | None = None
    slots_moved: int | None = None
    keys_moved: int | None = None
    move_s: float | None = None


def slot_count(ranges) -> int:
    """How many slots the (start, end) ranges cover."""
    return sum(end - start + 1 for start, end in ranges)


def members(topo: Topology) -> list[Node]:
    """The data nodes that form the cluster at start (not the spare one a scenario adds)."""
    return [n for n in topo.data_nodes if n.role != SPARE]


# ------------------------------------------------------------------ reading the cluster

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


def cluster_nodes(nodes, node: Node, topo: Topology) -> list[ClusterNode] | None:
    """CLUSTER NODES as `node` sees it, or None if it does not answer."""
    text = nodes.cluster_text(node, "NODES")
    return None if text is None else parse_cluster_nodes(text, topo)


def cluster_state(nodes, node: Node) -> str | None:
    """cluster_state from CLUSTER INFO (ok | fail), or None if the node does not answer."""
    match = re.search(r"cluster_state:(\w+)", nodes.cluster_text(node, "INFO") or "")
    return match.group(1) if match else None


def slot_map(view: list[ClusterNode]) -> tuple:
    """The slot map a view describes: (ranges, master name) sorted; what nodes must agree on."""
    return tuple(sorted((r, n.name) for n in view if n.role == "master" for r in n.slots))


def role_map(view: list[ClusterNode]) -> tuple:
    """Who replicates whom in a view: (node, role, its master's name) sorted."""
    names = {n.id: n.name for n in view}
    return tuple(sorted((n.name, n.role, names.get(n.master_id or "", "")) for n in view))


def majority_view(nodes, topo: Topology, up: list[Node]) -> tuple[list[ClusterNode] | None, int, int]:
    """(the view most answering nodes share, how many share its slot map, how many answered)."""
    return _majority([cluster_nodes(nodes, n, topo) for n in up])


def _majority(views: list[list[ClusterNode] | None]) -> tuple[list[ClusterNode] | None, int, int]:
    answered = [v for v in views if v is not None]
    if not answered:
        return None, 0, 0
    counts = Counter(slot_map(v) for v in answered)
    best, agreeing = counts.most_common(1)[0]
    # of the views with that slot map, the one that knows the most replica-master links
    view = max((v for v in answered if slot_map(v) == best), key=lambda v: sum(1 for n in v if n.master_id))
    return view, agreeing, len(answered)


def not_yet_formed(nodes, topo: Topology, up: list[Node]) -> str | None:
    """What the cluster still lacks, or None: every node answers with cluster_state:ok, all
    agree on one slot map covering the 16384 slots, and every replica's link is up (a replica
    that never synced cannot take over)."""
    if not up:
        return "no cluster node is up"
    for node in up:
        state = cluster_state(nodes, node)
        if state != "ok":
            return f"{node.name} says cluster_state:{state}"
    views = [cluster_nodes(nodes, n, topo) for n in up]
    view, agreeing, _ = _majority(views)
    if view is None or agreeing < len(up):
        return f"{agreeing} of {len(up)} nodes agree on the slot map"
    if len({role_map(v) for v in views if v is not None}) > 1:
        return "the nodes do not agree yet on which node replicates which (gossip still spreading)"
    covered = sum(n.slot_count for n in view if n.role == "master")
    if covered != SLOTS:
        return f"{covered} of {SLOTS} slots are served"
    for n in view:
        if n.role == "replica" and not n.failing:
            state = nodes.replication_of(topo.node(n.name), topo)
            if state is None or not state.link_up:
                return f"{n.name} has not synced with its master yet"
    return None


def shards(view: list[ClusterNode]) -> list[Shard]:
    """The masters with their slots and replicas, in slot order (shard 0 serves slot 0)."""
    result = []
    for master in (n for n in view if n.role == "master" and n.slots):
        replicas = tuple(sorted(n.name for n in view if n.master_id == master.id))
        result.append(Shard(master=master.name, replicas=replicas, slots=tuple(sorted(master.slots))))
    return sorted(result, key=lambda s: s.slots[0][0])


def redirect_count(nodes, up: list[Node]) -> int:
    """MOVED and ASK replies the nodes have sent since they started (INFO errorstats)."""
    total = 0
    for node in up:
        stats = nodes.info(node, "errorstats", timeout_s=0.5)
        total += sum(stats.get(f"errorstat_{code}", {}).get("count", 0) for code in ("MOVED", "ASK"))
    return total


def shard_of_key(key: str, layout: list[Shard], key_slot) -> int | None:
    """The index in `layout` of the shard serving `key` (key_slot: the engine's CRC16 slot function)."""
    slot = key_slot(key)
    return next((i for i, shard in enumerate(layout) if shard.holds(slot)), None)


def ranges_text(slots) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in slots)


# ------------------------------------------------------------------ the cluster's own events

_ID = r"(\w+)(?: \([^)]*\))?"   # a node ID; Redis 7.2 adds its name in brackets: "<id> ()"
LOG_EVENTS = (  # log line (Redis 7.0 and 7.2 cluster.c) -> short name on the timeline
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
PROMOTED = "new configEpoch"    # the promoted replica took over the slots: the failover is done
_NODE_ID = re.compile(r"\b[0-9a-f]{40}\b")


def cluster_log_events(runtime, topo: Topology, names_by_id: dict[str, str], offset: float,
                       since: float) -> list[ServerEvent]:
    """The cluster events every data node logged, timed by Docker's log timestamps and put on
    the run's monotonic clock (offset = wall - monotonic); node IDs in the messages become node
    names (an unknown one is cut to 8 characters)."""
    return log_events(runtime, topo.data_nodes, LOG_EVENTS, offset, since=since,
                      rename=lambda text: _NODE_ID.sub(lambda m: names_by_id.get(m.group(0), m.group(0)[:8]), text))


# ------------------------------------------------------------------ the kind

class Cluster(Replicated):
    name = "cluster"
    summary = "masters sharing the 16384 slots, each with replicas; the cluster fails over by itself"
    fields = (Param("masters", "count", default=3, most=5), Param("replicas", "count", default=1, most=5))
    capabilities = frozenset({"network", "failover", "slots"})
    conditions = ("new_master", "cluster_ok")
    roles = (MASTER, REPLICA, OLD_MASTER)

    # ------------------------------------------------------------ the lab file and the plan

    def check_params(self, params, fail):
        if params["masters"] < 3:
            fail("masters", "a Redis Cluster needs at least 3 masters (a majority must be able to vote)")
        return params

    def owned_settings(self):
        why = "set by the tool: the cluster is formed by redis-cli --cluster create inside the lab network"
        return {"cluster-enabled": why, "cluster-config-file": why, "cluster-announce-ip": why,
                "cluster-announce-port": why, "cluster-announce-bus-port": why, "replicaof": why, "slaveof": why}

    def data_names(self, params, uses) -> list[str]:
        count = params["masters"] * (1 + params["replicas"])
        return [f"redis-{i + 1}" for i in range(count + (1 if uses("add_node") else 0))]

    def role_at_start(self, params, index, name, uses) -> str:
        if index >= params["masters"] * (1 + params["replicas"]):
            return SPARE
        return MASTER if index < params["masters"] else REPLICA

    def data_settings(self, params, name, role, names, ips) -> list[Setting]:
        return [
            self.SYNC_AT_ONCE,
            Setting("cluster-enabled", "yes"),
            Setting("cluster-config-file", "nodes.conf", "the node's view of the cluster, kept in the data directory"),
            Setting("cluster-announce-ip", ips[name], "the address other nodes and clients are told"),
        ] + [Setting(k, v, "lab-friendly (Redis' default is 15000): a master unreachable this long is PFAIL, "
                           "then FAIL once a majority of masters agree") for k, v in CLUSTER_DEFAULTS.items()]

    def up_lines(self, topo: Topology) -> list[str]:
        return [f"use the cluster: redis-cli -c -p {topo.nodes[0].host_port}    (CLUSTER NODES, CLUSTER SHARDS)",
                "  (redirects name lab-network addresses; a Linux host reaches them directly, elsewhere use a "
                "cluster client with an address remap, as the probe does)"]

    # ------------------------------------------------------------ live: bring-up

    def form(self, lab) -> None:
        """`redis-cli --cluster create` inside the lab network (run in the first node's container):
        the first `masters` nodes become masters, the others their replicas."""
        nodes = members(lab.topo)
        masters = sum(1 for n in nodes if n.role == MASTER)
        per_master = (len(nodes) - masters) // masters
        lab.runtime.exec(nodes[0], ["redis-cli", "--cluster", "create", *[f"{n.ip}:{REDIS_PORT}" for n in nodes],
                                    "--cluster-replicas", str(per_master), "--cluster-yes"])

    def not_settled(self, lab) -> str | None:
        return not_yet_formed(lab.nodes, lab.topo, members(lab.topo))

    # ------------------------------------------------------------ live: a run

    def new_facts(self, topo: Topology) -> ClusterFacts:
        return ClusterFacts(members=members(topo))

    @staticmethod
    def up(ctx) -> list[Node]:
        """The cluster's nodes that the scenario has not left down."""
        return [n for n in ctx.kind_facts.members if n.name not in ctx.down]

    def view(self, ctx) -> list[ClusterNode] | None:
        return majority_view(ctx.nodes, ctx.topo, self.up(ctx))[0]

    def resolve(self, ctx, role: str) -> Node | None:
        """`master` is the master serving slot 0 now and `replica` one of its replicas."""
        if role not in (MASTER, REPLICA):
            return None
        view = self.view(ctx)
        if view is None:
            return None
        first = shards(view)[0]
        names = [first.master] if role == MASTER else list(first.replicas)
        return ctx.topo.node(names[0]) if names else None

    def not_formed(self, ctx) -> str | None:
        return not_yet_formed(ctx.nodes, ctx.topo, self.up(ctx))

    def condition(self, ctx, name: str):
        if name == "cluster_ok":
            return ((lambda: self.not_formed(ctx) is None), (lambda: self.not_formed(ctx) or ""),
                    (lambda: "cluster ok: " + "; ".join(f"{s.master} serves {ranges_text(s.slots)}"
                                                        for s in shards(self.view(ctx)))))
        if name == "new_master":
            def moved() -> bool:
                node = self.resolve(ctx, MASTER)   # most nodes name another master for the old master's first slot
                return node is not None and node.name != ctx.resolve(OLD_MASTER).name
            return (moved, (lambda: self.not_formed(ctx) or "the old master still serves slot 0"),
                    (lambda: f"new master: {ctx.resolve(MASTER).name} serves slot 0"))
        return super().condition(ctx, name)

    def wait_formed(self, ctx, timeout_s: float, what: str) -> None:
        """Poll until the nodes that are up agree (add_node, reshard); ScenarioAborted if not in time."""
        if not wait_until(lambda: self.not_formed(ctx) is None, timeout_s):
            raise ScenarioAborted(f"{what} within {timeout_s:g} s: {self.not_formed(ctx)}")

    def writes(self, ctx, wait_replicas: int, wait_timeout_ms: int) -> WriteRoute:
        """Through redis-py's RedisCluster (WAIT is not used in the cluster: its options refuse it)."""
        return WriteRoute(lambda: ctx.nodes.ClusterWriter(ctx.nodes.cluster_client(ctx.topo, self.up(ctx))),
                      "through RedisCluster")

    def client_env(self, ctx) -> dict[str, str]:
        return {**super().client_env(ctx),
                "LAB_CLUSTER_SEEDS": ",".join(f"127.0.0.1:{n.host_port}" for n in self.up(ctx))}

    def key_ranges(self, ctx) -> list[KeyRange]:
        """The shards of the slot map as the probe starts (and the redirect count then)."""
        facts: ClusterFacts = ctx.kind_facts
        facts.shards_at_start = shards(self.view(ctx))
        facts.redirects_at_start = redirect_count(ctx.nodes, self.up(ctx))
        layout, slot = facts.shards_at_start, ctx.nodes.key_slot
        return [KeyRange(label=f"shard {i}", master=s.master, replicas=s.replicas, slots=s.slot_count,
                         holds=lambda key, i=i: shard_of_key(key, layout, slot) == i)
                for i, s in enumerate(layout)]

    def reader(self, ctx):
        """Once the cluster is ok again: RedisCluster, reading each key from the master of its slot."""
        self.wait_formed(ctx, READ_BACK_READY_TIMEOUT_S, "the cluster was not ok for the read-back")
        return _ClusterReader(ctx.nodes.cluster_client(ctx.topo, self.up(ctx)))

    def observe(self, ctx, acked_before_fault: list[str]) -> None:
        """The slot map every node agrees on, and the redirects the nodes sent during the run."""
        facts: ClusterFacts = ctx.kind_facts
        view, agreeing, _ = majority_view(ctx.nodes, ctx.topo, self.up(ctx))
        counts = [shard.slot_count for shard in shards(view)]
        facts.nodes_agreeing = agreeing
        facts.master_slots_min, facts.master_slots_max = min(counts), max(counts)
        facts.redirects = redirect_count(ctx.nodes, self.up(ctx)) - facts.redirects_at_start
        ctx.cluster_names = {n.id: n.name for n in view}

    def server_events(self, ctx, offset: float) -> list[ServerEvent]:
        """The cluster events each node logged, on the run's clock; node IDs become node names.
        The promoted replica's "after successful failover" line announces the new master."""
        found = cluster_log_events(ctx.runtime, ctx.topo, getattr(ctx, "cluster_names", {}), offset, since=ctx.t0)
        was_master = {r: s.master for s in ctx.kind_facts.shards_at_start for r in s.replicas}
        return [ServerEvent(e.at, e.source, e.name, e.detail, promotes=e.source, replaces=was_master.get(e.source))
                if e.name == PROMOTED else e for e in found]

    def final_roles(self, ctx) -> dict[str, str]:
        return replication_roles(ctx)


class _ClusterReader:
    """The read-back reads with mget; in a cluster the keys live on several masters."""

    def __init__(self, client):
        self._client = client

    def mget(self, keys):
        return self._client.mget_nonatomic(keys)

    def close(self):
        self._client.close()


CLUSTER = register_kind(Cluster())


# ------------------------------------------------------------------ metrics

def _gaps(obs) -> dict[int, float] | None:
    history = obs.history
    if not history.ranges or obs.fault_time() is None:
        return None
    return {i: 0.0 if span is None else span[1] - span[0] for i, span in range_gaps(history, obs.fault_time()).items()}


def _affected_shard(obs) -> int | None:
    target = obs.facts.fault_target
    return next((i for i, r in enumerate(obs.history.ranges) if r.master == target or target in r.replicas), None)


@metric("shard_unavailable_s", "s", "cluster: longest wait for an ack on the faulted node's shard",
        requires=frozenset({"slots"}))
def shard_unavailable_s(obs):
    """In a cluster, the keys of the shard whose node was faulted (by the slot map at probe start):
    the longest time from its last acknowledged write before a failed one to its next
    acknowledged write, after the fault took effect. The probe writes keys spread over all
    slots, one at a time, so each shard's figure has the resolution of its write rate."""
    gaps, affected = _gaps(obs), _affected_shard(obs)
    return None if gaps is None or affected is None else round(gaps[affected], 3)


@metric("other_shards_unavailable_s", "s", "cluster: the same for the other shards (the longest of them)",
        requires=frozenset({"slots"}))
def other_shards_unavailable_s(obs):
    """Like shard_unavailable_s, for every other shard; the largest (0 if none of their writes
    failed). With cluster-require-full-coverage yes they refuse writes (CLUSTERDOWN) while any
    slot is uncovered."""
    gaps, affected = _gaps(obs), _affected_shard(obs)
    if gaps is None:
        return None
    others = [gap for i, gap in gaps.items() if i != affected]
    return round(max(others), 3) if others else None


@metric("clusterdown_errors", "attempts", "cluster: writes refused with CLUSTERDOWN", requires=frozenset({"slots"}))
def clusterdown_errors(obs):
    """Probe attempts answered -CLUSTERDOWN (the node knows a slot is uncovered, or it is on the
    minority side of a partition)."""
    return sum(1 for a in obs.history.attempts if a.error == "CLUSTERDOWN")


def _cluster_fact(name: str, unit: str, short: str, method: str, **options):
    return fact_metric(name, unit, short, method, of="kind_facts", requires=frozenset({"slots"}), **options)


redirects = _cluster_fact(
    "redirects", "replies", "cluster: MOVED and ASK replies the nodes sent during the run",
    """The rise of errorstat_MOVED + errorstat_ASK (INFO errorstats) summed over the cluster's
    nodes from the probe's start to the end: redirects the client followed. A node restarted
    during the run starts counting again, so after a kill this is a lower bound.""")


nodes_agreeing = _cluster_fact(
    "nodes_agreeing", "nodes", "cluster: nodes that share one slot map at the end",
    """After recovery, CLUSTER NODES from every cluster node that is up; the number whose slot
    map (ranges and their masters) is the one most of them share. The read-back waits until all
    nodes agree, so this says how many nodes took part, not whether they agreed.""")


master_slots_min = _cluster_fact(
    "master_slots_min", "slots", "cluster: fewest slots any master serves at the end",
    """From the agreed slot map at the end.""")


master_slots_max = _cluster_fact(
    "master_slots_max", "slots", "cluster: most slots any master serves at the end",
    """From the agreed slot map at the end.""")


slots_moved = _cluster_fact(
    "slots_moved", "slots", "cluster: slots a reshard or rebalance step moved",
    """Slots whose master differs between the slot maps read right before and right after the
    reshard/rebalance step (CLUSTER NODES).""", needs=("reshard", "rebalance"))


keys_moved = _cluster_fact(
    "keys_moved", "keys", "cluster: keys in the moved slots right after the move",
    """CLUSTER COUNTKEYSINSLOT for every moved slot on its new master right after the step: the
    keys migrated plus those the probe wrote there meanwhile.""", needs=("reshard", "rebalance"))


move_s = _cluster_fact(
    "move_s", "s", "cluster: how long the reshard or rebalance step took",
    """Wall time of the redis-cli --cluster reshard/rebalance command, run inside the lab network.""",
    needs=("reshard", "rebalance"))
