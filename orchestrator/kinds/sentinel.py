"""A master, its replicas and Sentinels that watch it: automatic failover."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from ..engine.topology import MASTER, OLD_MASTER, REDIS_PORT, REPLICA, SENTINEL, SENTINEL_PORT, Node, Setting, Topology
from ..events import ChannelWatch, ServerEvent
from ..spec import Param
from ..spec.registry import metric, register_kind
from .base import WriteRoute
from .replication import Replication

MASTER_NAME = "mymaster"          # the name Sentinel monitors the master under
# Sentinel settings a lab file may give (per monitored master), and the lab-friendly values
# the tool uses otherwise (Redis' defaults are 30000 and 180000).
SENTINEL_SETTINGS = ("quorum", "down-after-milliseconds", "failover-timeout", "parallel-syncs")
SENTINEL_DEFAULTS = {"down-after-milliseconds": "2000", "failover-timeout": "5000", "parallel-syncs": "1"}
_WHY = {"down-after-milliseconds": "no valid reply for this long: the master is subjectively down (+sdown); "
                                   "lab-friendly (Redis' default is 30000)",
        "failover-timeout": "lab-friendly (default 180000): also the wait before a failed failover is retried "
                            "(twice this)",
        "parallel-syncs": "replicas reconfigured at the same time after a failover"}


def sentinel_id(project: str, name: str) -> str:
    """A fixed 40-hex-digit Sentinel ID, so each Sentinel's file can name the others."""
    return hashlib.sha1(f"{project}/{name}".encode()).hexdigest()


