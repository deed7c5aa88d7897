"""Rendering: the compose project and redis.conf for every persistence mode, parsed back."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from orchestrator.spec import PERSISTENCE_MODES
from orchestrator.engine.render import render_files, render_project
from orchestrator.engine.topology import DEFAULT_PORT_BASE, LABEL_LAB, LABEL_MODE, LABEL_RUN, UP_RUN_ID, project_name
from orchestrator.kinds import derive_topology

RUN = "abc123"
IMAGE = "redis:7.2"


def _render(lab, mode, run_id=RUN, scenario=None, port_base=DEFAULT_PORT_BASE):
    topo = derive_topology(lab, mode, run_id=run_id, image=IMAGE, port_base=port_base, scenario=scenario)
    return topo, render_files(topo)


def _compose(files) -> dict:
    return yaml.safe_load(files["compose.yaml"])


def _conf(text: str) -> dict[str, str]:
    """redis.conf directives -> value; fails on a directive given twice."""
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        assert key not in settings, f"{key} is set twice"
        settings[key] = value
    return settings


@pytest.fixture(params=PERSISTENCE_MODES)
def mode(request):
    return request.param


def test_project_files(persistence_lab, mode):
    topo, files = _render(persistence_lab, mode)
    assert set(files) == {"compose.yaml", "redis-1.conf"}
    assert [n.name for n in topo.nodes] == ["redis-1"]
    assert topo.nodes[0].role == "master"


def test_ports_are_published_on_loopback_only(persistence_lab, mode):
    _, files = _render(persistence_lab, mode)
    services = _compose(files)["services"]
    for name, service in services.items():
        assert service["ports"], name
        for port in service["ports"]:
            host_ip, host_port, container_port = str(port).split(":")
            assert host_ip == "127.0.0.1"
            assert container_port == "6379"
    assert services["redis-1"]["ports"] == [f"127.0.0.1:{DEFAULT_PORT_BASE}:6379"]


def test_every_resource_is_labelled(persistence_lab, mode):
    _, files = _render(persistence_lab, mode)
    compose = _compose(files)
    resources = list(compose["services"].values()) + list(compose["networks"].values()) \
        + list((compose.get("volumes") or {}).values())
    assert len(resources) == (2 if mode == "none" else 3)
    for resource in resources:
        assert resource["labels"][LABEL_LAB] == "persistence"
        assert resource["labels"][LABEL_RUN] == RUN
        assert resource["labels"][LABEL_MODE] == mode


def test_nothing_privileged_and_no_docker_socket(persistence_lab, mode):
    _, files = _render(persistence_lab, mode)
    assert "docker.sock" not in files["compose.yaml"]
    for service in _compose(files)["services"].values():
        assert not service.get("privileged", False)
        assert "cap_add" not in service
        assert service.get("network_mode") != "host"
        assert not any("docker.sock" in str(v) for v in service.get("volumes", []))


def test_data_volume_per_mode(persistence_lab, mode):
    topo, files = _render(persistence_lab, mode)
    compose = _compose(files)
    mounts = compose["services"]["redis-1"]["volumes"]
    config_mount = "./redis-1.conf:/usr/local/etc/redis/redis.conf:ro"
    if mode == "none":
        assert "volumes" not in compose
        assert mounts == [config_mount]
        assert topo.nodes[0].volume is None
    else:
        assert mounts == [config_mount, "redis-1-data:/data"]
        assert compose["volumes"]["redis-1-data"]["name"] == f"lab-persistence-{RUN}-redis-1-data"


def test_service_runs_the_image_with_the_rendered_config(persistence_lab, mode):
    _, files = _render(persistence_lab, mode)
    service = _compose(files)["services"]["redis-1"]
    assert service["image"] == IMAGE
    assert service["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert service["container_name"] == f"lab-persistence-{RUN}-redis-1"
    assert service["networks"] == ["lab"]


EXPECTED_PERSISTENCE = {
    # mode: (save, appendonly, appendfsync or None when not set)
    "none": ('""', "no", None),
    "rdb": ("1 1", "no", None),
    "aof-no": ('""', "yes", "no"),
    "aof-everysec": ('""', "yes", "everysec"),
    "aof-always": ('""', "yes", "always"),
    "rdb+aof": ("1 1", "yes", "everysec"),
}


def test_redis_conf_per_mode(persistence_lab, mode):
    _, files = _render(persistence_lab, mode)
    conf = _conf(files["redis-1.conf"])
    save, appendonly, appendfsync = EXPECTED_PERSISTENCE[mode]
    assert conf["save"] == save
    assert conf["appendonly"] == appendonly
    assert conf.get("appendfsync") == appendfsync
    assert conf["port"] == "6379"
    assert conf["dir"] == "/data"
    assert conf["bind"] == "0.0.0.0"
    assert "aof-load-truncated" not in conf


@pytest.mark.parametrize("mode", ["aof-everysec", "aof-always", "rdb+aof"])
def test_scenario_config_override_is_rendered(persistence_lab, mode):
    scenario = persistence_lab.scenarios["aof-truncated-fix"]
    _, files = _render(persistence_lab, mode, scenario=scenario)
    assert _conf(files["redis-1.conf"])["aof-load-truncated"] == "no"


def test_lab_config_replaces_a_persistence_setting_once(persistence_lab):
    topology = dataclasses.replace(persistence_lab.topology, config={"appendfsync": "no", "maxmemory": "64mb"})
    lab = dataclasses.replace(persistence_lab, topology=topology)
    _, files = _render(lab, "aof-always")
    conf = _conf(files["redis-1.conf"])       # _conf fails on a duplicate directive
    assert conf["appendfsync"] == "no"
    assert conf["maxmemory"] == "64mb"


def test_project_names(persistence_lab):
    assert project_name("persistence", RUN) == f"lab-persistence-{RUN}"
    assert project_name("persistence", UP_RUN_ID) == "lab-persistence"
    assert project_name("persistence") == "lab-persistence"

    topo, files = _render(persistence_lab, "rdb", run_id=RUN)
    compose = _compose(files)
    assert topo.project == compose["name"] == f"lab-persistence-{RUN}"
    assert compose["networks"]["lab"]["name"] == topo.project

    up_topo, up_files = _render(persistence_lab, "rdb", run_id=UP_RUN_ID)
    assert up_topo.project == _compose(up_files)["name"] == "lab-persistence"
    assert up_topo.nodes[0].container == "lab-persistence-redis-1"


def test_port_base_shifts_ports(persistence_lab):
    topo, files = _render(persistence_lab, "rdb", port_base=7300)
    assert topo.ports == [7300]
    assert _compose(files)["services"]["redis-1"]["ports"] == ["127.0.0.1:7300:6379"]


def test_rendering_is_deterministic(persistence_lab, mode):
    assert _render(persistence_lab, mode)[1] == _render(persistence_lab, mode)[1]


def test_render_project_writes_the_files(persistence_lab, tmp_path):
    topo = derive_topology(persistence_lab, "aof-always", run_id=RUN, image=IMAGE)
    out = tmp_path / "nested" / "out"
    compose_path = render_project(topo, out)
    assert compose_path == out / "compose.yaml"
    assert sorted(p.name for p in out.iterdir()) == ["compose.yaml", "redis-1.conf"]
    files = render_files(topo)
    assert compose_path.read_text() == files["compose.yaml"]
    assert "appendfsync always" in (out / "redis-1.conf").read_text().splitlines()


# ------------------------------------------------------------------ power loss: the data directory on the filesystem

def test_a_power_loss_scenario_serves_the_data_directory_through_the_filesystem(persistence_lab):
    topo, files = _render(persistence_lab, "aof-everysec", scenario=persistence_lab.scenario("power-loss"))
    (node,) = topo.data_nodes
    assert (node.data_mount, node.volume) == ("mounts/redis-1", None)
    assert topo.filesystem == {"dirty_expire_s": 30.0, "writeback_interval_s": 5.0}    # Linux's defaults
    service = _compose(files)["services"]["redis-1"]
    assert "./mounts/redis-1/data:/data" in service["volumes"]
    assert "volumes" not in _compose(files)          # no named volume


def test_other_scenarios_keep_the_named_volume(persistence_lab):
    topo, _ = _render(persistence_lab, "aof-everysec", scenario=persistence_lab.scenario("kill-restart"))
    assert topo.filesystem is None and topo.data_nodes[0].data_mount is None and topo.data_nodes[0].volume


def test_power_loss_of_every_data_node_mounts_each(sentinel_lab):
    topo, files = _render(sentinel_lab, "aof-everysec", scenario=sentinel_lab.scenario("power-loss-all"))
    assert [n.data_mount for n in topo.nodes] == ["mounts/redis-1", "mounts/redis-2", "mounts/redis-3", None, None, None]
