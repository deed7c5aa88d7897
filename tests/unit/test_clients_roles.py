"""Live roles and announced addresses without a server: master_by_roles from hand-built
INFO replication states, Remap from the topology, and Sentinel's events named by node."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis

from orchestrator.engine.nodes import Remap, Replication
from orchestrator.events import ServerEvent
from orchestrator.kinds import derive_topology
from orchestrator.kinds.replication import master_by_roles
from orchestrator.scenario import named_server_events
from orchestrator.spec import load_lab


@pytest.fixture(scope="module")
def topo():
    return derive_topology(load_lab("sentinel"), "aof-everysec", run_id="r1", image="redis:7.2", port_base=7100)


def _master(name: str, offset: int = 100) -> Replication:
    return Replication(name, "master", None, False, offset)


def _replica(name: str, of: str, link_up: bool = True, offset: int = 100) -> Replication:
    return Replication(name, "replica", of, link_up, offset)


def _states(*states: Replication) -> dict[str, Replication]:
    return {s.node: s for s in states}


# ------------------------------------------------------------------ master_by_roles

def test_the_only_master():
    assert master_by_roles(_states(_master("redis-1"), _replica("redis-2", "redis-1"),
                                   _replica("redis-3", "redis-1"))) == "redis-1"


def test_isolated_old_master_loses_to_the_master_the_replicas_follow():
    states = _states(_master("redis-1", offset=900),      # cut off, still says master, listed first
                     _master("redis-2"), _replica("redis-3", "redis-2"), _replica("redis-4", "redis-2"))
    assert master_by_roles(states) == "redis-2"


def test_isolated_old_master_loses_to_one_follower():
    states = _states(_master("redis-1"), _master("redis-2"), _replica("redis-3", "redis-2"))
    assert master_by_roles(states) == "redis-2"


def test_replicas_with_link_down_do_not_count():
    states = _states(_master("redis-1"), _master("redis-2"), _replica("redis-3", "redis-1"),
                     _replica("redis-4", "redis-2", link_up=False), _replica("redis-5", "redis-2", link_up=False))
    assert master_by_roles(states) == "redis-1"


def test_a_master_without_replicas_answering():
    assert master_by_roles(_states(_master("redis-2"))) == "redis-2"


@pytest.mark.parametrize("states", [
    {},
    _states(_replica("redis-2", "redis-1"), _replica("redis-3", "redis-1")),
], ids=["nothing-answers", "no-master"])
def test_no_master(states):
    assert master_by_roles(states) is None


# ------------------------------------------------------------------ Remap

def test_remap_finds_data_nodes_and_sentinels_by_announced_address(topo):
    remap = Remap(topo)
    redis2, sentinel3 = topo.node("redis-2"), topo.node("sentinel-3")
    assert remap.node(redis2.ip, 6379) is redis2
    assert remap.node(redis2.ip, "6379") is redis2
    assert remap.node(sentinel3.ip, 26379) is sentinel3
    assert remap.host_address(redis2.ip, 6379) == ("127.0.0.1", 7101)
    assert remap.host_address(sentinel3.ip, 26379) == ("127.0.0.1", 7105)


@pytest.mark.parametrize("host, port", [("10.9.9.9", 6379), ("redis-2", 6379), (None, 6379)])
def test_remap_refuses_unknown_addresses(topo, host, port):
    with pytest.raises(redis.ConnectionError, match="is not a node of lab sentinel"):
        Remap(topo).node(host, port)


def test_remap_refuses_a_known_address_on_the_wrong_port(topo):
    with pytest.raises(redis.ConnectionError):
        Remap(topo).host_address(topo.node("redis-1").ip, 26379)


def test_remap_by_host_port(topo):
    remap = Remap(topo)
    assert remap.by_host_port(7100).name == "redis-1"
    assert remap.by_host_port("7103").name == "sentinel-1"
    assert remap.by_host_port(9999) is None


# ------------------------------------------------------------------ Sentinel events, named

def _server_events(topo, *events: ServerEvent):
    ctx = SimpleNamespace(topo=topo, t0=100.0)
    return named_server_events(ctx, list(events))


def test_server_events_name_the_nodes(topo):
    ip = {n.name: n.ip for n in topo.nodes}
    (event,) = _server_events(topo, ServerEvent(at=103.5, source="sentinel-2", name="+switch-master",
                                                detail=f"mymaster {ip['redis-1']} 6379 {ip['redis-2']} 6379"))
    assert event.t == pytest.approx(3.5)
    assert event.source == "server"
    assert event.what == "sentinel-2: +switch-master mymaster redis-1 6379 redis-2 6379"


def test_server_events_name_ip_port_words(topo):
    ip = {n.name: n.ip for n in topo.nodes}
    detail = f"slave {ip['redis-3']}:6379 {ip['redis-3']} 6379 @ mymaster {ip['redis-2']} 6379"
    (event,) = _server_events(topo, ServerEvent(at=101.0, source="sentinel-1", name="+slave", detail=detail))
    assert event.what == "sentinel-1: +slave slave redis-3:6379 redis-3 6379 @ mymaster redis-2 6379"


def test_server_events_leave_other_words_alone(topo):
    ip = topo.node("sentinel-3").ip
    (event,) = _server_events(topo, ServerEvent(at=100.25, source="sentinel-1", name="+sentinel",
                                                detail=f"sentinel abc {ip} 26379 @ mymaster 10.9.9.9:6379 #quorum 2/2"))
    assert event.what == "sentinel-1: +sentinel sentinel abc sentinel-3 26379 @ mymaster 10.9.9.9:6379 #quorum 2/2"


def test_server_events_without_events(topo):
    assert _server_events(topo) == []
