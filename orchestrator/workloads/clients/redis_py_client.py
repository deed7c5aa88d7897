"""Reference client: redis-py as an application uses it. Library defaults throughout (its own
retries on: Retry with exponential back-off, 3 retries; no socket timeout), except what an
application must set: the Sentinels and master name (`Sentinel.master_for`), the cluster's
seed nodes (`RedisCluster`), and the translation of the lab-network addresses the servers
announce into the published ports they are reached through (`address_remap` for the cluster;
for Sentinel, which has no such option, a subclass that translates what it discovers).

Run by `lab` with the environment variables of README's "Your own client"; prints one JSON
line per attempt. Not a module of the package: it runs as a program of its own.
"""

import json
import os
import signal
import sys
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

RETRY_PAUSE_S = 0.01     # after a failed attempt, as the tool's own probe does


class Stop(Exception):
    """SIGTERM: the tool stops the client."""


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def addresses(name: str) -> list[tuple[str, int]]:
    return [host_port(item) for item in os.environ.get(name, "").split(",") if item]


def remap_from_environment():
    """LAB_ADDRESS_MAP ("10.x.y.11:6379=127.0.0.1:7100,...") as a function of (host, port)."""
    pairs = dict(item.split("=", 1) for item in os.environ.get("LAB_ADDRESS_MAP", "").split(",") if item)
    return lambda address: host_port(pairs.get(f"{address[0]}:{address[1]}", f"{address[0]}:{address[1]}"))


class TranslatingSentinel(Sentinel):
    """redis-py's Sentinel client, translating the addresses the Sentinels announce."""

    def __init__(self, sentinels, remap, **kwargs):
        self.remap = remap
        super().__init__(sentinels, **kwargs)

    def discover_master(self, service_name):
        return self.remap(super().discover_master(service_name))

    def discover_slaves(self, service_name):
        return [self.remap(address) for address in super().discover_slaves(service_name)]


def connect():
    remap = remap_from_environment()
    if os.environ.get("LAB_CLUSTER_SEEDS"):
        seeds = [ClusterNode(host, port) for host, port in addresses("LAB_CLUSTER_SEEDS")]
        return RedisCluster(startup_nodes=seeds, address_remap=remap)
    if os.environ.get("LAB_SENTINELS"):
        return TranslatingSentinel(addresses("LAB_SENTINELS"), remap).master_for(os.environ["LAB_MASTER_NAME"])
    host, port = addresses("LAB_MASTER")[0]
    return redis.Redis(host=host, port=port)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stop(signum, frame):
    raise Stop()


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    prefix = os.environ.get("LAB_KEY_PREFIX", "ext:")
    deadline = time.monotonic() + float(os.environ.get("LAB_RUN_SECONDS", "600"))
    emit({"client": "redis-py", "version": redis.__version__})
    client = None
    try:
        client = connect()
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            key, value = f"{prefix}{seq}", str(seq)
            invoke = time.monotonic()
            try:
                client.set(key, value)
                emit({"key": key, "value": value, "invoke": invoke, "complete": time.monotonic(), "outcome": "ok"})
            except redis.RedisError as exc:
                # An error reply: refused. Anything else: unknown (redis-py may have sent it, and retried).
                outcome = "fail" if isinstance(exc, redis.ResponseError) else "info"
                emit({"key": key, "value": value, "invoke": invoke, "complete": time.monotonic(),
                      "outcome": outcome, "error": f"{type(exc).__name__}: {exc}"})
                time.sleep(RETRY_PAUSE_S)
    except Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client may fail; the program ends anyway
                pass


if __name__ == "__main__":
    main()
