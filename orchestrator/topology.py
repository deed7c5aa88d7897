"""Derive the nodes of a lab once: names, roles, ports, volumes, redis.conf settings.

The templates and the runtime both read this; nothing else computes a port,
a container name or a volume name.
"""

from __future__ import annotations

import hashlib
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
SENTINEL_PORT = 26379
DATA_DIR = "/data"
CONFIG_PATH = "/usr/local/etc/redis/redis.conf"
# Sentinel rewrites its config file (by renaming a temporary file next to it), so each
# Sentinel gets a writable directory of its own, bind-mounted here.
SENTINEL_DIR = "/etc/sentinel"
MASTER_NAME = "mymaster"          # the name Sentinel monitors the master under
SENTINEL_DEFAULTS = {             # lab-friendly values; Redis' defaults are 30000 / 180000
    "down-after-milliseconds": "2000",
    "failover-timeout": "5000",
    "parallel-syncs": "1",
}
CLUSTER_DEFAULTS = {"cluster-node-timeout": "2000"}   # lab-friendly; Redis' default is 15000
MASTER, REPLICA, SENTINEL, SPARE = "master", "replica", "sentinel", "spare"


@dataclass(frozen=True)
class Setting:
    """One redis.conf line, with the reason it is there."""

    key: str
    value: str
    why: str = ""


@dataclass(frozen=True)
class Node:
    name: str              # compose service name, e.g. redis-1
    role: str              # role at start: master | replica | sentinel
    container: str         # container name
    host_port: int         # published on 127.0.0.1
    volume: str | None     # named volume holding /data; None when the mode keeps no data
    config_file: str       # file name inside the project directory
    settings: tuple[Setting, ...]
    port: int = REDIS_PORT           # the port inside the lab network
    edge_network: str | None = None  # the node's own network to the host (None: one shared network)
    ip: str | None = None            # fixed address on the lab network (replicated topologies)

    @property
    def is_sentinel(self) -> bool:
        return self.role == SENTINEL


@dataclass(frozen=True)
class Topology:
    lab: str
    kind: str              # single | replication | sentinel | cluster
    mode: str
    run_id: str
    project: str           # compose project name, also the network name
    image: str
    nodes: tuple[Node, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    subnet: str | None = None   # the lab network's subnet when nodes have fixed addresses

    def with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role]

    @property
    def data_nodes(self) -> list[Node]:
        """The Redis servers that hold data (master and replicas), not the Sentinels."""
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
        return all(n.edge_network for n in self.nodes)


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
    """Expand the lab's topology spec into nodes for one run in one persistence mode.

    Data nodes get ports port_base, port_base+1, ...; Sentinels the ports after them.
    For a scenario that partitions, every node also gets a network of its own to the host
    and the lab network between nodes is internal, so a partition cuts a node off its peers
    only. Other runs do without: each network costs about 0.4 s to create and remove.
    """
    project = project_name(lab.name, run_id)
    spec = lab.topology
    extra = dict(spec.config)
    if scenario is not None:
        extra.update(scenario.config)
    replicated = spec.kind != "single"
    cluster = spec.kind == "cluster"
    edges = replicated and _has_step(scenario, "partition")
    names = [f"redis-{i + 1}" for i in range(spec.masters * (1 + spec.replicas) if cluster else 1 + spec.replicas)]
    spares = [f"redis-{len(names) + 1}"] if cluster and _has_step(scenario, "add_node") else []
    names += spares
    sentinel_names = [f"sentinel-{i + 1}" for i in range(spec.sentinels)]
    subnet, ips = (lab_addresses(port_base, names, sentinel_names)) if replicated else (None, {})
    base = [
        Setting("port", str(REDIS_PORT)),
        Setting("bind", "0.0.0.0", "inside the container; the host publishes the port on 127.0.0.1 only"),
        Setting("protected-mode", "no", "clients arrive through Docker's port proxy, which is bound to 127.0.0.1"),
        Setting("dir", DATA_DIR, "the data directory: a named volume unless the mode keeps no data"),
    ] + persistence_settings(mode, spec.save)
    lab_friendly = [Setting(k, v, "set by the lab file") for k, v in extra.items()]

    def data_settings(name: str, role: str) -> tuple[Setting, ...]:
        if not replicated:
            return _merge(base, lab_friendly)
        replication = [
            Setting("repl-diskless-sync-delay", "0", "lab-friendly: start a full sync at once (the 7.x default "
                                                     "waits 5 s for more replicas to join)"),
        ]
        if cluster:
            replication += [
                Setting("cluster-enabled", "yes"),
                Setting("cluster-config-file", "nodes.conf", "the node's view of the cluster, kept in the data directory"),
                Setting("cluster-announce-ip", ips[name], "the address other nodes and clients are told"),
            ] + [Setting(k, v, "lab-friendly (Redis' default is 15000): a master unreachable this long is "
                               "PFAIL, then FAIL once a majority of masters agree") for k, v in CLUSTER_DEFAULTS.items()]
        elif role == REPLICA:
            replication.append(Setting("replicaof", f"{ips[names[0]]} {REDIS_PORT}",
                                       f"replicate the master at start ({names[0]})"))
        return _merge(base + replication, lab_friendly)

    masters = spec.masters if cluster else 1

    def role_at_start(i: int, name: str) -> str:
        return SPARE if name in spares else MASTER if i < masters else REPLICA

    nodes = [
        Node(name=name, role=role_at_start(i, name), container=f"{project}-{name}",
             host_port=port_base + i,
             volume=f"{project}-{name}-data" if mode_keeps_data(mode) else None,
             config_file=f"{name}.conf", settings=data_settings(name, role_at_start(i, name)),
             edge_network=f"{project}-{name}" if edges else None, ip=ips.get(name))
        for i, name in enumerate(names)
    ]
    for i, name in enumerate(sentinel_names):
        nodes.append(Node(name=name, role=SENTINEL, container=f"{project}-{name}",
                          host_port=port_base + len(names) + i, volume=None,
                          config_file=f"{name}/sentinel.conf",
                          settings=sentinel_settings(spec, project, name, names, sentinel_names, ips),
                          port=SENTINEL_PORT, edge_network=f"{project}-{name}" if edges else None, ip=ips[name]))
    labels = {LABEL_LAB: lab.name, LABEL_RUN: run_id, LABEL_MODE: mode}
    return Topology(lab=lab.name, kind=spec.kind, mode=mode, run_id=run_id, project=project, image=image,
                    nodes=tuple(nodes), labels=labels, subnet=subnet)


