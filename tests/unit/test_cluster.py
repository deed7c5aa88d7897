"""The cluster kind without a cluster: CLUSTER NODES parsing, slot maps and shards, the
agreement checks on canned views (a fake of the engine's Redis module), and the cluster's events
read from Docker-timestamped logs."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest
from redis.crc import key_slot

from orchestrator.engine.nodes import Replication
from orchestrator.kinds import derive_topology
from orchestrator.kinds.cluster import (SLOTS, ClusterNode, Shard, cluster_log_events, majority_view, members,
                                        not_yet_formed, parse_cluster_nodes, shard_of_key, shards, slot_map)
from orchestrator.spec import load_lab

IP = {f"redis-{i}": f"10.227.188.{10 + i}" for i in range(1, 8)}   # lab_addresses for port base 7100
ID = {name: hashlib.sha1(name.encode()).hexdigest() for name in IP}
NAMES = {v: k for k, v in ID.items()}


@pytest.fixture(scope="module")
def topo():
    return derive_topology(load_lab("cluster"), "aof-everysec", run_id="t", image="redis", port_base=7100)


def line(name: str, flags: str, master: str = "-", slots: str = "", epoch: int = 1, link: str = "connected") -> str:
    """One CLUSTER NODES line as Redis 7 writes it."""
    master_id = ID[master] if master != "-" else "-"
    return f"{ID[name]} {IP[name]}:6379@16379 {flags} {master_id} 0 1795865232000 {epoch} {link} {slots}".rstrip()


FORMED = "\n".join([
    line("redis-1", "myself,master", slots="0-5460", epoch=1),
    line("redis-2", "master", slots="5461-10922", epoch=2),
    line("redis-3", "master", slots="10923-16383", epoch=3),
    line("redis-4", "slave", "redis-1", epoch=1),
    line("redis-5", "slave", "redis-2", epoch=2),
    line("redis-6", "slave", "redis-3", epoch=3),
]) + "\n"

# redis-1 was killed: it is flagged fail and has lost its slots to redis-4. redis-2 is migrating
# slot 5461 to redis-3, and redis-3 already serves slot 7000 alone.
AFTER_FAILOVER = "\n".join([
    line("redis-1", "master,fail", epoch=1, link="disconnected"),
    line("redis-2", "myself,master", slots=f"5461-6999 7001-10922 [5461->-{ID['redis-3']}]", epoch=2),
    line("redis-3", "master", slots=f"7000 10923-16383 [5461-<-{ID['redis-2']}]", epoch=3),
    line("redis-4", "master", slots="0-5460", epoch=7),
    line("redis-5", "slave", "redis-2", epoch=2),
    line("redis-6", "slave", "redis-3", epoch=3),
])


def by_name(view: list[ClusterNode]) -> dict[str, ClusterNode]:
    return {n.name: n for n in view}


# ------------------------------------------------------------------ parse_cluster_nodes

def test_parse_formed_cluster(topo):
    view = by_name(parse_cluster_nodes(FORMED, topo))
    assert list(view) == [f"redis-{i}" for i in range(1, 7)]
    assert view["redis-1"] == ClusterNode(id=ID["redis-1"], name="redis-1", role="master", master_id=None,
                                          failing=False, slots=((0, 5460),))
    assert [(n.role, n.master_id, n.slots) for n in (view["redis-4"], view["redis-5"], view["redis-6"])] == [
        ("replica", ID["redis-1"], ()), ("replica", ID["redis-2"], ()), ("replica", ID["redis-3"], ())]
    assert [view[f"redis-{i}"].slot_count for i in (1, 2, 3)] == [5461, 5462, 5461]
    assert sum(n.slot_count for n in view.values()) == SLOTS


def test_parse_failed_master_migration_and_single_slots(topo):
    view = by_name(parse_cluster_nodes(AFTER_FAILOVER, topo))
    old = view["redis-1"]
    assert (old.role, old.failing, old.slots, old.slot_count) == ("master", True, (), 0)
    # the [5461->-id] and [5461-<-id] entries are ignored; a single slot is a range of one
    assert view["redis-2"].slots == ((5461, 6999), (7001, 10922))
    assert view["redis-3"].slots == ((7000, 7000), (10923, 16383))
    assert view["redis-4"].role == "master" and view["redis-4"].master_id is None
    assert sum(n.slot_count for n in view.values()) == SLOTS


@pytest.mark.parametrize("flags, failing", [("master,fail", True), ("master,fail?", True), ("slave,fail?", True),
                                            ("myself,slave", False), ("master,nofailover", False)])
def test_failing_means_fail_or_pfail(topo, flags, failing):
    (node,) = parse_cluster_nodes(line("redis-5", flags), topo)
    assert node.failing is failing
    assert node.role == ("master" if "master" in flags else "replica")


def test_unknown_address_keeps_the_ip_and_short_lines_are_skipped(topo):
    text = f"{ID['redis-7']} 10.0.0.99:6379@16379 master - 0 0 9 connected\nnot a cluster line\n\n"
    (node,) = parse_cluster_nodes(text, topo)
    assert node.name == "10.0.0.99"


def test_address_with_a_hostname_maps_to_the_node(topo):
    text = f"{ID['redis-2']} {IP['redis-2']}:6379@16379,redis-2 master - 0 0 2 connected 0-16383"
    (node,) = parse_cluster_nodes(text, topo)
    assert (node.name, node.slots) == ("redis-2", ((0, 16383),))


# ------------------------------------------------------------------ slot maps and shards

def test_slot_map_lists_master_ranges_sorted(topo):
    assert slot_map(parse_cluster_nodes(FORMED, topo)) == (
        ((0, 5460), "redis-1"), ((5461, 10922), "redis-2"), ((10923, 16383), "redis-3"))


def test_slot_map_ignores_line_order_and_replicas(topo):
    lines = FORMED.strip().splitlines()
    shuffled = "\n".join(reversed(lines[:3])) + "\n" + lines[4]     # no redis-4 or redis-6
    assert slot_map(parse_cluster_nodes(shuffled, topo)) == slot_map(parse_cluster_nodes(FORMED, topo))


def test_slot_map_differs_after_a_failover(topo):
    assert slot_map(parse_cluster_nodes(AFTER_FAILOVER, topo)) != slot_map(parse_cluster_nodes(FORMED, topo))


def test_shards_in_slot_order_with_their_replicas(topo):
    text = "\n".join(reversed(FORMED.strip().splitlines()))
    assert shards(parse_cluster_nodes(text, topo)) == [
        Shard(master="redis-1", replicas=("redis-4",), slots=((0, 5460),)),
        Shard(master="redis-2", replicas=("redis-5",), slots=((5461, 10922),)),
        Shard(master="redis-3", replicas=("redis-6",), slots=((10923, 16383),)),
    ]


def test_shards_after_failover_skip_the_empty_master(topo):
    layout = shards(parse_cluster_nodes(AFTER_FAILOVER, topo))
    assert [(s.master, s.replicas) for s in layout] == [("redis-4", ()), ("redis-2", ("redis-5",)),
                                                       ("redis-3", ("redis-6",))]
    assert layout[2].slots == ((7000, 7000), (10923, 16383))      # sorted: the single slot first


def test_shard_with_two_replicas_sorts_them(topo):
    text = "\n".join([line("redis-2", "master", slots="0-16383"), line("redis-6", "slave", "redis-2"),
                      line("redis-3", "slave", "redis-2")])
    assert shards(parse_cluster_nodes(text, topo))[0].replicas == ("redis-3", "redis-6")


def test_shard_holds_its_ranges_inclusive():
    shard = Shard(master="redis-3", replicas=(), slots=((7000, 7000), (10923, 16383)))
    assert [shard.holds(s) for s in (6999, 7000, 7001, 10922, 10923, 16383)] == [False, True, False, False, True, True]


def _slot(key: str) -> int:
    return key_slot(key.encode())


def test_shard_of_key_follows_the_key_slot(topo):
    layout = shards(parse_cluster_nodes(FORMED, topo))
    for seq in range(1, 50):
        key = f"probe:{seq}"
        index = shard_of_key(key, layout, _slot)
        assert layout[index].holds(key_slot(key.encode()))


def test_shard_of_key_uses_hash_tags_and_is_none_for_uncovered_slots():
    slot = key_slot(b"user")
    layout = [Shard(master="redis-1", replicas=(), slots=((slot, slot),))]
    assert shard_of_key("{user}:1", layout, _slot) == 0
    assert shard_of_key("{user}:2", layout, _slot) == 0
    assert shard_of_key("probe:1", layout, _slot) is None


def test_members_leave_out_the_spare_node():
    lab = load_lab("cluster")
    topo = derive_topology(lab, "aof-everysec", run_id="t", image="redis", scenario=lab.scenario("add-node-rebalance"))
    assert [n.name for n in members(topo)] == [f"redis-{i}" for i in range(1, 7)]


# ------------------------------------------------------------------ majority_view / not_yet_formed

MISSING_LINK = FORMED.replace(f"slave {ID['redis-3']}", "master -")   # redis-6 not yet a replica


class FakeNodes:
    """The engine's Redis module as the cluster kind uses it, answering from canned state:
    CLUSTER NODES text (None: no answer), cluster_state and INFO replication per node."""

    def __init__(self, canned):
        self.canned, self.asked = canned, []
        self.states: dict[str, str | None] = {}
        self.links: dict[str, Replication | None] = {}
        self.replication_asked: list[str] = []

    def cluster_text(self, node, subcommand, timeout_s=0.5):
        if subcommand == "INFO":
            state = self.states[node.name]
            return None if state is None else f"cluster_state:{state}\r\ncluster_slots_assigned:16384\r\n"
        self.asked.append(node.name)
        return self.canned[node.name]

    def replication_of(self, node, topo_, timeout_s=0.5):
        self.replication_asked.append(node.name)
        return self.links[node.name]


@pytest.fixture
def views(topo):
    """Canned CLUSTER NODES per node (text, or None for a node that does not answer)."""
    return FakeNodes({n.name: FORMED for n in members(topo)})


def test_majority_view_all_agree(views, topo):
    view, agreeing, answered = majority_view(views, topo, members(topo))
    assert (agreeing, answered) == (6, 6)
    assert slot_map(view) == slot_map(parse_cluster_nodes(FORMED, topo))


def test_majority_view_counts_the_largest_group(views, topo):
    canned = views.canned
    canned["redis-1"] = canned["redis-4"] = AFTER_FAILOVER
    canned["redis-6"] = None
    view, agreeing, answered = majority_view(views, topo, members(topo))
    assert (agreeing, answered) == (3, 5)
    assert slot_map(view) == slot_map(parse_cluster_nodes(FORMED, topo))


def test_majority_view_picks_the_view_knowing_most_replica_links(views, topo):
    for name in ("redis-1", "redis-2", "redis-3", "redis-4", "redis-5"):
        views.canned[name] = MISSING_LINK
    view, agreeing, _ = majority_view(views, topo, members(topo))
    assert agreeing == 6                       # the slot maps are the same
    assert by_name(view)["redis-6"].master_id == ID["redis-3"]


def test_majority_view_asks_only_the_given_nodes(views, topo):
    view, agreeing, answered = majority_view(views, topo, [topo.node("redis-2"), topo.node("redis-5")])
    assert views.asked == ["redis-2", "redis-5"]
    assert (agreeing, answered) == (2, 2)


def test_majority_view_when_nobody_answers(views, topo):
    for name in views.canned:
        views.canned[name] = None
    assert majority_view(views, topo, members(topo)) == (None, 0, 0)


@pytest.fixture
def formed(views, topo):
    """Every node says cluster_state:ok and every replica's link is up; tests break one thing."""
    views.states.update({n.name: "ok" for n in members(topo)})
    views.links.update({name: Replication(node=name, role="replica", master=master, link_up=True, offset=100)
                        for name, master in (("redis-4", "redis-1"), ("redis-5", "redis-2"), ("redis-6", "redis-3"))})
    return views.states, views.canned, views.links, views.replication_asked


