"""The workload: a writer that records every attempt, and the read-back that finds lost writes.

The probe writes `SET probe:<seq> <run>:<seq>` through one redis-py connection, as
fast as that connection allows (closed loop), in a background thread. It encodes the
SET itself (RESP: an array of three bulk strings) and lets redis-py send it and parse
the reply: redis-py's generic encoder cost about 15 % of the write rate on a 2-core
machine, where the client competes for CPU with the server and Docker's port proxy.
Each attempt is recorded with its invoke and completion time on the run's monotonic
clock and one outcome (Jepsen's set-checker vocabulary):

- ok:   the server replied +OK (acknowledged);
- fail: definitely not applied: the connection was refused before anything was sent,
        or the server replied with an error (LOADING, MISCONF, READONLY, ...);
- info: unknown: a timeout or a reset after the command was sent.

The connection has no hidden retries and a socket timeout; after a failed attempt the
probe waits RETRY_PAUSE_S before the next one, so outage figures have that resolution.
After an error reply or a lost connection it connects again through `connect`, which
finds the master anew (through Sentinel, or by asking the nodes), so it follows a failover.

With `wait_replicas` > 0 each SET is followed by `WAIT <n> <timeout>` in the same packet,
and a write counts as acknowledged only when WAIT reports that many replicas have it; a
write the master applied but no replica confirmed in time is `info` (unknown).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import redis

OK, FAIL, INFO = "ok", "fail", "info"
RETRY_PAUSE_S = 0.01
READ_BATCH = 1000


@dataclass(frozen=True)
class Attempt:
    seq: int
    invoked: float     # monotonic seconds
    completed: float   # monotonic seconds
    outcome: str       # ok | fail | info
    error: str = ""    # short kind of error, "" when ok


def _packed_set(seq: int, value_prefix: bytes) -> bytes:
    """`SET probe:<seq> <value_prefix><seq>` in RESP."""
    key = b"probe:%d" % seq
    value = b"%s%d" % (value_prefix, seq)
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)


def _reply_codes() -> dict[type, str]:
    """Exception class -> the error code of the reply (READONLY, LOADING, ...): redis-py strips
    the code from the message of the errors it has a class for."""
    from redis._parsers.base import BaseParser

    return {cls: code for code, cls in BaseParser.EXCEPTION_CLASSES.items() if isinstance(cls, type)}


_REPLY_CODES = _reply_codes()


def _error_kind(exc: Exception) -> str:
    if type(exc) in _REPLY_CODES:
        return _REPLY_CODES[type(exc)]
    if isinstance(exc, redis.ResponseError):
        return str(exc).split(" ", 1)[0] or type(exc).__name__
    text = str(exc)
    for needle, kind in (("refused", "connection refused"), ("reset", "connection reset"),
                         ("Timeout", "timeout"), ("timed out", "timeout"), ("closed", "connection closed")):
        if needle in text:
            return kind
    return type(exc).__name__


class Probe:
    """Writes distinct keys with known values and records every attempt."""

    def __init__(self, connect: Callable[[], redis.Connection], run_id: str, clock: Callable[[], float] = time.monotonic,
                 wait_replicas: int = 0, wait_timeout_ms: int = 100):
        self._connect = connect
        self._run_id = run_id
        self._clock = clock
        self._wait = b"*3\r\n$4\r\nWAIT\r\n$%d\r\n%d\r\n$%d\r\n%d\r\n" % (
            len(str(wait_replicas)), wait_replicas, len(str(wait_timeout_ms)), wait_timeout_ms) if wait_replicas else b""
        self.wait_replicas = wait_replicas
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._records: list[tuple] = []
        self.connections: list[tuple[float, int]] = []   # (monotonic time, port) of each connect
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    # ------------------------------------------------------------ writing

    def value_for(self, seq: int) -> str:
        return f"{self._run_id}:{seq}"

    @staticmethod
    def key_for(seq: int) -> str:
        return f"probe:{seq}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("probe already started")
        self.started_at = self._clock()
        self._thread = threading.Thread(target=self._write_loop, name="probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self.stopped_at = self._clock()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _write_loop(self) -> None:
        clock, record, stop = self._clock, self._records.append, self._stop
        prefix = self._run_id.encode() + b":"
        conn: redis.Connection | None = None
        seq = 0
        while not stop.is_set():
            seq += 1
            invoked = clock()
            if conn is None:
                try:
                    conn = self._connect()
                    conn.connect()
                    self.connections.append((clock(), conn.port))
                except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                    # Nothing was sent: the write cannot have been applied.
                    record((seq, invoked, clock(), FAIL, _error_kind(exc)))
                    conn = None
                    stop.wait(RETRY_PAUSE_S)
                    continue
            try:
                conn.send_packed_command([_packed_set(seq, prefix) + self._wait], check_health=False)
                conn.read_response()
                if self._wait:
                    confirmed = conn.read_response()
                    if confirmed < self.wait_replicas:
                        # Applied on the master, but no replica confirmed it in time: not acknowledged.
                        record((seq, invoked, clock(), INFO, f"WAIT {confirmed}/{self.wait_replicas}"))
                        continue
                record((seq, invoked, clock(), OK, ""))
            except (redis.BusyLoadingError, redis.ResponseError) as exc:
                # An error reply: the server refused the write. Connect again: the client
                # may be talking to a demoted master (READONLY).
                record((seq, invoked, clock(), FAIL, _error_kind(exc)))
                conn.disconnect()
                conn = None
                stop.wait(RETRY_PAUSE_S)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                # Sent, but no reply: it may or may not have been applied.
                record((seq, invoked, clock(), INFO, _error_kind(exc)))
                conn.disconnect()
                conn = None
                stop.wait(RETRY_PAUSE_S)
        if conn is not None:
            conn.disconnect()

    # ------------------------------------------------------------ results

    @property
    def attempts(self) -> list[Attempt]:
        return [Attempt(*r) for r in self._records]

    def read_back(self, reader: redis.Redis) -> "ReadBack":
        """Read every acknowledged (and every unknown) key; call after recovery."""
        attempts = self.attempts
        wanted = [a for a in attempts if a.outcome in (OK, INFO)]
        present = set()
        for batch in batches(wanted, READ_BATCH):
            values = reader.mget([self.key_for(a.seq) for a in batch])
            for attempt, value in zip(batch, values):
                if value is not None and _text(value) == self.value_for(attempt.seq):
                    present.add(attempt.seq)
        return ReadBack(
            lost=[a.seq for a in wanted if a.outcome == OK and a.seq not in present],
            indeterminate_present=[a.seq for a in wanted if a.outcome == INFO and a.seq in present],
            keys_checked=len(wanted),
        )


class ClusterProbe(Probe):
    """The same workload through redis-py's RedisCluster, which routes each key to the master of
    its slot and follows MOVED/ASK redirects and TRYAGAIN itself (that is the client behaviour
    the cluster labs show); its retries on errors are off, so every failed attempt is recorded.

    Outcomes: a CLUSTERDOWN or other error reply is `fail`; a refused connection is `fail`
    (nothing was sent); a timeout or reset after sending is `info`."""

    def _write_loop(self) -> None:
        clock, record, stop = self._clock, self._records.append, self._stop
        client = None
        seq = 0
        while not stop.is_set():
            seq += 1
            invoked = clock()
            try:
                if client is None:
                    client = self._connect()
                client.set(self.key_for(seq), self.value_for(seq))
                record((seq, invoked, clock(), OK, ""))
                continue
            except redis.exceptions.ClusterDownError:
                record((seq, invoked, clock(), FAIL, "CLUSTERDOWN"))
            except redis.ResponseError as exc:
                record((seq, invoked, clock(), FAIL, _error_kind(exc)))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                sent = "connecting" not in str(exc) and not isinstance(exc, ConnectionRefusedError)
                record((seq, invoked, clock(), INFO if sent else FAIL, _error_kind(exc)))
            except (redis.exceptions.RedisClusterException, redis.exceptions.ClusterError) as exc:
                # raised by the client itself: no node for the slot, no startup node answered,
                # redirects exhausted ("TTL exhausted") before any node took the write
                record((seq, invoked, clock(), FAIL, type(exc).__name__))
            except redis.RedisError as exc:
                record((seq, invoked, clock(), INFO, type(exc).__name__))
            stop.wait(RETRY_PAUSE_S)
        if client is not None:
            client.close()


@dataclass(frozen=True)
class ReadBack:
    lost: list[int] = field(default_factory=list)                 # ok writes missing
    indeterminate_present: list[int] = field(default_factory=list)  # info writes that did land
    keys_checked: int = 0


def error_counts(attempts: Iterable[Attempt]) -> Counter:
    return Counter(a.error for a in attempts if a.outcome != OK)


def batches(items: list, size: int):
    """Consecutive slices of `items`, `size` long (the last shorter): reads go in MGETs of that many keys."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value
