"""derive_topology for the cluster lab (nodes, roles, cluster settings, the spare node, edge
networks) and the lab-file rules for a cluster topology (masters, replicas, lab validate)."""

from __future__ import annotations

import pytest

from .helpers import refused as _refused, setting_value as _value, setting_values as _values
from .helpers import topology_of

from orchestrator.errors import LabFileError
from orchestrator.spec import load_lab, parse_lab
from orchestrator.engine.topology import Topology
from orchestrator.kinds import derive_topology
from orchestrator.validate import validate_lab

DATA = [f"redis-{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def cluster_lab():
    return load_lab("cluster")








@pytest.fixture(scope="module")
def topo(cluster_lab) -> Topology:
    return _topo(cluster_lab)


# ------------------------------------------------------------------ nodes and roles

def test_cluster_kind_and_six_data_nodes(topo):
    assert topo.kind == "cluster"
    assert [(n.name, n.role) for n in topo.nodes] == [
        ("redis-1", "master"), ("redis-2", "master"), ("redis-3", "master"),
        ("redis-4", "replica"), ("redis-5", "replica"), ("redis-6", "replica")]
    assert [n.name for n in topo.data_nodes] == DATA
    assert topo.sentinels == []


def test_ports_and_fixed_addresses(topo):
    assert topo.ports == list(range(7100, 7106))
    assert [n.ip for n in topo.nodes] == [f"10.227.188.{11 + i}" for i in range(6)]
    assert topo.subnet == "10.227.188.0/24"
    assert topo.name_of("10.227.188.14") == "redis-4"


def test_persistence_lab_is_still_single(persistence_lab):
    topo = derive_topology(persistence_lab, "rdb", run_id="t", image="redis")
    assert topo.kind == "single"
    assert not any(s.key.startswith("cluster-") for n in topo.nodes for s in n.settings)


# ------------------------------------------------------------------ settings

def test_every_node_is_cluster_enabled(topo):
    for node in topo.nodes:
        assert _value(node, "cluster-enabled") == "yes"
        assert _value(node, "cluster-config-file") == "nodes.conf"
        assert _value(node, "cluster-announce-ip") == node.ip
        assert _value(node, "cluster-node-timeout") == "2000"
        assert _value(node, "repl-diskless-sync-delay") == "0"
        assert _values(node, "replicaof") == []
        assert _value(node, "appendonly") == "yes"


def test_lab_config_overrides_the_node_timeout_in_place(write_lab):
    def mutate(d):
        d["topology"] = {"kind": "cluster", "persistence": "rdb", "config": {"cluster-node-timeout": 5000}}
    topo = derive_topology(parse_lab(write_lab(mutate)), "rdb", run_id="t", image="redis")
    for node in topo.nodes:
        keys = [s.key for s in node.settings]
        assert keys.count("cluster-node-timeout") == 1
        assert _value(node, "cluster-node-timeout") == "5000"
        assert keys.index("cluster-node-timeout") == keys.index("cluster-announce-ip") + 1   # first position kept


def test_scenario_config_reaches_every_node(cluster_lab):
    topo = _topo(cluster_lab, "kill-shard-partial-coverage")
    assert {_value(n, "cluster-require-full-coverage") for n in topo.nodes} == {"no"}
    assert all(_values(n, "cluster-require-full-coverage") == [] for n in _topo(cluster_lab, "kill-shard").nodes)


# ------------------------------------------------------------------ the spare node, edge networks

def test_spare_node_only_for_add_node(cluster_lab):
    topo = _topo(cluster_lab, "add-node-rebalance")
    spare = topo.nodes[-1]
    assert (spare.name, spare.role, spare.host_port, spare.ip) == ("redis-7", "spare", 7106, "10.227.188.17")
    assert _value(spare, "cluster-enabled") == "yes"
    assert _value(spare, "cluster-announce-ip") == spare.ip
    assert spare.volume == "lab-cluster-t-redis-7-data"
    for name in ("kill-master", "reshard", "partition-master"):
        assert [n.name for n in _topo(cluster_lab, name).nodes] == DATA


@pytest.mark.parametrize("scenario", ["kill-master", "kill-shard", "kill-shard-partial-coverage", "reshard",
                                      "add-node-rebalance"])
def test_no_edge_networks_without_a_partition(cluster_lab, scenario):
    topo = _topo(cluster_lab, scenario)
    assert all(n.edge_network is None for n in topo.nodes)
    assert not topo.partitionable


def test_edge_networks_for_partition_master(cluster_lab):
    topo = _topo(cluster_lab, "partition-master")
    assert [n.edge_network for n in topo.nodes] == [f"lab-cluster-t-{name}" for name in DATA]
    assert topo.partitionable


# ------------------------------------------------------------------ lab files

def _cluster(**topology):
    def mutate(d):
        d["topology"] = {"kind": "cluster", "persistence": "rdb", **topology}
    return mutate




def test_cluster_defaults_to_three_masters_with_one_replica_each(write_lab):
    spec = parse_lab(write_lab(_cluster())).topology
    assert (spec.kind, spec.masters, spec.replicas, "sentinels" in spec.params) == ("cluster", 3, 1, False)


def test_cluster_replicas_are_per_master(write_lab):
    lab = parse_lab(write_lab(_cluster(masters=4, replicas=2)))
    assert (lab.topology.masters, lab.topology.replicas) == (4, 2)
    topo = derive_topology(lab, "rdb", run_id="t", image="redis")
    assert [n.role for n in topo.nodes] == ["master"] * 4 + ["replica"] * 8
    assert topo.nodes[-1].name == "redis-12"


@pytest.mark.parametrize("kind", ["single", "replication", "sentinel"])
def test_masters_only_for_a_cluster(write_lab, kind):
    error = _refused(write_lab, _cluster(kind=kind, masters=3))
    assert error.key == "topology.masters"
    assert f"a {kind} topology has no masters" in str(error)


@pytest.mark.parametrize("masters", [1, 2])
def test_fewer_than_three_masters_refused(write_lab, masters):
    error = _refused(write_lab, _cluster(masters=masters))
    assert error.key == "topology.masters"
    assert "at least 3 masters" in str(error)


@pytest.mark.parametrize("masters", [0, 6, "3", True])
def test_masters_must_be_a_small_whole_number(write_lab, masters):
    error = _refused(write_lab, _cluster(masters=masters))
    assert error.key == "topology.masters"
    assert "from 1 to 5" in str(error)


def test_sentinels_refused_in_a_cluster(write_lab):
    error = _refused(write_lab, _cluster(sentinels=3))
    assert error.key == "topology.sentinels"


def test_real_cluster_lab_validates(cluster_lab):
    assert validate_lab(cluster_lab) == sum(len(s.modes) for s in cluster_lab.scenarios.values()) == 6


def _steps(*steps):
    def mutate(d):
        _cluster()(d)
        d["scenarios"]["x"]["steps"] = [{"probe": "start"}, *steps, {"probe": "stop"}]
    return mutate


def test_start_down_is_accepted(write_lab):
    assert validate_lab(parse_lab(write_lab(_steps({"kill": "master"}, {"kill": "replica"}, {"start": "down"})))) == 1


def test_partition_is_accepted_in_a_cluster(write_lab):
    assert validate_lab(parse_lab(write_lab(_steps({"partition": "master"}, {"heal": "old-master"})))) == 1


def test_add_node_targets_the_spare(write_lab):
    assert validate_lab(parse_lab(write_lab(_steps({"add_node": "redis-7"}, {"rebalance": None})))) == 1


def test_add_node_beyond_the_spare_is_refused(write_lab):
    with pytest.raises(LabFileError) as caught:
        validate_lab(parse_lab(write_lab(_steps({"add_node": "redis-8"}))))
    assert caught.value.key == "scenarios.x.steps[1].add_node"
    assert "target 'redis-8' matches no node" in str(caught.value)


def _topo(lab, scenario: str | None = None, port_base: int = 7100):
    return topology_of(lab, scenario, port_base=port_base, run_id="t", image="redis")