class Sentinel(Replication):
    name = "sentinel"
    summary = "a master, its replicas and Sentinels that fail over automatically"
    fields = Replication.fields + (Param("sentinels", "count", default=3, most=7), Param("sentinel", "any", default={}))
    capabilities = frozenset({"network", "replicaof", "failover", "sentinel"})
    roles = (MASTER, REPLICA, OLD_MASTER, SENTINEL)

    # ------------------------------------------------------------ the lab file

    def check_params(self, params, fail):
        raw = params["sentinel"]
        if not isinstance(raw, dict):
            fail("sentinel", f"must be a mapping, got {type(raw).__name__}")
        settings = {}
        for name, value in raw.items():
            key = f"sentinel.{name}"
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                fail(key, "Sentinel settings must be strings or numbers (whole numbers here)")
            if name not in SENTINEL_SETTINGS:
                fail(key, f"unknown Sentinel setting (known: {', '.join(SENTINEL_SETTINGS)})")
            if not re.fullmatch(r"[1-9][0-9]*", str(value)):
                fail(key, f"must be a whole number greater than 0, not {value!r}")
            settings[name] = str(value)
        if int(settings.get("quorum", 1)) > params["sentinels"]:
            fail("sentinel.quorum", f"must be a whole number from 1 to {params['sentinels']} (the number of Sentinels)")
        return {**params, "sentinel": settings}

    # ------------------------------------------------------------ the plan

    def other_names(self, params) -> list[str]:
        return [f"sentinel-{i + 1}" for i in range(params["sentinels"])]

    def other_nodes(self, lab, project, first_port, data_names, ips, uses) -> list[Node]:
        names = self.other_names(lab.topology.params)
        return [Node(name=name, role=SENTINEL, container=f"{project}-{name}", host_port=first_port + i, volume=None,
                     config_file=f"{name}/sentinel.conf",
                     settings=self.sentinel_settings(lab.topology.params, project, name, data_names, names, ips),
                     port=SENTINEL_PORT, edge_network=f"{project}-{name}" if self.edges(uses) else None, ip=ips[name])
                for i, name in enumerate(names)]

    @staticmethod
    def sentinel_settings(params, project: str, name: str, data_names: list[str], sentinel_names: list[str],
                          ips: dict[str, str]) -> tuple[Setting, ...]:
        """sentinel.conf lines: monitor the first data node; know the replicas and the other
        Sentinels from the start (Sentinel would otherwise learn replicas from INFO, every 10 s,
        and the other Sentinels from hello messages, every 2 s)."""
        given = params["sentinel"]
        merged = dict(SENTINEL_DEFAULTS, **{k: v for k, v in given.items() if k != "quorum"})
        quorum = given.get("quorum", str(len(sentinel_names) // 2 + 1))
        settings = [
            Setting("port", str(SENTINEL_PORT)),
            Setting("protected-mode", "no", "clients arrive through Docker's port proxy, which is bound to 127.0.0.1"),
            Setting("sentinel myid", sentinel_id(project, name), "fixed, so the other Sentinels' files can name this one"),
            Setting(f"sentinel monitor {MASTER_NAME}", f"{ips[data_names[0]]} {REDIS_PORT} {quorum}",
                    f"the master ({data_names[0]}); quorum {quorum}: Sentinels that must agree it is down (+odown). "
                    f"A failover also needs a majority of the {len(sentinel_names)} to elect a leader"),
        ]
        for key, value in merged.items():
            settings.append(Setting(f"sentinel {key} {MASTER_NAME}", value, _WHY.get(key, "set by the lab file")))
        for replica in data_names[1:]:
            settings.append(Setting(f"sentinel known-replica {MASTER_NAME}", f"{ips[replica]} {REDIS_PORT}", replica))
        for other in sentinel_names:
            if other != name:
                settings.append(Setting(f"sentinel known-sentinel {MASTER_NAME}",
                                        f"{ips[other]} {SENTINEL_PORT} {sentinel_id(project, other)}", other))
        return tuple(settings)

    def up_lines(self, topo: Topology) -> list[str]:
        return [f"ask a Sentinel for the master: redis-cli -p {topo.sentinels[0].host_port} "
                f"SENTINEL get-master-addr-by-name {MASTER_NAME}",
                "  (it answers with the master's lab-network address; the list above says which node that is)"]

    # ------------------------------------------------------------ live

    def start_stages(self, topo: Topology) -> list[list[Node]]:
        """The data nodes first, the Sentinels once they answer. A Sentinel knows the replicas
        from its file: started beside a master that is slow to start on a busy host, it counts
        the master down after down-after-milliseconds and fails over before the lab began."""
        return [list(topo.data_nodes), list(topo.sentinels)]

    def not_settled(self, lab) -> str | None:
        """The replicas are in sync, and every Sentinel sees the master, all its replicas and all
        the other Sentinels (a Sentinel that knows no peers could elect itself)."""
        lacking = super().not_settled(lab)
        if lacking:
            return lacking
        topo = lab.topo
        first = topo.data_nodes[0].name
        for node in topo.sentinels:
            seen = lab.nodes.sentinel_master_state(node)
            if seen is None:
                return f"{node.name} does not answer SENTINEL MASTER yet"
            flags = set(str(seen.get("flags", "")).split(","))
            if flags != {"master"} or topo.name_of(str(seen.get("ip"))) != first:
                # a failover during bring-up (a slow start on a busy host): the lab is not in the
                # state the scenario starts from, and waiting does not bring it back
                return (f"{node.name} names {topo.name_of(str(seen.get('ip')))} as master with flags "
                        f"{','.join(sorted(flags))} (the lab starts with {first} as master and nothing in progress)")
            if (seen.get("num-slaves") != len(topo.data_nodes) - 1
                    or seen.get("num-other-sentinels") != len(topo.sentinels) - 1 or not seen.get("is_master")
                    or seen.get("is_sdown") or seen.get("is_odown")):
                return (f"{node.name} sees {seen.get('num-slaves')} replicas and {seen.get('num-other-sentinels')} "
                        f"other Sentinels (flags {seen.get('flags')})")
        return None

    def master_name(self, ctx) -> str | None:
        """The master most answering Sentinels name (get-master-addr-by-name answers even while
        the master is flagged down); the one the replicas follow if no Sentinel answers."""
        votes = Counter()
        for node in ctx.topo.sentinels:
            address = ctx.nodes.sentinel_master_address(node)
            if address is not None:
                votes[ctx.topo.name_of(address[0])] += 1
        return votes.most_common(1)[0][0] if votes else super().master_name(ctx)

    def resolve(self, ctx, role: str) -> Node | None:
        if role == SENTINEL:
            return next(iter(ctx.topo.sentinels), None)
        return super().resolve(ctx, role)

    def writes(self, ctx, wait_replicas: int, wait_timeout_ms: int) -> WriteRoute:
        """Through redis-py's Sentinel client: ask the Sentinels where the master is, at every connect."""
        if getattr(ctx, "sentinel_client", None) is None:
            ctx.sentinel_client = ctx.nodes.LabSentinel(ctx.topo)
        sentinel = ctx.sentinel_client
        return WriteRoute(lambda: ctx.nodes.sentinel_writer(sentinel, wait_replicas, wait_timeout_ms), "through Sentinel")

    def client_env(self, ctx) -> dict[str, str]:
        return {**super().client_env(ctx),
                "LAB_SENTINELS": ",".join(f"127.0.0.1:{n.host_port}" for n in ctx.topo.sentinels),
                "LAB_MASTER_NAME": MASTER_NAME}

    def start_events(self, ctx) -> None:
        ctx.watch = ChannelWatch(ctx.topo.sentinels, ctx.nodes, clock=ctx.clock)
        ctx.watch.start()

    def server_events(self, ctx, offset: float) -> list[ServerEvent]:
        """Every Sentinel's events as they arrived; a +switch-master announces its new master
        (detail: <master name> <old ip> <port> <new ip> <port>)."""
        if ctx.watch is None:
            return []
        ctx.watch.stop()
        found = []
        for event in ctx.watch.events:
            if event.name == "+switch-master" and len(event.detail.split()) == 5:
                _, old, _, new, _ = event.detail.split()
                event = ServerEvent(event.at, event.source, event.name, event.detail,
                                    promotes=ctx.topo.name_of(new), replaces=ctx.topo.name_of(old))
            found.append(event)
        return found

    def close(self, ctx) -> None:
        if getattr(ctx, "sentinel_client", None) is not None:
            ctx.sentinel_client.close()
            ctx.sentinel_client = None


SENTINEL_KIND = register_kind(Sentinel())


# ------------------------------------------------------------------ Sentinel's own figures

@metric("detection_s", "s", "Sentinel: fault to the first +odown (the master agreed down)",
        requires=frozenset({"sentinel"}), workload=None)
def detection_s(obs):
    """From the fault taking effect to the first Sentinel's +odown (a quorum agrees the master is
    down), read from the Sentinels' channel. Sentinel counts down-after-milliseconds from its
    last unanswered PING, sent up to a second after the fault (PING every second), then asks
    the others: about down-after + 0-1 s. None without a fault or an +odown."""
    effective = obs.fault_time()
    if effective is None:
        return None
    after = [e.at for e in obs.server_events if e.name == "+odown" and e.at >= effective]
    return round(after[0] - effective, 3) if after else None


@metric("election_rounds", "count", "Sentinel: leader elections the failover took; 2 or more: a split vote",
        requires=frozenset({"sentinel"}), workload=None)
def election_rounds(obs):
    """Epochs in which Sentinels voted for a failover leader (+vote-for-leader <id> <epoch> on
    the Sentinels' channel, distinct epochs). When two Sentinels reach +odown in the same
    instant each votes for itself, nobody has a majority (-failover-abort-not-elected) and they
    try again 2 x failover-timeout later, plus up to 1 s of random delay (sentinel.c): each
    extra round adds about that to failover_s. 0 without a failover."""
    return len({e.detail.split()[-1] for e in obs.server_events if e.name == "+vote-for-leader" and e.detail.split()})
