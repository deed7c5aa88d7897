"""The `writes` workload: a probe that writes distinct keys and records every attempt, and the
read-back that finds lost writes (Jepsen's set-checker vocabulary).

The probe writes `SET probe:<seq> <run>:<seq>` in a closed loop in a background thread, through
the client the kind supplies (one raw connection to the master, found directly, through the
replicas' view or through Sentinel; or redis-py's RedisCluster). Each attempt is recorded with
its invoke and completion time on the run's monotonic clock and one outcome:

- ok:   the server acknowledged it;
- fail: certainly not applied: an error reply (LOADING, READONLY, NOREPLICAS, CLUSTERDOWN ...),
        a refusal by the client before sending, or a failure while connecting;
- info: unknown: a timeout or reset after sending, a WAIT that did not confirm it, or any
        exception nobody expected.

Every exception a write raises becomes an attempt (engine.nodes.classify) and the loop goes on;
after a failed attempt the probe waits RETRY_PAUSE_S, so outage figures have that resolution.
If the thread ends for any other reason the run is an ERROR. After recovery every ok, info and
fail key is read back: `lost` are ok keys missing, `indeterminate` info keys present, and
`fail_landed` fail keys present, which checks the labels themselves.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..events import Event
from ..spec import Bound, Param, parse_duration
from ..spec.registry import metric, register_workload
from .base import AttemptLoop, Workload, close_quietly

OK, FAIL, INFO = "ok", "fail", "info"
RETRY_PAUSE_S = 0.01
READ_BATCH = 1000
FINAL_WINDOW_S = 1.0
BUCKET_S = 0.1


@dataclass(frozen=True)
class Attempt:
    seq: int
    invoked: float     # monotonic seconds
    completed: float   # monotonic seconds
    outcome: str       # ok | fail | info
    error: str = ""    # short kind of error, "" when ok


@dataclass(frozen=True)
class ReadBack:
    lost: list[int] = field(default_factory=list)                   # ok writes missing
    indeterminate_present: list[int] = field(default_factory=list)  # info writes that did land
    fail_landed: list[int] = field(default_factory=list)            # fail writes that did land
    keys_checked: int = 0


@dataclass(frozen=True)
class Range:
    """A part of the key space at the probe's start (a cluster shard), as the history keeps it."""

    label: str
    master: str
    replicas: tuple[str, ...]
    slots: int


@dataclass(frozen=True)
class WriteHistory:
    """What the writes workload observed. `range_of[seq]` is the index in `ranges` of the key's
    part of the key space (cluster shards); both empty when the key space is one piece."""

    attempts: list[Attempt]
    readback: ReadBack
    ranges: tuple[Range, ...] = ()
    range_of: dict[int, int] = field(default_factory=dict)
    stopped_at: float | None = None

    def oks(self) -> list[Attempt]:
        """The acknowledged attempts, in order (computed once; every metric reads them)."""
        found = self.__dict__.get("_oks")
        if found is None:
            found = [a for a in self.attempts if a.outcome == OK]
            object.__setattr__(self, "_oks", found)
        return found


def key_for(seq: int) -> str:
    return f"probe:{seq}"


