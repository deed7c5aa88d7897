"""The only module that talks to the Redis servers of a lab (through redis-py).

Host clients reach nodes through the ports published on 127.0.0.1. Inside the lab network
nodes know each other by fixed addresses (`10.227.188.12 6379`); `Remap` translates those
announced addresses to host ports in one place, for Sentinel discovery, the cluster client and
every reader of node state. Every client here has redis-py's hidden retries switched off and
bounded socket timeouts: retries hidden from the caller would hide the unavailability the
labs measure.

Kinds, faults and workloads never import this module: the runner hands it to them (`ctx.nodes`),
so `lab --help`, `lab list` and `lab validate` never import redis-py.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as StartupNode
from redis.cluster import RedisCluster
from redis.crc import key_slot as _key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel

from .topology import Node, Topology

HOST = "127.0.0.1"
PROBE_SOCKET_TIMEOUT_S = 0.5
# A connect on loopback takes well under 1 ms. While Docker (re)starts a container it can
# drop a SYN, and the kernel would retry it only after 1 s: a short connect timeout lets the
# probe try again at once, so the outage it reports is not stretched by that retransmit.
PROBE_CONNECT_TIMEOUT_S = 0.1
MASTER_NAME = "mymaster"          # the name Sentinel monitors the master under

# What a lost or refused connection raises (BusyLoadingError is a ConnectionError in redis-py,
# but it is an error reply: `classify` looks at reply codes first).
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
ERRORS = (redis.RedisError, OSError)
OK, FAIL, INFO = "ok", "fail", "info"

# redis-py turns these reply codes into exception classes and drops the code from the message.
_REPLY_CODES = (
    (rexc.BusyLoadingError, "LOADING"), (rexc.ReadOnlyError, "READONLY"), (rexc.OutOfMemoryError, "OOM"),
    (rexc.ExecAbortError, "EXECABORT"), (rexc.NoScriptError, "NOSCRIPT"), (rexc.NoPermissionError, "NOPERM"),
    (rexc.AskError, "ASK"), (rexc.TryAgainError, "TRYAGAIN"), (rexc.MovedError, "MOVED"),
    (rexc.ClusterCrossSlotError, "CROSSSLOT"), (rexc.MasterDownError, "MASTERDOWN"),
    (rexc.ClusterDownError, "CLUSTERDOWN"), (rexc.AuthenticationError, "NOAUTH"),
)


def no_retry() -> Retry:
    """redis-py retries hidden from the caller would hide the unavailability we measure."""
    return Retry(NoBackoff(), 0)


def admin_client(node: Node, timeout_s: float = 2.0) -> redis.Redis:
    """A client for reading server state (INFO, DBSIZE, read-back); no hidden retries."""
    return redis.Redis(host=HOST, port=node.host_port, socket_timeout=timeout_s,
                       socket_connect_timeout=timeout_s, retry=no_retry(), decode_responses=True)


def _ask(node: Node, timeout_s: float, ask):
    """`ask(client)` on a fresh admin client of `node`; None if the node does not answer."""
    client = admin_client(node, timeout_s=timeout_s)
    try:
        return ask(client)
    except ERRORS:
        return None
    finally:
        client.close()


def is_ready(node: Node) -> bool:
    """True when the node answers PING and is not loading its dataset."""
    return bool(_ask(node, 0.5, lambda c: c.ping() and c.info("persistence").get("loading", 0) == 0))


def info(node: Node, section: str = "everything", timeout_s: float = 2.0) -> dict:
    """INFO of the node (one section or all), or {} if it does not answer."""
    return _ask(node, timeout_s, lambda c: c.info(section)) or {}


def command(node: Node, *args, timeout_s: float = 2.0):
    """Send one command and return its reply; raises NodeCommandError with Redis' own words."""
    client = admin_client(node, timeout_s=timeout_s)
    try:
        return client.execute_command(*args)
    except ERRORS as exc:
        raise NodeCommandError(f"{' '.join(map(str, args))} on {node.name}: {exc}") from None
    finally:
        client.close()


