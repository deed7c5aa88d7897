"""redis-py clients for the nodes of a lab, and readiness checks that poll with tenacity.

Host clients reach nodes through the ports published on 127.0.0.1.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tenacity import RetryError, retry_if_result, stop_after_delay, Retrying, wait_fixed

from .topology import Node

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
