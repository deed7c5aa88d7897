"""The derived plan of one lab run: its nodes (names, roles, ports, volumes, redis.conf
settings), its Docker project and labels. A kind (orchestrator/kinds) derives it once; the
templates, the runtime and every client read it, and nothing else computes a port, a container
name or a volume name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_PORT_BASE = 7100
# Runs at once in `lab verify` and `lab compare`, each on its own ports. Most of a run is waiting
# (for a timeout, a failover, a restart), so three fit on 2 cores: measured on one, the 51 runs took
# 303 s with 2, 239 s with 3, and with 4 the probes starved each other (a stalled subscriber's
# buffer no longer filled).
DEFAULT_JOBS = 3
LABEL_LAB = "redis-ha-lab.lab"
LABEL_RUN = "redis-ha-lab.run"
LABEL_NODE = "redis-ha-lab.node"
LABEL_MODE = "redis-ha-lab.mode"
LABEL_ROLE = "redis-ha-lab.role"
REDIS_PORT = 6379
SENTINEL_PORT = 26379
DATA_DIR = "/data"
CONFIG_PATH = "/usr/local/etc/redis/redis.conf"
# Sentinel rewrites its config file (by renaming a temporary file next to it), so each
# Sentinel gets a writable directory of its own, bind-mounted here.
SENTINEL_DIR = "/etc/sentinel"
MASTER, REPLICA, SENTINEL, SPARE = "master", "replica", "sentinel", "spare"
OLD_MASTER = "old-master"    # target: the node that was master when the first fault struck
ALL_DOWN = "down"            # `start: down`: every node the scenario left down
UP_RUN_ID = "up"
HIGHEST_PORT = 65535
LOWEST_PORT = 1024


@dataclass(frozen=True)
class Setting:
    """One redis.conf line, with the reason it is there."""

    key: str
    value: str
    why: str = ""


@dataclass(frozen=True)
class Node:
    name: str              # compose service name, e.g. redis-1
    role: str              # role at start: master | replica | sentinel | spare
    container: str         # container name
    host_port: int         # published on 127.0.0.1
    volume: str | None     # named volume holding /data; None when the mode keeps no data
    config_file: str       # file name inside the project directory
    settings: tuple[Setting, ...]
    port: int = REDIS_PORT           # the port inside the lab network
    edge_network: str | None = None  # the node's own network to the host (None: one shared network)
    ip: str | None = None            # fixed address on the lab network (replicated topologies)
    data_mount: str | None = None    # a directory of the project bind-mounted at /data instead of the volume:
                                     # where the power-loss filesystem is mounted (engine/unsynced)

    @property
    def is_sentinel(self) -> bool:
        return self.role == SENTINEL


@dataclass(frozen=True)
class Topology:
    lab: str
    kind: str              # the kind that derived it (a registry key)
    mode: str
    run_id: str
    project: str           # compose project name, also the network name
    image: str
    nodes: tuple[Node, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    subnet: str | None = None   # the lab network's subnet when nodes have fixed addresses
    # The power-loss filesystem's model settings (dirty_expire_s, writeback_interval_s) when
    # the data nodes' directories are mounted through it (a scenario with a power_loss step).
    filesystem: Mapping[str, float] | None = None

    @property
    def mounted(self) -> list[Node]:
        """The nodes whose data directory is served by the power-loss filesystem."""
        return [n for n in self.nodes if n.data_mount]

    def with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role]

    @property
    def data_nodes(self) -> list[Node]:
        """The Redis servers that hold data (masters, replicas, spares), not the Sentinels."""
        return [n for n in self.nodes if not n.is_sentinel]

    @property
    def sentinels(self) -> list[Node]:
        return self.with_role(SENTINEL)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    @property
    def ports(self) -> list[int]:
        return [n.host_port for n in self.nodes]

    def name_of(self, address: str) -> str:
        """The node name for an address nodes announce (its fixed IP), else the address itself."""
        return next((n.name for n in self.nodes if address in (n.ip, n.name)), address)

    @property
    def partitionable(self) -> bool:
        """True when every node reaches the host through a network of its own, so cutting a
        node off the lab network leaves its published port (and the probe) working."""
        return bool(self.nodes) and all(n.edge_network for n in self.nodes)


def project_name(lab: str, run_id: str = UP_RUN_ID) -> str:
    """`lab-<lab>` for a lab started by `lab up`; `lab-<lab>-<run>` for a scenario run, so
    runs on different --port-base values can go in parallel."""
    return f"lab-{lab}" if run_id == UP_RUN_ID else f"lab-{lab}-{run_id}"


def labels_for(lab: str, run_id: str, mode: str) -> dict[str, str]:
    return {LABEL_LAB: lab, LABEL_RUN: run_id, LABEL_MODE: mode}


def persistence_settings(mode: str, save_points: str) -> list[Setting]:
    """The redis.conf lines a persistence mode sets. `save_points` is e.g. "1 1"."""
    no_save = Setting("save", '""', "no RDB snapshots")
    rdb = Setting("save", save_points, "RDB snapshot when <seconds> passed and <changes> were made")
    aof_off = Setting("appendonly", "no", "no append-only file")
    aof_on = Setting("appendonly", "yes", "every write is appended to appendonlydir/ before the reply")

    def fsync(policy):
        return Setting("appendfsync", policy, {
            "always": "fsync before every reply",
            "everysec": "fsync once a second in the background",
            "no": "never fsync: the kernel writes the file back when it decides (Linux: dirty data older than "
                  "30 s, checked every 5 s)"}[policy])

    return {
        "none": [no_save, aof_off],
        "rdb": [rdb, aof_off],
        "aof-no": [no_save, aof_on, fsync("no")],
        "aof-everysec": [no_save, aof_on, fsync("everysec")],
        "aof-always": [no_save, aof_on, fsync("always")],
        "rdb+aof": [rdb, aof_on, fsync("everysec")],
    }[mode]


def mode_keeps_data(mode: str) -> bool:
    return mode != "none"


def base_settings(mode: str, save_points: str) -> list[Setting]:
    """What every data node's redis.conf starts with: where it listens, where its data is, and
    the persistence mode."""
    return [
        Setting("port", str(REDIS_PORT)),
        Setting("bind", "0.0.0.0", "inside the container; the host publishes the port on 127.0.0.1 only"),
        Setting("protected-mode", "no", "clients arrive through Docker's port proxy, which is bound to 127.0.0.1"),
        Setting("dir", DATA_DIR, "the data directory: a named volume unless the mode keeps no data"),
    ] + persistence_settings(mode, save_points)


def merge_settings(base: list[Setting], overrides: list[Setting]) -> tuple[Setting, ...]:
    """Later settings replace earlier ones with the same key, keeping the first position."""
    merged: dict[str, Setting] = {}
    for setting in base + overrides:
        merged[setting.key] = setting
    return tuple(merged.values())


def lab_addresses(port_base: int, data_names: list[str], sentinel_names: list[str]) -> tuple[str, dict[str, str]]:
    """A /24 for the lab network, derived from the port base (10.<200 + base // 256 mod 50>.<base
    mod 256>.0/24: labs on port bases less than 12800 apart never share one), and fixed
    addresses in it: data nodes .11, .12, ..., Sentinels .21, ...

    Nodes know each other by these addresses, not by name: Docker's DNS forgets a stopped
    container's name, and a lookup of it can then hang for seconds on the host's resolvers,
    long enough to stall Sentinel (TILT) or a replica's reconnect. 10.200.0.0-10.249.255.255
    lies outside Docker's default address pools."""
    prefix = f"10.{200 + (port_base // 256) % 50}.{port_base % 256}"
    ips = {name: f"{prefix}.{11 + i}" for i, name in enumerate(data_names)}
    ips.update({name: f"{prefix}.{21 + i}" for i, name in enumerate(sentinel_names)})
    return f"{prefix}.0/24", ips


def check_port_range(port_base: int, count: int) -> str | None:
    """Why `count` host ports from `port_base` cannot be used (None if they can)."""
    if port_base < LOWEST_PORT:
        return f"--port-base {port_base} is below {LOWEST_PORT} (ports below it are reserved for system services)"
    if port_base + count - 1 > HIGHEST_PORT:
        return (f"--port-base {port_base} leaves no room for {count} ports (the highest port is {HIGHEST_PORT}: "
                f"use at most {HIGHEST_PORT - count + 1})")
    return None
