"""derive_topology for the replicated labs (replication, sentinel): names, roles, ports,
fixed addresses, replication and Sentinel settings, edge networks only for a partition."""

from __future__ import annotations

import dataclasses

import pytest

from .helpers import setting_value as _value, setting_values as _values, topology_of as _topo

from orchestrator.spec import Step
from orchestrator.engine.topology import DEFAULT_PORT_BASE, Topology, lab_addresses, project_name
from orchestrator.kinds import derive_topology
from orchestrator.kinds.sentinel import sentinel_id

RUN = "r1"
IMAGE = "redis:7.2"
DATA = ["redis-1", "redis-2", "redis-3"]
SENTINELS = ["sentinel-1", "sentinel-2", "sentinel-3"]








@pytest.fixture(scope="module")
def topo(sentinel_lab) -> Topology:
    return _topo(sentinel_lab)


# ------------------------------------------------------------------ nodes, roles, ports

def test_sentinel_lab_nodes_and_roles(topo):
    assert [(n.name, n.role) for n in topo.nodes] == [
        ("redis-1", "master"), ("redis-2", "replica"), ("redis-3", "replica"),
        ("sentinel-1", "sentinel"), ("sentinel-2", "sentinel"), ("sentinel-3", "sentinel")]


def test_data_nodes_and_sentinels(topo):
    assert [n.name for n in topo.data_nodes] == DATA
    assert [n.name for n in topo.sentinels] == SENTINELS
    assert all(n.is_sentinel for n in topo.sentinels)
    assert not any(n.is_sentinel for n in topo.data_nodes)


def test_host_ports_data_nodes_first_then_sentinels(sentinel_lab):
    topo = _topo(sentinel_lab, port_base=7300)
    assert [n.host_port for n in topo.data_nodes] == [7300, 7301, 7302]
    assert [n.host_port for n in topo.sentinels] == [7303, 7304, 7305]
    assert topo.ports == list(range(7300, 7306))


def test_inner_ports(topo):
    assert {n.port for n in topo.data_nodes} == {6379}
    assert {n.port for n in topo.sentinels} == {26379}


def test_sentinels_keep_no_data_and_have_a_directory(topo):
    for node in topo.sentinels:
        assert node.volume is None
        assert node.config_file == f"{node.name}/sentinel.conf"
    for node in topo.data_nodes:
        assert node.volume == f"{project_name('sentinel', RUN)}-{node.name}-data"
        assert node.config_file == f"{node.name}.conf"


def test_mode_none_drops_the_data_volumes(replication_lab):
    topo = _topo(replication_lab, mode="none")
    assert all(n.volume is None for n in topo.nodes)


def test_replication_lab_has_no_sentinels(replication_lab):
    topo = _topo(replication_lab)
    assert [(n.name, n.role) for n in topo.nodes] == [("redis-1", "master"), ("redis-2", "replica"),
                                                     ("redis-3", "replica")]
    assert topo.sentinels == []
    assert topo.subnet is not None
    assert all(n.ip for n in topo.nodes)


# ------------------------------------------------------------------ addresses

def test_lab_addresses_follow_the_port_base():
    subnet, ips = lab_addresses(7100, ["redis-1", "redis-2"], ["sentinel-1"])
    assert subnet == "10.227.188.0/24"            # 200 + 7100 // 256 == 227, 7100 % 256 == 188
    assert ips == {"redis-1": "10.227.188.11", "redis-2": "10.227.188.12", "sentinel-1": "10.227.188.21"}


def test_port_bases_less_than_12800_apart_get_other_subnets():
    subnets = {lab_addresses(base, [], [])[0] for base in range(1024, 1024 + 12800)}
    assert len(subnets) == 12800


def test_nodes_get_fixed_addresses_in_the_lab_subnet(topo):
    subnet, ips = lab_addresses(DEFAULT_PORT_BASE, DATA, SENTINELS)
    assert topo.subnet == subnet
    assert {n.name: n.ip for n in topo.nodes} == ips
    prefix = subnet.rsplit(".", 1)[0] + "."
    assert subnet.startswith("10.2") and subnet.endswith(".0/24")
    assert all(n.ip.startswith(prefix) for n in topo.nodes)
    assert len({n.ip for n in topo.nodes}) == len(topo.nodes)


def test_name_of(topo):
    assert topo.name_of(topo.node("redis-2").ip) == "redis-2"
    assert topo.name_of(topo.node("sentinel-3").ip) == "sentinel-3"
    assert topo.name_of("redis-3") == "redis-3"
    assert topo.name_of("192.0.2.1") == "192.0.2.1"


# ------------------------------------------------------------------ redis.conf of data nodes

