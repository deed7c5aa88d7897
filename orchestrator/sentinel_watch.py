"""Sentinel's own view of a run: its event channels (`+sdown`, `+odown`, `+switch-master`, ...)
read while the scenario runs, timestamped on the run's monotonic clock.

Each Sentinel publishes every event it logs on a pub/sub channel named after the event
(`PSUBSCRIBE *` receives them all). One thread per Sentinel listens through the
Sentinel's published port; when a Sentinel is stopped the thread reconnects until it is
back, so a restarted Sentinel's events are seen too.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import redis

from .clients import admin_client
from .topology import Node, Topology

LISTEN_TIMEOUT_S = 0.1     # how long one get_message() blocks before checking for stop
RECONNECT_PAUSE_S = 0.1


@dataclass(frozen=True)
class ServerEvent:
    at: float          # monotonic seconds, when the message arrived
    source: str        # the Sentinel that published it, e.g. sentinel-2
    name: str          # the channel: +sdown, +switch-master, ...
    detail: str        # the message: "master mymaster redis-1 6379", ...

    def describe(self) -> str:
        """Sentinel's "+sdown master mymaster ..."; a cluster log line as Redis wrote it."""
        return f"{self.name} {self.detail}".strip() if self.name[:1] in "+-" else self.detail


class SentinelWatch:
    """Collects every Sentinel's events in background threads between start() and stop()."""

    def __init__(self, topo: Topology, clock: Callable[[], float] = time.monotonic):
        self._nodes = topo.sentinels
        self._clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._events: list[ServerEvent] = []
        self._subscribed = threading.Semaphore(0)

    def start(self, timeout_s: float = 5.0) -> None:
        """Start listening; returns once every Sentinel has confirmed the subscription."""
        for node in self._nodes:
            thread = threading.Thread(target=self._listen, args=(node,), name=f"watch-{node.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + timeout_s
        for _ in self._nodes:
            self._subscribed.acquire(timeout=max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()

    @property
    def events(self) -> list[ServerEvent]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.at)

    def _listen(self, node: Node) -> None:
        first = True
        while not self._stop.is_set():
            client = admin_client(node, timeout_s=1.0)
            pubsub = client.pubsub()
            try:
                pubsub.psubscribe("*")
                # the subscription is in place once its confirmation arrives
                while pubsub.get_message(timeout=LISTEN_TIMEOUT_S) is None:
                    if self._stop.is_set():
                        return
                if first:
                    self._subscribed.release()
                    first = False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                    if message and message.get("type") == "pmessage":
                        self._record(node, message)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._stop.wait(RECONNECT_PAUSE_S)   # stopped or paused Sentinel: try again
            finally:
                pubsub.close()
                client.close()

    def _record(self, node: Node, message: dict) -> None:
        event = ServerEvent(at=self._clock(), source=node.name, name=str(message["channel"]),
                            detail=str(message["data"]))
        with self._lock:
            self._events.append(event)