def pipelined(node: Node, commands: list[tuple], timeout_s: float = 10.0) -> list:
    """Send commands in one pipeline (no transaction); their replies. Raises NodeCommandError."""
    client = admin_client(node, timeout_s=timeout_s)
    try:
        pipe = client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        return pipe.execute()
    except ERRORS as exc:
        raise NodeCommandError(f"{len(commands)} pipelined commands on {node.name}: {exc}") from None
    finally:
        client.close()


class NodeCommandError(Exception):
    """A command the tool sent to a node failed (the message has Redis' own words)."""


class NoMasterError(redis.ConnectionError):
    """No node says it is the master the replicas follow (a writer cannot connect yet)."""


def cluster_text(node: Node, subcommand: str, timeout_s: float = 0.5) -> str | None:
    """The text a CLUSTER subcommand answers on `node`, or None if it does not answer."""
    raw = _ask(node, timeout_s, lambda c: c.execute_command("CLUSTER", subcommand))
    if raw is None:
        return None
    return raw if isinstance(raw, str) else raw.decode()


def key_slot(key: str) -> int:
    """The cluster slot of a key (CRC16 of the key or its {hash tag}, mod 16384)."""
    return _key_slot(key.encode())


# ------------------------------------------------------------------ announced addresses

class Remap:
    """Announced (address, port) inside the lab network -> the node, reached on 127.0.0.1."""

    def __init__(self, topo: Topology):
        self.topo = topo
        self._by_address = {(n.ip, n.port): n for n in topo.nodes if n.ip}
        self._by_host_port = {n.host_port: n for n in topo.nodes}

    def node(self, host: str, port: int) -> Node:
        try:
            return self._by_address[(host, int(port))]
        except KeyError:
            raise redis.ConnectionError(f"{host}:{port} is not a node of lab {self.topo.lab}") from None

    def host_address(self, host: str, port: int) -> tuple[str, int]:
        return HOST, self.node(host, port).host_port

    def by_host_port(self, port: int) -> Node | None:
        return self._by_host_port.get(int(port))


# ------------------------------------------------------------------ roles, live

@dataclass(frozen=True)
class Replication:
    """What a data node says about itself in INFO replication."""

    node: str
    role: str                  # master | replica
    master: str | None         # for a replica: the node it replicates (its name)
    link_up: bool              # for a replica: master_link_status:up
    offset: int                # master_repl_offset (master) / slave_repl_offset (replica)
    link_report: str = ""      # for a replica: INFO's own words on its link (status, sync, down since, last I/O)


def replication_of(node: Node, topo: Topology, timeout_s: float = 0.5) -> Replication | None:
    """INFO replication of a data node, or None if it does not answer."""
    state = _ask(node, timeout_s, lambda c: c.info("replication"))
    if state is None:
        return None
    if state.get("role") == "master":
        return Replication(node.name, "master", None, False, int(state.get("master_repl_offset", 0)))
    return Replication(node.name, "replica", topo.name_of(str(state.get("master_host"))),
                       state.get("master_link_status") == "up", int(state.get("slave_repl_offset", 0) or 0),
                       ", ".join(f"{f} {state[f]}" for f in _LINK_FIELDS if f in state))


_LINK_FIELDS = ("master_link_status", "master_sync_in_progress", "master_link_down_since_seconds",
                "master_last_io_seconds_ago")


def replication_states(topo: Topology, nodes: list[Node] | None = None) -> dict[str, Replication]:
    """INFO replication of every data node (or of `nodes`) that answers, by node name."""
    found = {}
    for node in topo.data_nodes if nodes is None else nodes:
        state = replication_of(node, topo)
        if state is not None:
            found[node.name] = state
    return found


def sentinel_master_address(node: Node) -> tuple[str, int] | None:
    """SENTINEL get-master-addr-by-name: the address a Sentinel names (it answers even while the
    master is flagged down), or None."""
    found = _ask(node, 0.25, lambda c: c.sentinel_get_master_addr_by_name(MASTER_NAME))
    try:
        host, port = found
        return str(host), int(port)
    except (TypeError, ValueError):
        return None