def test_replicas_replicate_the_first_node_by_address(topo):
    master_ip = topo.node("redis-1").ip
    for name in ("redis-2", "redis-3"):
        assert _value(topo.node(name), "replicaof") == f"{master_ip} 6379"
    assert _values(topo.node("redis-1"), "replicaof") == []


def test_every_data_node_starts_full_syncs_at_once(topo):
    for node in topo.data_nodes:
        assert _value(node, "repl-diskless-sync-delay") == "0"


def test_data_node_settings_are_unique_keys(topo):
    for node in topo.data_nodes:
        keys = [s.key for s in node.settings]
        assert len(keys) == len(set(keys)), node.name


def test_scenario_config_reaches_every_data_node(sentinel_lab):
    topo = _topo(sentinel_lab, "partition-master-min-replicas")
    for node in topo.data_nodes:
        assert _value(node, "min-replicas-to-write") == "1"
        assert _value(node, "min-replicas-max-lag") == "1"
    for node in topo.sentinels:
        assert _values(node, "min-replicas-to-write") == []


# ------------------------------------------------------------------ sentinel.conf

def test_sentinel_monitors_the_first_node_with_the_quorum(topo):
    master_ip = topo.node("redis-1").ip
    for node in topo.sentinels:
        assert _value(node, "sentinel monitor mymaster") == f"{master_ip} 6379 2"
        assert _value(node, "port") == "26379"


def test_sentinel_timers(topo):
    for node in topo.sentinels:
        assert _value(node, "sentinel down-after-milliseconds mymaster") == "2000"
        assert _value(node, "sentinel failover-timeout mymaster") == "5000"
        assert _value(node, "sentinel parallel-syncs mymaster") == "1"     # the default
        assert _values(node, "sentinel quorum mymaster") == []              # quorum goes in `monitor`


def test_sentinel_knows_both_replicas(topo):
    expected = [f"{topo.node(n).ip} 6379" for n in ("redis-2", "redis-3")]
    for node in topo.sentinels:
        assert _values(node, "sentinel known-replica mymaster") == expected


def test_sentinel_knows_the_two_others_by_id(topo):
    project = topo.project
    for node in topo.sentinels:
        assert _value(node, "sentinel myid") == sentinel_id(project, node.name)
        others = [o for o in topo.sentinels if o.name != node.name]
        assert _values(node, "sentinel known-sentinel mymaster") == [
            f"{o.ip} 26379 {sentinel_id(project, o.name)}" for o in others]


def test_sentinel_ids_are_40_hex_digits_and_distinct(topo):
    ids = {sentinel_id(topo.project, n.name) for n in topo.sentinels}
    assert len(ids) == 3
    assert all(len(i) == 40 and int(i, 16) >= 0 for i in ids)


# ------------------------------------------------------------------ edge networks

def test_partition_scenario_gives_every_node_an_edge_network(sentinel_lab):
    topo = _topo(sentinel_lab, "partition-master")
    assert topo.partitionable
    assert {n.name: n.edge_network for n in topo.nodes} == {n.name: f"{topo.project}-{n.name}" for n in topo.nodes}


@pytest.mark.parametrize("scenario", ["kill-master", None])
def test_no_edge_network_without_a_partition_step(sentinel_lab, scenario):
    topo = _topo(sentinel_lab, scenario)
    assert not topo.partitionable
    assert all(n.edge_network is None for n in topo.nodes)


def test_replication_lab_has_no_edge_networks(replication_lab):
    for name in replication_lab.scenarios:
        topo = _topo(replication_lab, name)
        assert not topo.partitionable
        assert all(n.edge_network is None for n in topo.nodes)


# ------------------------------------------------------------------ single node: unchanged

def test_single_node_lab_has_no_address_subnet_or_edge(persistence_lab):
    topo = derive_topology(persistence_lab, "rdb", run_id=RUN, image=IMAGE,
                           scenario=persistence_lab.scenario("kill-restart"))
    (node,) = topo.nodes
    assert (node.name, node.role, node.host_port, node.port) == ("redis-1", "master", DEFAULT_PORT_BASE, 6379)
    assert node.ip is None and node.edge_network is None
    assert topo.subnet is None
    assert not topo.partitionable
    assert topo.sentinels == [] and [n.name for n in topo.data_nodes] == ["redis-1"]
    keys = [s.key for s in node.settings]
    assert "replicaof" not in keys and "repl-diskless-sync-delay" not in keys


def test_single_node_lab_gets_no_edge_even_for_a_partition_step(persistence_lab):
    scenario = persistence_lab.scenario("kill-restart")
    partitioning = dataclasses.replace(
        scenario, steps=scenario.steps + (Step(action="partition", args={"target": "master"}, index=99),))
    topo = derive_topology(persistence_lab, "rdb", run_id=RUN, image=IMAGE, scenario=partitioning)
    assert topo.nodes[0].edge_network is None
    assert not topo.partitionable
