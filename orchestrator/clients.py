"""redis-py clients for the nodes of a lab, and readiness checks that poll with tenacity.

Host clients reach nodes through the ports published on 127.0.0.1. Inside the lab
network nodes know each other by fixed addresses (`10.227.188.12 6379`); `Remap` translates
those announced addresses to host ports in one place, for Sentinel discovery and for every
reader of node state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel
from tenacity import RetryError, retry_if_result, stop_after_delay, Retrying, wait_fixed

from .topology import MASTER_NAME, Node, Topology

HOST = "127.0.0.1"
POLL_INTERVAL_S = 0.05
PROBE_SOCKET_TIMEOUT_S = 0.5
# A connect on loopback takes well under 1 ms. While Docker (re)starts a container it can
# drop a SYN, and the kernel would retry it only after 1 s: a short connect timeout lets the
# probe try again at once, so the outage it reports is not stretched by that retransmit.
PROBE_CONNECT_TIMEOUT_S = 0.1


def no_retry() -> Retry:
    """redis-py retries hidden from the caller would hide the unavailability we measure."""
    return Retry(NoBackoff(), 0)


def probe_connection(node: Node) -> redis.Connection:
    """One raw connection for the probe: no hidden retries, bounded socket timeouts."""
    return redis.Connection(host=HOST, port=node.host_port, socket_timeout=PROBE_SOCKET_TIMEOUT_S,
                            socket_connect_timeout=PROBE_CONNECT_TIMEOUT_S, retry=no_retry())


def admin_client(node: Node, timeout_s: float = 2.0) -> redis.Redis:
    """A client for reading server state (INFO, DBSIZE, read-back); no hidden retries."""
    return redis.Redis(host=HOST, port=node.host_port, socket_timeout=timeout_s,
                       socket_connect_timeout=timeout_s, retry=no_retry(), decode_responses=True)


def is_ready(node: Node) -> bool:
    """True when the node answers PING and is not loading its dataset."""
    client = admin_client(node, timeout_s=0.5)
    try:
        return client.ping() and client.info("persistence").get("loading", 0) == 0
    except redis.RedisError:
        return False
    finally:
        client.close()


def wait_until(condition, timeout_s: float, interval_s: float = POLL_INTERVAL_S) -> bool:
    """Poll `condition()` every `interval_s` until it is true; False after `timeout_s`."""
    retrying = Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(interval_s),
                        retry=retry_if_result(lambda ok: not ok))
    try:
        return bool(retrying(condition))
    except RetryError:
        return False


def server_info(node: Node) -> dict:
    """INFO of the node (all sections), or {} if it does not answer."""
    client = admin_client(node)
    try:
        return client.info("everything")
    except redis.RedisError:
        return {}
    finally:
        client.close()


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


def sentinel_connection(sentinel: LabSentinel) -> redis.Connection:
    """A probe connection to the master the Sentinels name at this moment."""
    host, port = sentinel.discover_master()
    return redis.Connection(host=host, port=port, socket_timeout=PROBE_SOCKET_TIMEOUT_S,
                            socket_connect_timeout=PROBE_CONNECT_TIMEOUT_S, retry=no_retry())


# ------------------------------------------------------------------ roles, live

@dataclass(frozen=True)
class Replication:
    """What a data node says about itself in INFO replication."""

    node: str
    role: str                  # master | replica
    master: str | None         # for a replica: the node it replicates (its name)
    link_up: bool              # for a replica: master_link_status:up
    offset: int                # master_repl_offset (master) / slave_repl_offset (replica)


def replication_of(node: Node, topo: Topology, timeout_s: float = 0.5) -> Replication | None:
    """INFO replication of a data node, or None if it does not answer."""
    client = admin_client(node, timeout_s=timeout_s)
    try:
        info = client.info("replication")
    except redis.RedisError:
        return None
    finally:
        client.close()
    if info.get("role") == "master":
        return Replication(node.name, "master", None, False, int(info.get("master_repl_offset", 0)))
    return Replication(node.name, "replica", topo.name_of(str(info.get("master_host"))),
                       info.get("master_link_status") == "up",
                       int(info.get("slave_repl_offset", 0) or 0))


def replication_states(topo: Topology) -> dict[str, Replication]:
    """INFO replication of every data node that answers, by node name."""
    found = {}
    for node in topo.data_nodes:
        state = replication_of(node, topo)
        if state is not None:
            found[node.name] = state
    return found


def master_by_roles(states: dict[str, Replication]) -> str | None:
    """The master the replicas follow: of the nodes that say they are master, the one most
    replicas point at with their link up (an isolated old master still calls itself master)."""
    masters = [name for name, s in states.items() if s.role == "master"]
    if not masters:
        return None
    followers = Counter(s.master for s in states.values() if s.role == "replica" and s.link_up)
    return max(masters, key=lambda name: (followers.get(name, 0), -masters.index(name)))


def sentinels_master(topo: Topology) -> str | None:
    """The master most answering Sentinels name (SENTINEL get-master-addr-by-name, which
    answers even while the master is flagged down)."""
    votes = Counter()
    for node in topo.sentinels:
        client = admin_client(node, timeout_s=0.25)
        try:
            host, _port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            votes[topo.name_of(host)] += 1
        except (redis.RedisError, TypeError, ValueError):
            continue
        finally:
            client.close()
    return votes.most_common(1)[0][0] if votes else None


def current_master(topo: Topology) -> str | None:
    """The node that is master now: the Sentinels' answer when the lab has Sentinels,
    otherwise the one the replicas follow."""
    if topo.sentinels:
        named = sentinels_master(topo)
        if named:
            return named
    return master_by_roles(replication_states(topo))


def master_connection(topo: Topology) -> redis.Connection:
    """A probe connection to the master as the replicas see it now (a client repointed by an
    operator, for labs without Sentinel); ConnectionError while no node is master."""
    name = master_by_roles(replication_states(topo))
    if name is None:
        raise redis.ConnectionError("no master: no node that answers says role:master")
    return probe_connection(topo.node(name))


def not_yet_settled(topo: Topology) -> str | None:
    """What a replicated topology still lacks before a fault can teach anything, or None:
    every replica's link to the master is up, and every Sentinel sees the master, all its
    replicas and all the other Sentinels (a Sentinel that knows no peers could elect itself)."""
    master = topo.data_nodes[0].name
    for node in topo.data_nodes[1:]:
        state = replication_of(node, topo)
        if state is None or not (state.role == "replica" and state.master == master and state.link_up):
            return f"{node.name} is not yet in sync with {master}"
    for node in topo.sentinels:
        client = admin_client(node, timeout_s=0.5)
        try:
            seen = client.sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return f"{node.name} does not answer SENTINEL MASTER yet"
        finally:
            client.close()
        if (seen.get("num-slaves") != len(topo.data_nodes) - 1
                or seen.get("num-other-sentinels") != len(topo.sentinels) - 1 or not seen.get("is_master")
                or seen.get("is_sdown") or seen.get("is_odown")):
            return (f"{node.name} sees {seen.get('num-slaves')} replicas and {seen.get('num-other-sentinels')} "
                    f"other Sentinels (flags {seen.get('flags')})")
    return None


def role_now(host_port: int | None, names: dict[str, str] | None = None) -> str:
    """What the server on 127.0.0.1:host_port says it is now (INFO replication / server mode):
    `master`, `replica of <node>` (`names` maps addresses to node names), `sentinel`, or `-`
    if it does not answer."""
    if host_port is None:
        return "-"
    client = redis.Redis(host=HOST, port=host_port, socket_timeout=0.3, socket_connect_timeout=0.3,
                         retry=no_retry(), decode_responses=True)
    try:
        info = client.info()
    except redis.RedisError:
        return "-"
    finally:
        client.close()
    if info.get("redis_mode") == "sentinel":
        return "sentinel"
    if info.get("role") == "slave":
        master = str(info.get("master_host"))
        return f"replica of {(names or {}).get(master, master)} (link {info.get('master_link_status')})"
    return info.get("role", "-")