def batches(items: list, size: int):
    """Consecutive slices of `items`, `size` long (the last shorter): reads go in MGETs of that many keys."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ------------------------------------------------------------------ the probe

class Probe(AttemptLoop):
    """Writes distinct keys with known values through `connect()`'s writer and records every
    attempt. `classify(exc, connecting)` gives the outcome and kind of an attempt that raised."""

    what = "probe"
    died = "the probe's write loop died at attempt"

    def __init__(self, connect: Callable[[], object], classify: Callable[[BaseException, bool], tuple[str, str]],
                 run_id: str, clock: Callable[[], float] = time.monotonic):
        super().__init__(connect, classify, clock)
        self._run_id = run_id
        self.acked = 0          # acknowledged so far (for the progress line)

    def value_for(self, seq: int) -> str:
        return f"{self._run_id}:{seq}"

    key_for = staticmethod(key_for)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        clock, record, stop = self._clock, self._records.append, self._stop
        writer = None
        seq = 0
        while not stop.is_set():
            seq += 1
            invoked = clock()
            if writer is None:
                try:
                    writer = self._connect()
                    if writer.endpoint is not None:     # a cluster client has no one endpoint
                        self.connections.append((clock(), writer.endpoint))
                except Exception as exc:  # noqa: BLE001 - every exception is an attempt
                    record((seq, invoked, clock(), *self._classify(exc, True)))
                    stop.wait(RETRY_PAUSE_S)
                    continue
            try:
                outcome, error = writer.write(key_for(seq), self.value_for(seq))
                record((seq, invoked, clock(), outcome, error))
                self.acked += outcome == OK
                continue
            except Exception as exc:  # noqa: BLE001 - every exception is an attempt
                outcome, kind = self._classify(exc, False)
                record((seq, invoked, clock(), outcome, kind))
                if writer.reconnect_after_error or kind.startswith("unexpected"):
                    close_quietly(writer)
                    writer = None
            stop.wait(RETRY_PAUSE_S)
        if writer is not None:
            close_quietly(writer)

    @property
    def attempts(self) -> list[Attempt]:
        return [Attempt(*r) for r in self._records]

    def read_back(self, reader) -> ReadBack:
        """Read every key back (ok, info and fail); call after recovery."""
        return read_back(self.attempts, reader, key_for, self.value_for)


def read_back(attempts: list[Attempt], reader, key_of: Callable[[int], str],
              value_of: Callable[[int], str | None]) -> ReadBack:
    """Read every attempt's key (`key_of(seq)`) back with MGETs (ok, info and fail); call after
    recovery. A key is present when it holds `value_of(seq)` (any value when that is None)."""
    present = set()
    for batch in batches(attempts, READ_BATCH):
        values = reader.mget([key_of(a.seq) for a in batch])
        for attempt, value in zip(batch, values):
            expected = value_of(attempt.seq)
            if value is not None and (expected is None or _text(value) == expected):
                present.add(attempt.seq)
    return ReadBack(
        lost=[a.seq for a in attempts if a.outcome == OK and a.seq not in present],
        indeterminate_present=[a.seq for a in attempts if a.outcome == INFO and a.seq in present],
        fail_landed=[a.seq for a in attempts if a.outcome == FAIL and a.seq in present],
        keys_checked=len(attempts),
    )


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ------------------------------------------------------------------ the workload

@register_workload
class Writes(Workload):
    name = "writes"
    history = "writes"
    summary = "a probe writes distinct keys as fast as one connection allows; every key is read back"
    options = (Param("wait_replicas", "natural", default=0), Param("wait_timeout", "duration", default="100ms"))
    # A run is measured only if the probe was still writing at its end, and its `fail`
    # labels are honest (no write it recorded as refused is present afterwards).
    invariants = {"final_writes_per_s": Bound(min=1), "fail_landed": Bound(max=0)}

    @classmethod
    def check_options(cls, options, kind, params):
        replicas = kind.replicas_per_master(params)
        if options["wait_replicas"] and "replicaof" not in kind.capabilities:
            return ("wait_replicas", f"the probe sends WAIT only where replicas follow one master by REPLICAOF "
                                     f"(kind replication or sentinel), not in a {kind.name} lab")
        if options["wait_replicas"] > replicas:
            return ("wait_replicas", f"WAIT {options['wait_replicas']} can never be satisfied: each master of "
                                     f"this {kind.name} lab has {replicas} replica{'s' if replicas != 1 else ''}")
        if parse_duration(options["wait_timeout"]) < 0.001:
            return ("wait_timeout", "WAIT's timeout is in whole milliseconds, at least 1ms (0 would block forever)")
        return None

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.wait_replicas = int(options.get("wait_replicas", 0))
        self.wait_timeout_ms = max(1, round(parse_duration(options.get("wait_timeout", "100ms")) * 1000))
        self.ranges: list = []
        self.probe: Probe | None = None
        self.via = ""

    def start(self) -> None:
        ctx = self.ctx
        self.ranges = ctx.kind.key_ranges(ctx)
        writes = ctx.kind.writes(ctx, self.wait_replicas, self.wait_timeout_ms)
        self.via = writes.via
        self.probe = Probe(writes.connect, ctx.nodes.classify, run_id=ctx.topo.run_id, clock=ctx.clock)
        self.probe.start()

    def stop(self) -> None:
        self.probe.stop()

    @property
    def running(self) -> bool:
        return self.probe is not None and self.probe.running

    @property
    def failure(self) -> str | None:
        if self.probe is None:
            return None
        if self.probe.failure:
            return self.probe.failure
        if self.probe.running and not self.probe.alive:
            return "the probe's thread ended on its own"
        return None

    @property
    def window(self):
        return None if self.probe is None else (self.probe.started_at, self.probe.stopped_at)

    @property
    def endpoint(self) -> int | None:
        return self.probe.endpoint if self.probe else None

    @property
    def acked_so_far(self) -> int | None:
        return None if self.probe is None else self.probe.acked

    def describe_start(self) -> str:
        confirm = f", each write confirmed by WAIT {self.wait_replicas} {self.wait_timeout_ms}" if self.wait_replicas else ""
        return f"probe starts writing {self.via}{confirm}"

    def describe_stop(self) -> str:
        return f"probe stopped after {len(self.probe._records)} attempts"

    def observe(self) -> WriteHistory:
        """Read every key back from the data as it stands after recovery (the kind's reader)."""
        reader = self.ctx.kind.reader(self.ctx)
        try:
            readback = self.probe.read_back(reader)
        finally:
            reader.close()
        attempts = self.probe.attempts
        range_of = {}
        if self.ranges:
            for a in attempts:
                index = next((i for i, r in enumerate(self.ranges) if r.holds(key_for(a.seq))), None)
                if index is not None:
                    range_of[a.seq] = index
        ranges = tuple(Range(r.label, r.master, r.replicas, r.slots) for r in self.ranges)
        return WriteHistory(attempts=attempts, readback=readback, ranges=ranges, range_of=range_of,
                            stopped_at=self.probe.stopped_at)

    def keys_acked_before_fault(self, history: WriteHistory) -> list[str]:
        if "fault" not in self.ctx.marks:
            return []
        effective = self.ctx.marks["fault"][1]
        return [key_for(a.seq) for a in history.oks() if a.completed <= effective]

    def client_events(self, history: WriteHistory) -> list[Event]:
        return client_events(self.ctx, history, self.probe.connections)

    def report_fields(self, history: WriteHistory) -> dict:
        attempts = history.attempts
        landed = set(history.readback.fail_landed)
        return {"error_kinds": dict(Counter(a.error for a in attempts if a.outcome != OK)),
                "mislabelled": dict(Counter(a.error for a in attempts if a.seq in landed)),
                "shards": range_rows(history, self.ctx.marks),
                "timeline": timeline(history, self.ctx.marks, self.ctx.t0, self.ctx.events)}


def client_events(ctx, history: WriteHistory, connections, key_of: Callable[[int], str] = key_for) -> list[Event]:
    """The probe's view of the fault, for the timeline beside the tool's steps and the servers'."""
    found = []
    if "fault" in ctx.marks:
        effective = ctx.marks["fault"][1]
        oks = history.oks()
        last = [a for a in oks if a.completed <= effective]
        if last:
            found.append(Event(last[-1].completed - ctx.t0, f"last ack before the fault ({key_of(last[-1].seq)})", "client"))
        failures = [a for a in history.attempts if a.outcome != OK and a.invoked >= (last[-1].completed if last else 0)]
        if failures:
            found.append(Event(failures[0].completed - ctx.t0, f"first failed write: {failures[0].error}", "client"))
        first = [a for a in oks if a.invoked >= effective]
        if first:
            found.append(Event(first[0].completed - ctx.t0, f"first ack after the fault ({key_of(first[0].seq)})", "client"))
    return found + ctx.kind.connection_events(ctx, connections)


# ------------------------------------------------------------------ outages

def outage_span(history: WriteHistory, effective: float) -> tuple[float, float] | None:
    """(last ack before the fault took effect, first ack invoked after it) as the probe saw it."""
    oks = history.oks()
    before = [a.completed for a in oks if a.completed <= effective]
    after = [a.completed for a in oks if a.invoked >= effective]
    if not before or not after:
        return None
    return before[-1], after[0]


def range_gaps(history: WriteHistory, effective: float) -> dict[int, tuple[float, float] | None]:
    """Per part of the key space: its longest outage after the fault took effect, as a span from
    its last acknowledged write before a failed one to its next acknowledged write (or to the
    probe's stop if none came); None if none of its writes failed. Gaps without a failed write of
    that part do not count: the one-write-at-a-time probe was then busy with other parts' keys."""
    last_ok: dict[int, float] = {}
    failed: set[int] = set()
    gaps: dict[int, tuple[float, float] | None] = {i: None for i in range(len(history.ranges))}

    def widen(index: int, start: float, end: float) -> None:
        if gaps[index] is None or end - start > gaps[index][1] - gaps[index][0]:
            gaps[index] = (start, end)

    for attempt in history.attempts:
        index = history.range_of.get(attempt.seq)
        if index is None:
            continue
        if attempt.outcome != OK:
            failed.add(index)
            continue
        if index in failed and index in last_ok and attempt.completed > effective:
            widen(index, last_ok[index], attempt.completed)
        failed.discard(index)
        last_ok[index] = attempt.completed
    if history.stopped_at is not None:
        for index in failed:
            if index in last_ok:
                widen(index, last_ok[index], history.stopped_at)
    return gaps


def _length(span) -> float:
    return 0.0 if span is None else span[1] - span[0]


def unavailable_span(history: WriteHistory, marks: dict) -> tuple[float, float] | None:
    """The span `unavailable_s` measures: around the fault for one key space; the slowest part's
    longest outage when the key space is in parts (cluster shards)."""
    if "fault" not in marks:
        return None
    effective = marks["fault"][1]
    if not history.ranges:
        return outage_span(history, effective)
    gaps = [span for span in range_gaps(history, effective).values() if span is not None]
    return max(gaps, key=_length) if gaps else None


def range_rows(history: WriteHistory, marks: dict) -> list[dict]:
    """Per part of the key space at probe start: its master then, slots, acked, lost, errors and
    the longest wait for an ack after the fault (see range_gaps). [] for one key space."""
    if not history.ranges:
        return []
    gaps = range_gaps(history, marks["fault"][1]) if "fault" in marks else {}
    lost_set = set(history.readback.lost)
    rows = [{"shard": i, "master_at_start": r.master, "replicas": list(r.replicas), "slots": r.slots,
             "acked": 0, "lost": 0, "errors": 0,
             "longest_gap_s": round(_length(gaps[i]), 3) if i in gaps else None}
            for i, r in enumerate(history.ranges)]
    for attempt in history.attempts:
        index = history.range_of.get(attempt.seq)
        if index is None:
            continue
        if attempt.outcome == OK:
            rows[index]["acked"] += 1
            rows[index]["lost"] += attempt.seq in lost_set
        else:
            rows[index]["errors"] += 1
    return rows


# ------------------------------------------------------------------ charts

def timeline(history: WriteHistory, marks: dict, t0: float, events: list[Event]) -> dict:
    """What a chart of the run needs, on the timeline's clock (seconds since the lab was ready):
    attempts per BUCKET_S by outcome (per part of the key space), fault-to-heal windows, the
    outage span and the ack time of every lost write."""
    attempts = history.attempts
    if not attempts:
        return {}
    start = min(a.completed for a in attempts) - t0
    end = max(a.completed for a in attempts) - t0
    buckets = int((end - start) / BUCKET_S) + 1
    names = [f"shard {i} ({r.master})" for i, r in enumerate(history.ranges)] or ["all"]
    counts = [{OK: [0] * buckets, FAIL: [0] * buckets, INFO: [0] * buckets} for _ in names]
    for a in attempts:
        index = history.range_of.get(a.seq, 0) if history.ranges else 0
        counts[index][a.outcome][min(buckets - 1, int((a.completed - t0 - start) / BUCKET_S))] += 1
    lost = set(history.readback.lost)
    span = unavailable_span(history, marks)
    return {
        "bucket_s": BUCKET_S,
        "series": [{"name": name, "start_t": round(start, 3), "counts": c} for name, c in zip(names, counts)],
        "windows": fault_windows(events),
        "outage": {"from": round(span[0] - t0, 3), "to": round(span[1] - t0, 3), "metric": "unavailable_s"} if span else None,
        "lost_acks_t": [round(a.completed - t0, 3) for a in history.oks() if a.seq in lost],
        "probe": {"from": round(attempts[0].invoked - t0, 3),
                  "to": round((history.stopped_at or attempts[-1].completed) - t0, 3)},
    }


_OPENS = {"kill": "start", "stop": "start", "pause": "unpause", "partition": "heal", "power_loss": "start"}


def fault_windows(events: list[Event]) -> list[dict]:
    """From each fault step on the timeline to the step that undoes it on the same node (None: never)."""
    windows = []
    for i, event in enumerate(events):
        if event.source != "tool":
            continue
        action, _, rest = event.what.partition(" ")
        if action not in _OPENS:
            continue
        node = _node_named(rest)
        closing = next((later for later in events[i + 1:] if later.source == "tool"
                        and later.what.split(" ", 1)[0] in (_OPENS[action], "healed")
                        and (node is None or node in later.what or "down" in later.what)), None)
        windows.append({"from": round(event.t, 3), "to": round(closing.t, 3) if closing else None, "what": event.what})
    return windows


def _node_named(text: str) -> str | None:
    """The node a step's description names: `master (redis-1)` -> redis-1, `redis-2` -> redis-2."""
    if "(" in text and text.endswith(")"):
        return text.rsplit("(", 1)[1][:-1]
    word = text.split(" ", 1)[0]
    return word if word.startswith(("redis-", "sentinel-")) else None


# ------------------------------------------------------------------ metrics

def _history(obs) -> WriteHistory:
    return obs.history


@metric("acked", "writes", "writes the server acknowledged (+OK) during the run")
def acked(obs):
    """Count of probe attempts whose reply was +OK."""
    return len(_history(obs).oks())


@metric("lost", "writes", "acknowledged writes missing when read back after recovery")
def lost(obs):
    """After the last step, every key is read back with MGET; an acknowledged key that is
    absent or holds another value is lost."""
    return len(_history(obs).readback.lost)


@metric("lost_pct", "%", "lost / acked * 100")
def lost_pct(obs):
    """lost / acked * 100 (0 when nothing was acknowledged)."""
    total = acked(obs)
    return round(100.0 * lost(obs) / total, 2) if total else 0.0


def _acked_before_fault(obs) -> list[int] | None:
    effective = obs.fault_time()
    if effective is None:
        return None
    return [a.seq for a in _history(obs).oks() if a.completed <= effective]


@metric("acked_before_fault", "writes", "writes acknowledged before the fault took effect")
def acked_before_fault(obs):
    """Count of +OK replies that completed before the fault took effect: for a kill or a power
    loss, the (first) container's exit as Docker recorded it; for other faults, when the step
    returned."""
    before = _acked_before_fault(obs)
    return None if before is None else len(before)


@metric("lost_before_fault_pct", "%", "share of the writes acknowledged before the fault that were lost")
def lost_before_fault_pct(obs):
    """Of the writes acknowledged before the fault took effect, the percentage missing at
    read-back. Writes made after recovery would dilute lost_pct; this one shows what the fault
    took from the data that existed when it struck."""
    before = _acked_before_fault(obs)
    if not before:
        return None
    lost_set = set(_history(obs).readback.lost)
    return round(100.0 * sum(1 for seq in before if seq in lost_set) / len(before), 2)


@metric("indeterminate", "writes", "timed-out or reset writes that are present afterwards")
def indeterminate(obs):
    """Attempts with outcome `info` (sent, then timeout or reset: unknown) whose key holds
    the written value when read back."""
    return len(_history(obs).readback.indeterminate_present)


@metric("fail_landed", "writes", "writes recorded as refused that are present afterwards (must be 0)")
def fail_landed(obs):
    """Attempts recorded as `fail` (an error reply, a refusal before sending, a failed connect:
    certainly not applied) whose key holds the written value when read back. Anything but 0
    means an outcome was mislabelled; the report names the error kinds."""
    return len(_history(obs).readback.fail_landed)


@metric("errors", "attempts", "write attempts that were not acknowledged")
def errors(obs):
    """Count of probe attempts with outcome `fail` (refused or error reply) or `info`
    (timeout, reset). After each, the probe pauses 10 ms before the next attempt."""
    return sum(1 for a in _history(obs).attempts if a.outcome in (FAIL, INFO))


@metric("unavailable_s", "s", "client-observed write outage: the longest any key waited for an ack after the fault")
def unavailable_s(obs):
    """From the completion of the probe's last acknowledged write before the fault step took
    effect to the completion of its first acknowledged write invoked after it (for a kill and
    restart this includes the server's restart and data load). In a cluster, the slowest
    shard's: per shard, the longest time from its last acknowledged write before a failed one
    to its next acknowledged write (the shards are from the slot map at the probe's start).
    None if writes never resumed."""
    span = unavailable_span(_history(obs), obs.marks)
    return round(span[1] - span[0], 3) if span else None


@metric("load_s", "s", "restart step to first acknowledged write (container start, load, Docker's port proxy)",
        needs=("start",))
def load_s(obs):
    """From the moment the restart step was invoked (container start) to the completion of the
    probe's first acknowledged write invoked after it: container start, dataset load, Docker's
    port proxy reconnecting to the new container, and the probe's 10 ms retry pause.
    server_load_s is the load alone, as Redis measured it."""
    if "restart" not in obs.marks:
        return None
    invoked, _ = obs.marks["restart"]
    after = [a.completed for a in _history(obs).oks() if a.invoked >= invoked]
    return round(after[0] - invoked, 3) if after else None


@metric("writes_per_s", "writes/s", "probe throughput before the fault")
def writes_per_s(obs):
    """Acknowledged writes per second from the probe's start to the fault step (or to the
    probe's stop when there is no fault): how hard the probe pressed on the server."""
    if obs.window is None or obs.window[0] is None:
        return None
    start = obs.window[0]
    end = obs.marks["fault"][0] if "fault" in obs.marks else obs.window[1]
    if end is None:
        return None
    count = sum(1 for a in _history(obs).oks() if a.completed <= end)
    return round(count / (end - start), 1) if end > start else None


@metric("final_writes_per_s", "writes/s", "probe throughput over its last second (0: it was not writing)")
def final_writes_per_s(obs):
    """Acknowledged writes per second over the last second before the probe was stopped. A run
    whose probe was not writing at its end did not measure recovery: it cannot pass."""
    stopped = _history(obs).stopped_at
    if stopped is None:
        return None
    count = sum(1 for a in _history(obs).oks() if stopped - FINAL_WINDOW_S <= a.completed <= stopped)
    return round(count / FINAL_WINDOW_S, 1)


@metric("lost_window_s", "s", "span of time over which the lost writes had been acknowledged")
def lost_window_s(obs):
    """From the invocation of the first lost write to the completion of the last one: how long
    the client was being told +OK for writes that did not survive (0 when nothing was lost)."""
    lost_set = set(_history(obs).readback.lost)
    if not lost_set:
        return 0.0
    lost_attempts = [a for a in _history(obs).oks() if a.seq in lost_set]
    return round(lost_attempts[-1].completed - lost_attempts[0].invoked, 3)