def _lacking(views, topo, up=None):
    return not_yet_formed(views, topo, members(topo) if up is None else up)


def test_formed_cluster_lacks_nothing(formed, views, topo):
    _, _, _, replication_asked = formed
    assert _lacking(views, topo) is None
    assert sorted(replication_asked) == ["redis-4", "redis-5", "redis-6"]


@pytest.mark.parametrize("state", ["fail", None])
def test_a_node_not_ok(formed, views, topo, state):
    states, *_ = formed
    states["redis-3"] = state
    assert _lacking(views, topo) == f"redis-3 says cluster_state:{state}"


def test_nodes_disagreeing_on_the_slot_map(formed, views, topo):
    _, canned, _, _ = formed
    canned["redis-2"] = canned["redis-5"] = AFTER_FAILOVER
    assert _lacking(views, topo) == "4 of 6 nodes agree on the slot map"


def test_a_silent_node_counts_against_agreement(formed, views, topo):
    _, canned, _, _ = formed
    canned["redis-6"] = None
    assert _lacking(views, topo) == "5 of 6 nodes agree on the slot map"


def test_uncovered_slots(formed, views, topo):
    _, canned, _, _ = formed
    without_third = FORMED.replace(" connected 10923-16383", " connected")
    for name in canned:
        canned[name] = without_third
    assert _lacking(views, topo) == f"10923 of {SLOTS} slots are served"