def sentinel_master_state(node: Node) -> dict | None:
    """SENTINEL MASTER as a Sentinel sees it (num-slaves, num-other-sentinels, flags ...), or None."""
    return _ask(node, 0.5, lambda c: c.sentinel_master(MASTER_NAME))


def role_now(host_port: int | None, names: dict[str, str] | None = None) -> str:
    """What the server on 127.0.0.1:host_port says it is now (INFO replication / server mode):
    `master`, `replica of <node>` (`names` maps addresses to node names), `sentinel`, or `-`
    if it does not answer."""
    if host_port is None:
        return "-"
    client = redis.Redis(host=HOST, port=host_port, socket_timeout=0.3, socket_connect_timeout=0.3,
                         retry=no_retry(), decode_responses=True)
    try:
        state = client.info()
    except ERRORS:
        return "-"
    finally:
        client.close()
    if state.get("redis_mode") == "sentinel":
        return "sentinel"
    if state.get("role") == "slave":
        master = str(state.get("master_host"))
        return f"replica of {(names or {}).get(master, master)} (link {state.get('master_link_status')})"
    return state.get("role", "-")


# ------------------------------------------------------------------ Sentinel and cluster clients

class LabSentinel(Sentinel):
    """redis-py's Sentinel client, asking the lab's Sentinels through their published ports and
    translating the addresses they announce into host addresses. No hidden retries."""

    def __init__(self, topo: Topology, timeout_s: float = 0.25):
        self.remap = Remap(topo)
        kwargs = dict(socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=no_retry())
        super().__init__([(HOST, n.host_port) for n in topo.sentinels], sentinel_kwargs=kwargs, **kwargs)

    def discover_master(self, service_name: str = MASTER_NAME) -> tuple[str, int]:
        return self.remap.host_address(*super().discover_master(service_name))

    def discover_slaves(self, service_name: str = MASTER_NAME) -> list[tuple[str, int]]:
        return [self.remap.host_address(*address) for address in super().discover_slaves(service_name)]

    def close(self) -> None:
        for client in self.sentinels:
            client.close()


def cluster_client(topo: Topology, nodes: list[Node]) -> RedisCluster:
    """redis-py's RedisCluster through the published ports: `address_remap` turns every
    announced address into 127.0.0.1 and the node's port. No hidden retries: a write that
    fails raises, and the probe counts it."""
    remap = Remap(topo)
    startup = [StartupNode(HOST, n.host_port) for n in nodes]   # any that answers will do
    return RedisCluster(startup_nodes=startup, address_remap=lambda a: remap.host_address(*a),
                        socket_timeout=PROBE_SOCKET_TIMEOUT_S, socket_connect_timeout=PROBE_CONNECT_TIMEOUT_S,
                        cluster_error_retry_attempts=0, retry=no_retry(), require_full_coverage=False)


# ------------------------------------------------------------------ the probe's writers

def _packed_set(key: bytes, value: bytes) -> bytes:
    """`SET <key> <value>` in RESP."""
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)


class DirectWriter:
    """Writes through one raw redis-py connection to one node, as fast as it allows. It encodes
    the SET itself (RESP) and lets redis-py send it and parse the reply: redis-py's generic
    encoder cost about 15 % of the write rate on a 2-core machine, where the client competes
    for CPU with the server and Docker's port proxy. With `wait_replicas` each SET is followed
    by `WAIT <n> <timeout>` in the same packet, and a write counts as acknowledged only when
    WAIT reports that many replicas have it.

    After any error the probe connects again (`reconnect_after_error`): a new writer finds the
    master anew, so it follows a failover."""

    reconnect_after_error = True

    def __init__(self, connection: redis.Connection, wait_replicas: int = 0, wait_timeout_ms: int = 100):
        self.connection = connection
        self.endpoint = connection.port
        self.wait_replicas = wait_replicas
        self._wait = (b"*3\r\n$4\r\nWAIT\r\n$%d\r\n%d\r\n$%d\r\n%d\r\n" % (
            len(str(wait_replicas)), wait_replicas, len(str(wait_timeout_ms)), wait_timeout_ms)
            if wait_replicas else b"")
        connection.connect()

    def write(self, key: str, value: str) -> tuple[str, str]:
        """(outcome, error) of one SET; raises what redis-py raises."""
        conn = self.connection
        conn.send_packed_command([_packed_set(key.encode(), value.encode()) + self._wait], check_health=False)
        conn.read_response()
        if self._wait:
            confirmed = conn.read_response()
            if confirmed < self.wait_replicas:
                # Applied on the master, but no replica confirmed it in time: not acknowledged.
                return INFO, f"WAIT {confirmed}/{self.wait_replicas}"
        return OK, ""

    def close(self) -> None:
        self.connection.disconnect()


