"""Derive the nodes of a lab once: names, roles, ports, volumes, redis.conf settings.

The templates and the runtime both read this; nothing else computes a port,
a container name or a volume name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .labs import Lab, Scenario

DEFAULT_PORT_BASE = 7100
LABEL_LAB = "redis-ha-lab.lab"
LABEL_RUN = "redis-ha-lab.run"
LABEL_NODE = "redis-ha-lab.node"
LABEL_MODE = "redis-ha-lab.mode"
LABEL_ROLE = "redis-ha-lab.role"
REDIS_PORT = 6379
DATA_DIR = "/data"
CONFIG_PATH = "/usr/local/etc/redis/redis.conf"


@dataclass(frozen=True)
class Setting:
    """One redis.conf line, with the reason it is there."""

    key: str
    value: str
    why: str = ""


@dataclass(frozen=True)
class Node:
    name: str              # compose service name, e.g. redis-1
    role: str              # role at start: master | replica
    container: str         # container name
    host_port: int         # published on 127.0.0.1
    volume: str | None     # named volume holding /data; None when the mode keeps no data
    config_file: str       # file name inside the project directory
    settings: tuple[Setting, ...]


@dataclass(frozen=True)
class Topology:
    lab: str
    mode: str
    run_id: str
    project: str           # compose project name, also the network name
    image: str
    nodes: tuple[Node, ...]
    labels: Mapping[str, str] = field(default_factory=dict)

    def with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role]

    @property
    def ports(self) -> list[int]:
        return [n.host_port for n in self.nodes]


def persistence_settings(mode: str, save_points: str) -> list[Setting]:
    """The redis.conf lines a persistence mode sets. `save_points` is e.g. "1 1"."""
    no_save = Setting("save", '""', "no RDB snapshots")
    rdb = Setting("save", save_points, "RDB snapshot when <seconds> passed and <changes> were made")
    aof_off = Setting("appendonly", "no", "no append-only file")
    aof_on = Setting("appendonly", "yes", "every write is appended to appendonlydir/ before the reply")

    def fsync(policy):
        return Setting("appendfsync", policy, {"always": "fsync before every reply",
                                              "everysec": "fsync once a second in the background"}[policy])

    return {
        "none": [no_save, aof_off],
        "rdb": [rdb, aof_off],
        "aof-everysec": [no_save, aof_on, fsync("everysec")],
        "aof-always": [no_save, aof_on, fsync("always")],
        "rdb+aof": [rdb, aof_on, fsync("everysec")],
    }[mode]


def mode_keeps_data(mode: str) -> bool:
    return mode != "none"


UP_RUN_ID = "up"


def project_name(lab: str, run_id: str = UP_RUN_ID) -> str:
    """`lab-<lab>` for a lab started by `lab up`; `lab-<lab>-<run>` for a scenario run, so
    runs on different --port-base values can go in parallel."""
    return f"lab-{lab}" if run_id == UP_RUN_ID else f"lab-{lab}-{run_id}"


def derive_topology(lab: Lab, mode: str, run_id: str, image: str,
                    port_base: int = DEFAULT_PORT_BASE, scenario: Scenario | None = None) -> Topology:
    """Expand the lab's topology spec into nodes for one run in one persistence mode."""
    project = project_name(lab.name, run_id)
    spec = lab.topology
    extra = dict(spec.config)
    if scenario is not None:
        extra.update(scenario.config)
    base = [
        Setting("port", str(REDIS_PORT)),
        Setting("bind", "0.0.0.0", "inside the container; the host publishes the port on 127.0.0.1 only"),
        Setting("protected-mode", "no", "clients arrive through Docker's port proxy, which is bound to 127.0.0.1"),
        Setting("dir", DATA_DIR, "the data directory: a named volume unless the mode keeps no data"),
    ] + persistence_settings(mode, spec.save)
    lab_friendly = [Setting(k, v, "set by the lab file") for k, v in extra.items()]
    settings = _merge(base, lab_friendly)

    names = ["redis-1"]
    nodes = tuple(
        Node(name=name, role="master" if i == 0 else "replica", container=f"{project}-{name}",
             host_port=port_base + i,
             volume=f"{project}-{name}-data" if mode_keeps_data(mode) else None,
             config_file=f"{name}.conf", settings=settings)
        for i, name in enumerate(names)
    )
    labels = {LABEL_LAB: lab.name, LABEL_RUN: run_id, LABEL_MODE: mode}
    return Topology(lab=lab.name, mode=mode, run_id=run_id, project=project, image=image,
                    nodes=nodes, labels=labels)


def _merge(base: list[Setting], overrides: list[Setting]) -> tuple[Setting, ...]:
    """Later settings replace earlier ones with the same key, keeping the first position."""
    merged: dict[str, Setting] = {}
    for setting in base + overrides:
        merged[setting.key] = setting
    return tuple(merged.values())