@pytest.mark.parametrize("state", [
    Replication(node="redis-5", role="replica", master="redis-2", link_up=False, offset=0), None])
def test_an_unsynced_replica(formed, views, topo, state):
    _, _, links, _ = formed
    links["redis-5"] = state
    assert _lacking(views, topo) == "redis-5 has not synced with its master yet"


def test_a_failing_replica_is_not_waited_for(formed, views, topo):
    _, canned, links, replication_asked = formed
    failing = FORMED.replace(f"slave {ID['redis-2']}", f"slave,fail {ID['redis-2']}")
    up = [n for n in members(topo) if n.name != "redis-5"]
    for node in up:
        canned[node.name] = failing
    links["redis-5"] = None
    assert _lacking(views, topo, up) is None
    assert "redis-5" not in replication_asked


# ------------------------------------------------------------------ cluster_log_events

WALL_TO_MONOTONIC = datetime(2026, 11, 28, 10, 50, tzinfo=timezone.utc).timestamp() - 1000.0


def at(stamp: str) -> float:
    """The monotonic time log_events must give a Docker timestamp (10:50:00 UTC is 1000.0)."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    posix = datetime.fromisoformat(base).replace(tzinfo=timezone.utc).timestamp() + float(f"0.{frac}")
    return posix - WALL_TO_MONOTONIC


class FakeRuntime:
    def __init__(self, logs: dict[str, list[str]]):
        self._logs = logs
        self.calls: list[tuple[str, dict]] = []

    def logs(self, node, **options):
        self.calls.append((node.name, options))
        return "\n".join(self._logs.get(node.name, [])) + "\n"


def redis_line(stamp: str, role: str, level: str, message: str) -> str:
    clock = stamp[11:23]
    return f"{stamp} 1:{role} 28 Nov 2026 {clock} {level} {message}"


LOGS = {
    "redis-2": [
        redis_line("2026-11-28T10:50:00.002000000Z", "M", "*", "Cluster state changed: ok"),   # before `since`
        redis_line("2026-11-28T10:52:40.500000000Z", "M", "*",
                   f"Marking node {ID['redis-1']} as failing (quorum reached)."),
        redis_line("2026-11-28T10:52:40.501000000Z", "M", "#", "Cluster state changed: fail"),
        redis_line("2026-11-28T10:52:41.020000000Z", "M", "*",
                   f"Failover auth granted to {ID['redis-4']} () for epoch 7"),
        redis_line("2026-11-28T10:52:41.500000000Z", "M", "*", "Background append only file rewriting started"),
    ],
    "redis-4": [
        redis_line("2026-11-28T10:52:40.510000000Z", "S", "#",
                   "Start of election delayed for 523 milliseconds (rank #0, offset 4242)."),
        redis_line("2026-11-28T10:52:41.010000000Z", "S", "#", "Starting a failover election for epoch 7."),
        redis_line("2026-11-28T10:52:41.107219582Z", "M", "*", "Failover election won: I'm the new master."),
        redis_line("2026-11-28T10:52:41.107300000Z", "M", "*", "configEpoch set to 7 after successful failover"),
        "2026-11-28T10:52:41.200000000Z 1:M 28 Nov 2026 10:52:41.199 * MASTER MODE enabled (user request from 'id=5')",
    ],
    "redis-6": [
        redis_line("2026-11-28T10:52:40.700000000Z", "S", "*",
                   f"FAIL message received from {ID['redis-2']} about {ID['redis-1']}"),
        redis_line("2026-11-28T10:52:42.000000000Z", "S", "*",
                   "Clear FAIL state for node 0123456789abcdef0123456789abcdef01234567: replica is reachable again."),
    ],
}
SINCE = 1100.0   # 10:51:40


@pytest.fixture
def events(topo):
    runtime = FakeRuntime(LOGS)
    found = cluster_log_events(runtime, topo, NAMES, WALL_TO_MONOTONIC, since=SINCE)
    return runtime, found


def test_log_events_reads_every_data_node_with_timestamps(events, topo):
    runtime, _ = events
    assert runtime.calls == [(n.name, {"timestamps": True}) for n in topo.data_nodes]


def test_log_events_names_and_order(events):
    _, found = events
    assert [(e.source, e.name) for e in found] == [
        ("redis-2", "node marked FAIL"),
        ("redis-2", "cluster state changed"),
        ("redis-4", "election delayed"),
        ("redis-6", "FAIL message received"),
        ("redis-4", "election started"),
        ("redis-2", "failover auth granted"),
        ("redis-4", "failover-won"),
        ("redis-4", "new configEpoch"),
        ("redis-6", "FAIL cleared"),
    ]
    assert [e.at for e in found] == sorted(e.at for e in found)


def test_log_events_puts_docker_time_on_the_monotonic_clock(events):
    _, found = events
    won = next(e for e in found if e.name == "failover-won")
    assert won.at == pytest.approx(at("2026-11-28T10:52:41.107219582Z"), abs=1e-6)
    assert won.at == pytest.approx(1000.0 + 161.107219582, abs=1e-6)


def test_log_events_strips_redis_prefix_and_names_node_ids(events):
    _, found = events
    detail = {e.name: e.detail for e in found}
    assert detail["failover-won"] == "Failover election won: I'm the new master."
    assert detail["node marked FAIL"] == "Marking node redis-1 as failing (quorum reached)."
    assert detail["FAIL message received"] == "FAIL message received from redis-2 about redis-1"
    assert detail["failover auth granted"] == "Failover auth granted to redis-4 () for epoch 7"
    # an ID no node has is shortened to its first 8 characters
    assert detail["FAIL cleared"] == "Clear FAIL state for node 01234567: replica is reachable again."


def test_log_events_drops_events_before_since_and_other_lines(events):
    _, found = events
    assert all(e.at >= SINCE for e in found)
    assert "Cluster state changed: ok" not in [e.detail for e in found]
    assert not any("append only" in e.detail or "MASTER MODE" in e.detail for e in found)


def test_log_events_keeps_an_event_exactly_at_since(topo):
    stamp = "2026-11-28T10:52:41.250000000Z"
    runtime = FakeRuntime({"redis-5": [redis_line(stamp, "S", "#", "Cluster state changed: ok")]})
    (event,) = cluster_log_events(runtime, topo, NAMES, WALL_TO_MONOTONIC, since=at(stamp))
    assert (event.source, event.detail) == ("redis-5", "Cluster state changed: ok")


def test_log_events_keeps_unparsed_text_whole(topo):
    runtime = FakeRuntime({"redis-3": ["2026-11-28T10:52:41Z Failover election won (no Redis prefix)"]})
    (event,) = cluster_log_events(runtime, topo, NAMES, WALL_TO_MONOTONIC, since=0)
    assert event.detail == "Failover election won (no Redis prefix)"
    assert event.at == pytest.approx(at("2026-11-28T10:52:41.0Z"), abs=1e-6)


def test_log_events_empty_logs(topo):
    assert cluster_log_events(FakeRuntime({}), topo, NAMES, WALL_TO_MONOTONIC, since=0) == []


# Redis 7.2 (the lab's default image, redis:7.2) writes the human node name after each ID:
# "Marking node %.40s (%s) as failing (quorum reached)." and
# "FAIL message received from %.40s (%s) about %.40s (%s)" (src/cluster.c, 7.2.0 onwards).
@pytest.mark.parametrize("message, name", [
    (f"Marking node {ID['redis-1']} () as failing (quorum reached).", "node marked FAIL"),
    (f"FAIL message received from {ID['redis-2']} () about {ID['redis-1']} ()", "FAIL message received"),
])
def test_log_events_understand_redis_7_2_wording(topo, message, name):
    runtime = FakeRuntime({"redis-5": [redis_line("2026-11-28T10:52:40.500000000Z", "S", "*", message)]})
    found = cluster_log_events(runtime, topo, NAMES, WALL_TO_MONOTONIC, since=0)
    assert [e.name for e in found] == [name]
