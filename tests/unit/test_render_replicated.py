"""Rendering the replicated labs: compose.yaml with fixed addresses, Sentinel services and
their writable directories, an internal lab network only for a partition scenario."""

from __future__ import annotations

import stat

import pytest
import yaml

from orchestrator.engine.render import render_files, render_project
from orchestrator.engine.topology import DEFAULT_PORT_BASE
from orchestrator.kinds import derive_topology

RUN = "r1"
IMAGE = "redis:7.2"


def _render(lab, scenario: str | None = None, mode: str = "aof-everysec"):
    chosen = lab.scenario(scenario) if scenario else None
    topo = derive_topology(lab, mode, run_id=RUN, image=IMAGE, port_base=DEFAULT_PORT_BASE, scenario=chosen)
    return topo, render_files(topo)


def _compose(files) -> dict:
    return yaml.safe_load(files["compose.yaml"])


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def kill_master(sentinel_lab):
    return _render(sentinel_lab, "kill-master")


@pytest.fixture(scope="module")
def partition(sentinel_lab):
    return _render(sentinel_lab, "partition-master")


def test_project_files(kill_master):
    _, files = kill_master
    assert set(files) == {"compose.yaml", "redis-1.conf", "redis-2.conf", "redis-3.conf",
                          "sentinel-1/sentinel.conf", "sentinel-2/sentinel.conf", "sentinel-3/sentinel.conf"}


@pytest.mark.parametrize("scenario", ["kill-master", "partition-master", None])
def test_compose_parses(sentinel_lab, scenario):
    _, files = _render(sentinel_lab, scenario)
    compose = _compose(files)
    assert set(compose["services"]) == {"redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3"}


def test_sentinel_services_run_sentinel_on_their_directory(kill_master):
    _, files = kill_master
    services = _compose(files)["services"]
    for i in (1, 2, 3):
        service = services[f"sentinel-{i}"]
        assert service["command"] == ["redis-server", "/etc/sentinel/sentinel.conf", "--sentinel"]
        assert service["volumes"] == [f"./sentinel-{i}:/etc/sentinel"]


def test_data_services_run_their_redis_conf(kill_master):
    _, files = kill_master
    services = _compose(files)["services"]
    for i in (1, 2, 3):
        service = services[f"redis-{i}"]
        assert service["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
        assert f"./redis-{i}.conf:/usr/local/etc/redis/redis.conf:ro" in service["volumes"]


def test_services_have_fixed_addresses(kill_master):
    topo, files = kill_master
    services = _compose(files)["services"]
    for node in topo.nodes:
        assert services[node.name]["networks"] == {"lab": {"ipv4_address": node.ip}}


@pytest.mark.parametrize("scenario", ["kill-master", "partition-master"])
def test_lab_network_has_the_subnet(sentinel_lab, scenario):
    topo, files = _render(sentinel_lab, scenario)
    lab = _compose(files)["networks"]["lab"]
    assert lab["name"] == topo.project
    assert lab["ipam"] == {"config": [{"subnet": topo.subnet}]}


def test_replication_lab_network_has_the_subnet(replication_lab):
    topo, files = _render(replication_lab, "kill-master-manual-promotion")
    networks = _compose(files)["networks"]
    assert set(networks) == {"lab"}
    assert networks["lab"]["ipam"] == {"config": [{"subnet": topo.subnet}]}
    assert "internal" not in networks["lab"]


def test_lab_network_is_not_internal_without_a_partition(kill_master):
    _, files = kill_master
    networks = _compose(files)["networks"]
    assert set(networks) == {"lab"}
    assert "internal" not in networks["lab"]


def test_partition_scenario_has_internal_lab_network_and_edges(partition):
    topo, files = partition
    compose = _compose(files)
    networks = compose["networks"]
    assert networks["lab"]["internal"] is True
    for node in topo.nodes:
        assert networks[f"edge-{node.name}"]["name"] == node.edge_network
        assert compose["services"][node.name]["networks"] == {"lab": {"ipv4_address": node.ip},
                                                             f"edge-{node.name}": {}}


@pytest.mark.parametrize("scenario", ["kill-master", "partition-master"])
def test_every_port_is_published_on_loopback(sentinel_lab, scenario):
    topo, files = _render(sentinel_lab, scenario)
    services = _compose(files)["services"]
    for node in topo.nodes:
        assert services[node.name]["ports"] == [f"127.0.0.1:{node.host_port}:{node.port}"]


def test_sentinel_conf_lines(kill_master):
    topo, files = kill_master
    master_ip = topo.node("redis-1").ip
    lines = _lines(files["sentinel-2/sentinel.conf"])
    assert f"sentinel monitor mymaster {master_ip} 6379 2" in lines
    assert "sentinel down-after-milliseconds mymaster 2000" in lines
    assert sum(line.startswith("sentinel known-replica mymaster ") for line in lines) == 2
    assert sum(line.startswith("sentinel known-sentinel mymaster ") for line in lines) == 2


def test_replica_conf_has_replicaof(kill_master):
    topo, files = kill_master
    assert f"replicaof {topo.node('redis-1').ip} 6379" in _lines(files["redis-3.conf"])
    assert not any(line.startswith("replicaof") for line in _lines(files["redis-1.conf"]))


def test_render_project_makes_sentinel_files_writable(sentinel_lab, tmp_path):
    topo, _ = _render(sentinel_lab, "kill-master")
    compose_file = render_project(topo, tmp_path / "project")
    assert compose_file == tmp_path / "project" / "compose.yaml"
    assert yaml.safe_load(compose_file.read_text())["name"] == topo.project
    for node in topo.sentinels:
        directory = tmp_path / "project" / node.name
        assert stat.S_IMODE(directory.stat().st_mode) == 0o777
        assert stat.S_IMODE((directory / "sentinel.conf").stat().st_mode) == 0o666
    for node in topo.data_nodes:
        assert (tmp_path / "project" / node.config_file).is_file()