def _has_step(scenario: Scenario | None, action: str) -> bool:
    """Whether the scenario uses `action`: some need more of the topology (edge networks, a spare node)."""
    return scenario is not None and any(step.action == action for step in scenario.steps)


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


def sentinel_id(project: str, name: str) -> str:
    """A fixed 40-hex-digit Sentinel ID, so each Sentinel's file can name the others."""
    return hashlib.sha1(f"{project}/{name}".encode()).hexdigest()


def sentinel_settings(spec, project: str, name: str, data_names: list[str],
                      sentinel_names: list[str], ips: dict[str, str]) -> tuple[Setting, ...]:
    """sentinel.conf lines: monitor the first data node; know the replicas and the other
    Sentinels from the start (Sentinel would otherwise learn replicas from INFO, every 10 s,
    and the other Sentinels from hello messages, every 2 s)."""
    given = dict(SENTINEL_DEFAULTS, **{k: v for k, v in spec.sentinel.items() if k != "quorum"})
    quorum = spec.sentinel.get("quorum", str(len(sentinel_names) // 2 + 1))
    settings = [
        Setting("port", str(SENTINEL_PORT)),
        Setting("protected-mode", "no", "clients arrive through Docker's port proxy, which is bound to 127.0.0.1"),
        Setting("sentinel myid", sentinel_id(project, name), "fixed, so the other Sentinels' files can name this one"),
        Setting(f"sentinel monitor {MASTER_NAME}", f"{ips[data_names[0]]} {REDIS_PORT} {quorum}",
                f"the master ({data_names[0]}); quorum {quorum}: Sentinels that must agree it is down (+odown). "
                f"A failover also needs a majority of the {len(sentinel_names)} to elect a leader"),
    ]
    why = {"down-after-milliseconds": "no valid reply for this long: the master is subjectively down (+sdown); "
                                      "lab-friendly (Redis' default is 30000)",
           "failover-timeout": "lab-friendly (default 180000): also the wait before a failed failover is retried "
                               "(twice this)",
           "parallel-syncs": "replicas reconfigured at the same time after a failover"}
    for key, value in given.items():
        settings.append(Setting(f"sentinel {key} {MASTER_NAME}", value, why.get(key, "set by the lab file")))
    for replica in data_names[1:]:
        settings.append(Setting(f"sentinel known-replica {MASTER_NAME}", f"{ips[replica]} {REDIS_PORT}",
                                f"{replica}"))
    for other in sentinel_names:
        if other != name:
            settings.append(Setting(f"sentinel known-sentinel {MASTER_NAME}",
                                    f"{ips[other]} {SENTINEL_PORT} {sentinel_id(project, other)}", other))
    return tuple(settings)


def _merge(base: list[Setting], overrides: list[Setting]) -> tuple[Setting, ...]:
    """Later settings replace earlier ones with the same key, keeping the first position."""
    merged: dict[str, Setting] = {}
    for setting in base + overrides:
        merged[setting.key] = setting
    return tuple(merged.values())