class ClusterWriter:
    """Writes through redis-py's RedisCluster, which routes each key to the master of its slot
    and follows MOVED/ASK redirects and TRYAGAIN itself (the client behaviour the cluster labs
    show); its retries on errors are off, so every failed attempt is recorded. It keeps its
    client after an error reply (RedisCluster refreshes its slot map itself) and makes a new
    one after anything unexpected."""

    reconnect_after_error = False

    def __init__(self, client: RedisCluster):
        self.client = client
        self.endpoint = None

    def write(self, key: str, value: str) -> tuple[str, str]:
        self.client.set(key, value)
        return OK, ""

    def close(self) -> None:
        self.client.close()


def probe_connection(host: str, port: int) -> redis.Connection:
    """One raw connection for the probe: no hidden retries, bounded socket timeouts."""
    return redis.Connection(host=host, port=port, socket_timeout=PROBE_SOCKET_TIMEOUT_S,
                            socket_connect_timeout=PROBE_CONNECT_TIMEOUT_S, retry=no_retry())


def sentinel_writer(sentinel: LabSentinel, wait_replicas: int = 0, wait_timeout_ms: int = 100) -> DirectWriter:
    """A writer to the master the Sentinels name at this moment."""
    return DirectWriter(probe_connection(*sentinel.discover_master()), wait_replicas, wait_timeout_ms)


def direct_writer(node: Node, wait_replicas: int = 0, wait_timeout_ms: int = 100) -> DirectWriter:
    return DirectWriter(probe_connection(HOST, node.host_port), wait_replicas, wait_timeout_ms)


def classify(exc: BaseException, connecting: bool) -> tuple[str, str]:
    """(outcome, kind) of a write attempt that raised `exc`.

    fail: certainly not applied: an error reply (READONLY, LOADING, CLUSTERDOWN, NOREPLICAS ...),
    a refusal by the client itself before sending (no node for the slot, redirects exhausted),
    or a failure while connecting (nothing was sent). info: unknown: a timeout or reset after
    the command was sent, and any exception nobody expected (it may have come after sending)."""
    for cls, code in _REPLY_CODES:
        if isinstance(exc, cls):
            return FAIL, code
    if isinstance(exc, redis.ResponseError):
        return FAIL, str(exc).split(" ", 1)[0] or type(exc).__name__
    if isinstance(exc, (rexc.RedisClusterException, rexc.ClusterError)):
        return FAIL, type(exc).__name__
    if isinstance(exc, CONNECTION_ERRORS):
        text = str(exc)
        label = _connection_kind(exc, text)
        never_sent = connecting or "connecting" in text or label in ("connection refused", "no master")
        return (FAIL if never_sent else INFO), label
    return INFO, f"unexpected {type(exc).__name__}"


def _connection_kind(exc: BaseException, text: str) -> str:
    named = {"MasterNotFoundError": "MasterNotFoundError", "NoMasterError": "no master"}.get(type(exc).__name__)
    if named:
        return named
    for needle, label in (("refused", "connection refused"), ("reset", "connection reset"),
                          ("Timeout", "timeout"), ("timed out", "timeout"), ("closed", "connection closed")):
        if needle in text:
            return label
    return type(exc).__name__


def pubsub(node: Node, timeout_s: float = 1.0):
    """A pub/sub connection to `node` (for listening to a Sentinel's event channels)."""
    return admin_client(node, timeout_s=timeout_s).pubsub()
