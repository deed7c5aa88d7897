"""Server events on the probe's monotonic clock, and the run's timeline.

Two sources, both ending as `ServerEvent`s timed on the run's monotonic clock:
- pub/sub channels (Sentinel publishes every event it logs on a channel named after it:
  `+sdown`, `+odown`, `+switch-master` ...): `ChannelWatch` listens in background threads and
  timestamps each message as it arrives;
- container logs (a cluster node logs "Failover election won" ...): `log_events` reads them
  with Docker's timestamps (the daemon's wall clock) and moves them onto the monotonic clock by
  the offset between the two clocks, measured before and after the run (`ClockOffset`); the
  difference of the two measurements (`drift_s`) is reported with the result.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable

LISTEN_TIMEOUT_S = 0.1     # how long one get_message() blocks before checking for stop
RECONNECT_PAUSE_S = 0.1


@dataclass(frozen=True)
class Event:
    """One line of a run's timeline."""

    t: float        # seconds since the start of the run (the lab was ready)
    what: str
    source: str     # tool | client | server

    def as_dict(self) -> dict:
        return {"t": round(self.t, 3), "what": self.what, "source": self.source}


@dataclass(frozen=True)
class ServerEvent:
    at: float          # monotonic seconds
    source: str        # the node that published or logged it, e.g. sentinel-2, redis-4
    name: str          # Sentinel's channel (+sdown, +switch-master, ...) or a short name of a log event
    detail: str        # the message: "master mymaster 10.x.y.11 6379", or the log line
    promotes: str | None = None   # for an announcement of a new master: that node's name
    replaces: str | None = None   # ... and the master it replaces, when the event says

    def describe(self) -> str:
        """Sentinel's "+sdown master mymaster ..."; a log line as the server wrote it."""
        return f"{self.name} {self.detail}".strip() if self.name[:1] in "+-" else self.detail


class ClockOffset:
    """wall clock - monotonic clock, measured when the run starts and again when it ends."""

    def __init__(self, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic):
        self._wall, self._mono = wall, mono
        self.before = self._sample()
        self.after: float | None = None

    def _sample(self) -> float:
        return self._wall() - self._mono()

    def finish(self) -> None:
        self.after = self._sample()

    @property
    def offset(self) -> float:
        """The offset used to move wall-clock stamps onto the monotonic clock: the mean of the two."""
        return self.before if self.after is None else (self.before + self.after) / 2

    @property
    def drift_s(self) -> float | None:
        """How far the two clocks moved apart during the run (NTP steps or slewing)."""
        return None if self.after is None else round(self.after - self.before, 6)


# ------------------------------------------------------------------ pub/sub channels

class ChannelWatch:
    """Collects every message of `PSUBSCRIBE *` on some nodes (Sentinels) in background threads
    between start() and stop(). A stopped or paused node is retried until it is back, so a
    restarted Sentinel's events are seen too. `nodes` is the engine's Redis module (pubsub,
    CONNECTION_ERRORS), handed in by the runner."""

    def __init__(self, watched, nodes, clock: Callable[[], float] = time.monotonic):
        self._watched = list(watched)
        self._nodes = nodes
        self._clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._events: list[ServerEvent] = []
        self._subscribed = threading.Semaphore(0)

    def start(self, timeout_s: float = 5.0) -> None:
        """Start listening; returns once every node has confirmed the subscription (or after `timeout_s`)."""
        for node in self._watched:
            thread = threading.Thread(target=self._listen, args=(node,), name=f"watch-{node.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + timeout_s
        for _ in self._watched:
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

    def _listen(self, node) -> None:
        first = True
        while not self._stop.is_set():
            pubsub = self._nodes.pubsub(node)
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
            except self._nodes.CONNECTION_ERRORS:
                self._stop.wait(RECONNECT_PAUSE_S)   # stopped or paused node: try again
            finally:
                pubsub.close()

    def _record(self, node, message: dict) -> None:
        event = ServerEvent(at=self._clock(), source=node.name, name=str(message["channel"]),
                            detail=str(message["data"]))
        with self._lock:
            self._events.append(event)


# ------------------------------------------------------------------ container logs

def log_events(runtime, watched: Iterable, patterns: tuple[tuple[re.Pattern, str], ...], offset: float,
               since: float, rename: Callable[[str], str] = lambda text: text) -> list[ServerEvent]:
    """The log lines of `watched` nodes that match one of `patterns` ((regex, short name)),
    timed by Docker's log timestamps (UTC, ns) moved onto the monotonic clock: monotonic =
    wall - `offset` (ClockOffset.offset). Lines before `since` (monotonic) are left out;
    `rename` rewrites each message (node IDs into names)."""
    found = []
    for node in watched:
        for line in runtime.logs(node, timestamps=True).splitlines():
            stamp, _, message = line.partition(" ")
            for pattern, name in patterns:
                if pattern.search(message):
                    at = docker_time(stamp) - offset
                    if at >= since:
                        found.append(ServerEvent(at=at, source=node.name, name=name, detail=rename(after_level(message))))
                    break
    return sorted(found, key=lambda e: e.at)


def docker_time(stamp: str) -> float:
    """RFC 3339 with nanoseconds (2026-11-28T10:52:41.107219582Z) -> POSIX seconds."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(base + "+00:00").timestamp() + float(f"0.{frac or 0}")


def after_level(text: str) -> str:
    """Redis' log line "1:M 28 Nov 2026 10:52:41.105 * message" -> "message"."""
    match = re.match(r"^\d+:\w \d+ \w+ \d+ [\d:.]+ [.*#-] (.*)$", text)
    return match.group(1) if match else text
