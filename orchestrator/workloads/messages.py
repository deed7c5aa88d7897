"""The `messages` workload: a producer publishes numbered messages at a steady rate, consumers
in processes of their own record every one they receive, and the accounting says what was
lost, what arrived twice and how late (see `_delivery` for the vocabulary).

- transport `pubsub`: the producer PUBLISHes to a channel; each consumer SUBSCRIBEs to it
  (at-most-once: a subscriber that is not connected misses what is published meanwhile);
- transport `stream`: the producer XADDs to a stream (with `maxlen`: `MAXLEN ~ N`); each
  consumer reads with XREADGROUP in one consumer group, records, processes (`work`), then
  XACKs; it takes over entries pending longer than `min_idle` with XAUTOCLAIM, at its start
  and every half min-idle (at-least-once).

The producer is a thread of the tool writing through the kind's connection to the master (the
same way to the master as the writes probe: found directly, through the replicas' view or
through Sentinel, again after every error, so it follows a failover). Each attempt is recorded
with its invoke and completion time on the run's monotonic clock and one outcome: ok (Redis
replied: PUBLISH's receiver count or XADD's entry ID), fail (an error reply, or the connection
could not be made: not published), info (timeout or reset after sending: unknown). Consumers
are OS processes (`_consumer.py`, managed by `_consumers.py`) writing JSON lines; a fault can
SIGKILL or SIGSTOP one for real. When the workload stops, the producer stops first, the
consumers get a moment to catch up (the group has nothing pending or unread, or Pub/Sub
subscribers have gone quiet), then they are stopped and their files read. Every count comes
from what the consumers recorded and what the master reports (XINFO, XPENDING, XRANGE), never
from a counter the producer keeps.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from ..engine.topology import MASTER
from ..events import ClockOffset, Event, log_events
from ..spec import Bound, Param, parse_duration
from ..spec.registry import metric, register_workload
from ._consumers import ConsumerPool, program_argv
from ._delivery import (OK, PUBSUB, STREAM, MessageHistory, Publish, StreamFacts, bucket_counts, consumer_rows,
                        undelivered)
from .base import AttemptLoop, Workload, close_quietly
from .writes import fault_windows

RETRY_PAUSE_S = 0.01          # after a failed attempt: outage figures have this resolution
CATCH_UP_S = 0.05             # a producer that fell behind sends at most this much of its schedule at once
CONNECT_TIMEOUT_S = 10.0      # for the consumers to join before the producer starts
DRAIN_MAX_S = 2.0             # longest wait for the consumers to catch up (streams: plus min_idle)
MID_BATCH_WAIT_S = 2.0        # longest wait for a consumer to be working on a batch (kill_consumer mid_batch)
QUIET_S = 0.3                 # Pub/Sub: subscribers silent this long after the producer stopped have all there is
FINAL_WINDOW_S = 1.0
BUCKET_S = 0.1
READ_BATCH = 1000
BUFFER_CLOSE = re.compile(r"overcoming of output buffer limits")


def consumer_names(count: int) -> list[str]:
    return [f"c{i + 1}" for i in range(count)]


# ------------------------------------------------------------------ the producer

class Producer(AttemptLoop):
    """Sends `message(seq)` (a command's arguments) at `rate` per second through the raw
    connection of `connect()`'s writer, and records every attempt. A producer that fell behind
    (a slow reply, a busy host) catches up at most CATCH_UP_S of its schedule at once, so an
    outage is not followed by a burst."""

    what = "producer"
    died = "the producer died at message"

    def __init__(self, connect: Callable[[], object], classify: Callable[[BaseException, bool], tuple[str, str]],
                 message: Callable[[int], tuple], rate: float, clock: Callable[[], float] = time.monotonic):
        super().__init__(connect, classify, clock)
        self._message = message
        self._interval = 1.0 / rate
        self.published = 0

    @property
    def publishes(self) -> list[Publish]:
        return [Publish(*r) for r in self._records]

    def _loop(self) -> None:
        clock, record, stop = self._clock, self._records.append, self._stop
        writer, seq, due = None, 0, clock()
        while not stop.is_set():
            now = clock()
            if now < due:
                stop.wait(due - now)
                continue
            due = max(due, now - CATCH_UP_S) + self._interval
            seq += 1
            invoked = clock()
            if writer is None:
                try:
                    writer = self._connect()
                    self.connections.append((clock(), writer.endpoint))
                except Exception as exc:  # noqa: BLE001 - every exception is an attempt
                    record((seq, invoked, clock(), *self._classify(exc, True), ""))
                    stop.wait(RETRY_PAUSE_S)
                    continue
            try:
                conn = writer.connection
                conn.send_command(*self._message(seq))
                reply = conn.read_response()
                record((seq, invoked, clock(), OK, "", _text(reply)))
                self.published += 1
                continue
            except Exception as exc:  # noqa: BLE001 - every exception is an attempt
                outcome, kind = self._classify(exc, False)
                record((seq, invoked, clock(), outcome, kind, ""))
                close_quietly(writer)
                writer = None
            stop.wait(RETRY_PAUSE_S)
        if writer is not None:
            close_quietly(writer)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ------------------------------------------------------------------ the workload

@register_workload
class Messages(Workload):
    name = "messages"
    history = "messages"
    summary = ("a producer publishes numbered messages at a steady rate (PUBLISH or XADD); consumers in processes "
               "of their own record each one they receive")
    options = (
        Param("transport", "choice", default=STREAM, choices=(PUBSUB, STREAM)),
        Param("rate", "count", default=1000, most=20000),          # messages per second
        Param("size", "count", default=64, most=1 << 20),           # payload bytes per message
        Param("consumers", "count", default=1, most=8),             # named c1, c2, ...
        Param("key", "word", default="messages"),                   # the channel or the stream
        Param("group", "word", default="workers"),                  # streams: the consumer group
        Param("min_idle", "duration", default="1s"),                # streams: XAUTOCLAIM's min-idle-time
        Param("maxlen", "natural", default=0),                      # streams: XADD MAXLEN ~ N (0: no trim)
        Param("batch", "count", default=100, most=10000),           # messages a consumer takes at once
        Param("work", "duration", default="0ms"),                   # per batch, between receipt and XACK
    )
    # A run is measured only if the producer was still publishing at its end, the consumers
    # were still receiving, and no message recorded as refused reached a consumer.
    invariants = {"final_published_per_s": Bound(min=1), "final_delivered_per_s": Bound(min=1),
                  "fail_delivered": Bound(max=0)}

    @classmethod
    def check_options(cls, options, kind, params):
        if "slots" in kind.capabilities:
            return ("transport", f"the messages workload talks to one master; a {kind.name} lab spreads keys and "
                                 f"channels over shards (use kind single, replication or sentinel)")
        if options["transport"] == PUBSUB and options["maxlen"]:
            return ("maxlen", "MAXLEN trims a stream; a Pub/Sub channel keeps nothing to trim")
        if options["transport"] == STREAM and parse_duration(options["min_idle"]) < 0.001:
            return ("min_idle", "XAUTOCLAIM's min-idle-time is in whole milliseconds, at least 1ms")
        return None

    @classmethod
    def check_step(cls, action, args, options):
        name = args.get("consumer")
        known = consumer_names(options["consumers"])
        if name is not None and name not in known:
            return ("consumer", f"no consumer {name!r}: this scenario's messages workload runs {', '.join(known)} "
                                f"(consumers: {options['consumers']})")
        if args.get("mid_batch") and parse_duration(options["work"]) <= 0:
            return ("mid_batch", "needs the workload's `work` > 0: a consumer without work acknowledges each batch "
                                 "the moment it has recorded it")
        return None

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        merged = {p.name: p.default for p in self.options}
        merged.update(options)
        self.transport = merged["transport"]
        self.rate, self.size, self.key, self.group = merged["rate"], merged["size"], merged["key"], merged["group"]
        self.names = consumer_names(merged["consumers"])
        self.min_idle_ms = max(1, round(parse_duration(merged["min_idle"]) * 1000))
        self.maxlen = merged["maxlen"]
        self.batch = merged["batch"]
        self.work_ms = parse_duration(merged["work"]) * 1000
        self.producer: Producer | None = None
        self.pool: ConsumerPool | None = None
        self.directory: Path | None = None
        self.via = ""
        self._started = self._stopped = False
        self.drained_at: float | None = None
        self.records = ([], [])

    # ------------------------------------------------------------ while the run goes on

    def start(self) -> None:
        ctx = self.ctx
        self._started = True
        self.directory = Path(tempfile.mkdtemp(prefix=f"{ctx.topo.project}-messages-"))
        writes = ctx.kind.writes(ctx, 0, 100)
        self.via = writes.via
        if self.transport == STREAM:
            self._create_group(writes.connect)
        self.pool = ConsumerPool(self.directory, self._argv, lambda: ctx.kind.client_env(ctx), clock=ctx.clock)
        for name in self.names:
            self.pool.start(name)
        self.pool.wait_connected(self.names, CONNECT_TIMEOUT_S)
        self.producer = Producer(writes.connect, ctx.nodes.classify, self._message, self.rate, clock=ctx.clock)
        self.producer.start()

    def _argv(self, name: str, out: Path) -> list[str]:
        return program_argv(name, out, self.transport, self.key, self.group, self.min_idle_ms, self.batch,
                            self.work_ms)

    def _create_group(self, connect) -> None:
        """XGROUP CREATE <stream> <group> $ MKSTREAM on the master, before anything is published."""
        writer = connect()
        try:
            writer.connection.send_command("XGROUP", "CREATE", self.key, self.group, "$", "MKSTREAM")
            writer.connection.read_response()
        finally:
            close_quietly(writer)

    def _message(self, seq: int) -> tuple:
        if self.transport == PUBSUB:
            prefix = f"{seq} "
            return ("PUBLISH", self.key, prefix + "x" * max(0, self.size - len(prefix)))
        trim = ("MAXLEN", "~", self.maxlen) if self.maxlen else ()
        return ("XADD", self.key, *trim, "*", "n", seq, "p", "x" * self.size)

    def kill_consumer(self, name: str, mid_batch: bool = False) -> None:
        """SIGKILL consumer `name`; with `mid_batch`, first wait (at most MID_BATCH_WAIT_S) until
        it has recorded a batch it is still working on, so it dies between receipt and XACK."""
        if mid_batch:
            age = self.pool.wait_mid_batch(name, self.work_ms / 1000.0, MID_BATCH_WAIT_S)
        self.pool.kill(name)
        if mid_batch:
            self.ctx.event(f"consumer {name} killed {age * 1000:.0f} ms into its {self.work_ms:g} ms of work on the "
                           f"batch it had just recorded", "tool")

    def start_consumer(self, name: str) -> None:
        self.pool.start(name)

    def pause_consumer(self, name: str) -> None:
        self.pool.pause(name)

    def resume_consumer(self, name: str) -> None:
        self.pool.resume(name)

    def stop(self) -> None:
        """Stop the producer, let the consumers catch up (bounded), stop them and read what they
        recorded. Safe to call on any path, after a partial start too; never leaves a consumer."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.producer is not None:
                self.producer.stop()
            if self.pool is not None:
                self.pool.resume_all()
                if self.producer is not None and self.producer.failure is None:
                    self._drain()
                self.drained_at = self.ctx.clock()
                self.pool.terminate_all()
                self.records = self.pool.records()
        finally:
            if self.pool is not None:
                self.pool.kill_all()
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)

    def _drain(self) -> None:
        """Until the consumers have everything there is: the group has nothing pending and
        nothing unread (streams; claims of a dead consumer's entries wait for min_idle), or no
        subscriber has recorded anything for QUIET_S (Pub/Sub). At most DRAIN_MAX_S (+ min_idle)."""
        clock = self.ctx.clock
        limit = DRAIN_MAX_S + (self.min_idle_ms / 1000.0 if self.transport == STREAM else 0.0)
        deadline = clock() + limit
        sizes, quiet_since = None, clock()
        while clock() < deadline:
            now_sizes = self.pool.sizes()
            if now_sizes != sizes:
                sizes, quiet_since = now_sizes, clock()
            if self.transport == PUBSUB and clock() - quiet_since >= QUIET_S:
                return
            if self.transport == STREAM and self._group_caught_up():
                return
            time.sleep(0.05)

    def _group_caught_up(self) -> bool:
        """The group has nothing pending and has delivered the stream's last entry (XINFO GROUPS
        and XINFO STREAM on the master; XINFO GROUPS' `lag` is not used: after MAXLEN trims,
        Redis 7.0 may report it as unknown or stale)."""
        ctx = self.ctx
        node = ctx.kind.resolve(ctx, MASTER)
        if node is None:
            return False
        client = ctx.nodes.admin_client(node, timeout_s=0.5)
        try:
            group = next((g for g in client.xinfo_groups(self.key) if g.get("name") == self.group), None)
            if group is None or group.get("pending"):
                return False
            return group.get("last-delivered-id") == client.xinfo_stream(self.key).get("last-generated-id")
        except ctx.nodes.ERRORS:
            return False
        finally:
            client.close()

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    @property
    def failure(self) -> str | None:
        if self.producer is not None and self.producer.failure:
            return self.producer.failure
        if self.pool is not None:
            crashed = self.pool.exited_on_their_own()
            if crashed:
                life = crashed[0]
                return (f"consumer {life.name} (pid {life.process.pid}) exited on its own with code "
                        f"{life.process.returncode}: {life.stderr_tail() or 'nothing on stderr'}")
        return None

    @property
    def window(self):
        if self.producer is None:
            return None
        return self.producer.started_at, self.producer.stopped_at

    @property
    def endpoint(self) -> int | None:
        return self.producer.endpoint if self.producer is not None else None

    @property
    def acked_so_far(self) -> int | None:
        return self.producer.published if self.producer is not None else None

    def describe_start(self) -> str:
        if self.transport == PUBSUB:
            how = f"PUBLISH to channel {self.key!r}; {len(self.names)} subscriber(s) {', '.join(self.names)}"
        else:
            trim = f" MAXLEN ~ {self.maxlen}" if self.maxlen else ""
            how = (f"XADD{trim} to stream {self.key!r}; {len(self.names)} consumer(s) {', '.join(self.names)} in "
                   f"group {self.group!r} (XAUTOCLAIM after {self.min_idle_ms} ms idle)")
        work = f", {self.work_ms:g} ms of work per batch" if self.work_ms else ""
        return f"messages workload starts: {self.rate} msg/s of {self.size} B, {how}{work}, {self.via}"

    def describe_stop(self) -> str:
        return "messages workload stopped (producer stopped, consumers caught up and stopped)"

    # ------------------------------------------------------------ afterwards

    def observe(self) -> MessageHistory:
        publishes = self.producer.publishes if self.producer is not None else []
        deliveries, events = self.records
        stream = self._stream_facts(publishes, deliveries) if self.transport == STREAM else None
        history = MessageHistory(transport=self.transport, publishes=publishes, deliveries=deliveries,
                                 consumer_events=events, stream=stream,
                                 started_at=self.producer.started_at if self.producer else None,
                                 stopped_at=self.producer.stopped_at if self.producer else None,
                                 drained_at=self.drained_at,
                                 buffer_closes=self._buffer_closes() if self.transport == PUBSUB else [])
        return history

    def _stream_facts(self, publishes, deliveries) -> StreamFacts:
        """XINFO STREAM and XINFO GROUPS on the master after recovery, and which of the
        undelivered entries are still in the stream (XRANGE id id)."""
        client = self.ctx.kind.reader(self.ctx)
        try:
            try:
                info = client.xinfo_stream(self.key)
            except self.ctx.nodes.ERRORS:
                return StreamFacts()         # no stream at all: the master lost it
            group = next((g for g in client.xinfo_groups(self.key) if g.get("name") == self.group), {})
            missing = [p.reply for p in undelivered(publishes, deliveries) if p.reply]
            present = set()
            for start in range(0, len(missing), READ_BATCH):
                chunk = missing[start:start + READ_BATCH]
                pipe = client.pipeline(transaction=False)
                for entry in chunk:
                    pipe.xrange(self.key, entry, entry, count=1)
                present.update(entry for entry, found in zip(chunk, pipe.execute()) if found)
            first = info.get("first-entry")
            return StreamFacts(length=int(info.get("length", 0)), first_id=first[0] if first else None,
                               last_generated_id=str(info.get("last-generated-id", "0-0")),
                               entries_added=int(info.get("entries-added") or 0),
                               pending=int(group.get("pending", 0)), lag=group.get("lag"),
                               last_delivered_id=str(group.get("last-delivered-id", "0-0")),
                               present=frozenset(present))
        finally:
            client.close()

    def _buffer_closes(self) -> list[tuple[float, str, int | None]]:
        """(time, node, omem) of each client a data node closed for overcoming its output buffer
        limit, from the nodes' logs (Docker's timestamps, moved onto the monotonic clock)."""
        ctx = self.ctx
        try:
            found = log_events(ctx.runtime, ctx.topo.data_nodes, ((BUFFER_CLOSE, "output buffer limit"),),
                               ClockOffset().offset, since=ctx.t0)
        except Exception:  # noqa: BLE001 - the logs only add a line to the timeline
            return []
        closes = []
        for event in found:
            omem = re.search(r"omem=(\d+)", event.detail)
            closes.append((event.at, event.source, int(omem.group(1)) if omem else None))
        return closes

    def client_events(self, history: MessageHistory) -> list[Event]:
        t0, ctx = self.ctx.t0, self.ctx
        remap = ctx.nodes.Remap(ctx.topo)
        found = []
        for e in history.consumer_events:
            if e.what == "start":
                found.append(Event(e.at - t0, f"consumer {e.consumer} process running (pid {e.detail.get('pid')})",
                                   "client"))
            elif e.what == "connected":
                node = remap.by_host_port(e.detail.get("port", 0))
                where = node.name if node is not None else f"port {e.detail.get('port')}"
                what = (f"subscribed to {self.key!r}" if self.transport == PUBSUB
                        else f"reading group {self.group!r}")
                found.append(Event(e.at - t0, f"consumer {e.consumer} connected to {where}, {what}", "client"))
            elif e.what == "lost":
                found.append(Event(e.at - t0, f"consumer {e.consumer} lost its connection: {e.detail.get('error')}",
                                   "client"))
            elif e.what == "claimed":
                deleted = e.detail.get("deleted") or 0
                found.append(Event(e.at - t0, f"consumer {e.consumer} claimed {e.detail.get('count')} pending entries "
                                              f"(XAUTOCLAIM)" + (f"; {deleted} had been trimmed" if deleted else ""),
                                   "client"))
        for at, node, omem in history.buffer_closes:
            size = f" holding {omem} bytes" if omem is not None else ""
            found.append(Event(at - t0, f"{node}: closed a subscriber{size} for overcoming its output buffer limit "
                                        f"(client-output-buffer-limit pubsub)", "server"))
        found += self._around_fault(history)
        found.append(Event((history.drained_at or history.stopped_at or ctx.clock()) - t0,
                           summary_line(history), "client"))
        producer = self.producer.connections if self.producer is not None else []
        return found + ctx.kind.connection_events(ctx, producer)

    def _around_fault(self, history: MessageHistory) -> list[Event]:
        """The producer's and the consumers' view around the fault."""
        marks, t0 = self.ctx.marks, self.ctx.t0
        if "fault" not in marks:
            return []
        effective = marks["fault"][1]
        oks = [p for p in history.publishes if p.outcome == OK]
        found = []
        failed = [p for p in history.publishes if p.outcome != OK and p.invoked >= effective]
        if failed:
            found.append(Event(failed[0].completed - t0, f"first failed publish after the fault: {failed[0].error}",
                               "client"))
            resumed = next((p for p in oks if p.invoked >= failed[0].invoked), None)
            if resumed is not None:
                found.append(Event(resumed.completed - t0, f"producer publishes again (message {resumed.seq})",
                                   "client"))
        deliveries = sorted(history.deliveries, key=lambda d: d.at)
        before = [d for d in deliveries if d.at <= effective]
        if before:
            found.append(Event(before[-1].at - t0, f"last receipt before the fault (message {before[-1].seq}, "
                                                   f"{before[-1].consumer})", "client"))
        later = [d for d in deliveries if d.at > effective]
        span = history.accounting().outage
        if span is not None and span[0] >= effective - 1e-9:
            first = next((d for d in later if d.at >= span[1] - 1e-9), None)
            if first is not None:
                found.append(Event(first.at - t0, f"consumers receive again after {span[1] - span[0]:.3f} s of "
                                                  f"silence (message {first.seq}, {first.consumer})", "client"))
        return found

    def report_fields(self, history: MessageHistory) -> dict:
        acc = history.accounting()
        by_seq = {p.seq: p for p in history.publishes}
        mislabelled = {}
        for seq in acc.fail_delivered:
            mislabelled[by_seq[seq].error] = mislabelled.get(by_seq[seq].error, 0) + 1
        errors = {}
        for p in history.publishes:
            if p.outcome != OK:
                errors[p.error] = errors.get(p.error, 0) + 1
        return {"error_kinds": errors, "mislabelled": mislabelled, "shards": [],
                "timeline": timeline(history, self.ctx.t0, self.ctx.events),
                "consumers": consumer_rows(history), "losses": acc.losses}


def summary_line(history: MessageHistory) -> str:
    """The accounting in one line, for the timeline."""
    acc = history.accounting()
    why = ", ".join(f"{n} {_LOSS_WORDS[k]}" for k, n in acc.losses.items() if n)
    line = (f"accounting: {acc.published} published, {acc.delivered} delivered, {len(acc.lost)} lost"
            + (f" ({why})" if why else "") + f", {acc.duplicates} duplicates, {acc.redelivered} redelivered")
    if history.stream is not None:
        line += f"; stream length {history.stream.length}, {history.stream.pending} pending at the end"
    return line


_LOSS_WORDS = {"to_nobody": "published while no subscriber was connected (PUBLISH said 0)",
               "dropped": "sent to a subscriber that died or was cut off before reading them",
               "trimmed": "trimmed by MAXLEN before anyone read them",
               "gone": "missing from the stream after a failover",
               "unread": "still in the stream, never read"}


# ------------------------------------------------------------------ charts

_CONSUMER_OPENS = {"kill_consumer": ("start_consumer",), "pause_consumer": ("resume_consumer",)}


def consumer_windows(events: list[Event]) -> list[dict]:
    """From each consumer fault step to the step that undoes it for the same consumer (or the
    final heal; None: never)."""
    windows = []
    for i, event in enumerate(events):
        action, _, rest = event.what.partition(" ")
        name = rest.split(" ", 1)[0]
        if event.source != "tool" or action not in _CONSUMER_OPENS:
            continue
        closing = next((later for later in events[i + 1:] if later.source == "tool"
                        and (later.what in (f"{c} {name}" for c in _CONSUMER_OPENS[action])
                             or later.what == f"healed consumer {name}")), None)
        windows.append({"from": round(event.t, 3), "to": round(closing.t, 3) if closing else None,
                        "what": f"{action} {name}"})
    return windows


def timeline(history: MessageHistory, t0: float, events: list[Event]) -> dict:
    """What a chart of the run needs, on the timeline's clock (seconds since the lab was ready):
    the producer's attempts per BUCKET_S by outcome and the consumers' first deliveries and
    duplicates on the same buckets, fault-to-heal windows (nodes and consumers), the consumers'
    longest silence (consumer_outage_s) and the publish-ack time of every lost message."""
    counted = bucket_counts(history, t0, BUCKET_S)
    if counted is None:
        return {}
    start, produced, consumed = counted
    acc = history.accounting()
    lost = set(acc.lost)
    span = acc.outage
    publishes = history.publishes
    return {
        "bucket_s": BUCKET_S,
        "series": [{"name": "producer", "start_t": round(start, 3), "counts": produced},
                   {"name": "consumers", "start_t": round(start, 3), "counts": consumed}],
        "windows": fault_windows(events) + consumer_windows(events),
        "outage": ({"from": round(span[0] - t0, 3), "to": round(span[1] - t0, 3), "metric": "consumer_outage_s"}
                   if span else None),
        "lost_acks_t": [round(p.completed - t0, 3) for p in publishes if p.seq in lost],
        "probe": {"from": round(publishes[0].invoked - t0, 3),
                  "to": round((history.stopped_at or publishes[-1].completed) - t0, 3)},
    }


# ------------------------------------------------------------------ metrics

def _history(obs) -> MessageHistory | None:
    """The run's message history, or None for a run of another workload."""
    return obs.history if isinstance(obs.history, MessageHistory) else None


def _accounting(obs):
    history = _history(obs)
    return history.accounting() if history is not None else None


@metric("published", "messages", "messages the server acknowledged (PUBLISH or XADD replied)", workload="messages")
def published(obs):
    """Count of the producer's attempts that got a reply: PUBLISH's receiver count (0 included:
    Redis took the message even if nobody was subscribed) or XADD's entry ID."""
    acc = _accounting(obs)
    return None if acc is None else acc.published


@metric("delivered", "messages", "distinct messages some consumer received", workload="messages")
def delivered(obs):
    """Distinct message numbers in the consumers' own records: each consumer process writes a
    line for every message as it receives it (one write per batch, before XACK), and the
    tool reads those files after the run."""
    acc = _accounting(obs)
    return None if acc is None else acc.delivered


@metric("lost_messages", "messages", "acknowledged by Redis, never delivered to any consumer", workload="messages")
def lost_messages(obs):
    """Published messages (ok) whose number is in no consumer's records after the consumers
    were given time to catch up (streams: until the group has nothing pending or unread,
    or 2 s + min_idle; Pub/Sub: until the subscribers are silent for 0.3 s, or 2 s). The
    timeline's accounting line says why: PUBLISH answered 0 receivers, or the subscriber
    died or was cut off holding it; for a stream, trimmed by MAXLEN, missing after a
    failover, or never read."""
    acc = _accounting(obs)
    return None if acc is None else len(acc.lost)


@metric("duplicates", "messages", "deliveries beyond the first of each message", workload="messages")
def duplicates(obs):
    """Deliveries recorded by the consumers minus distinct messages delivered: a message a
    consumer recorded but did not acknowledge before it died, then processed again after a
    claim, counts once here."""
    acc = _accounting(obs)
    return None if acc is None else acc.duplicates


@metric("redelivered", "messages", "deliveries taken over from the pending list (XAUTOCLAIM)", workload="messages")
def redelivered(obs):
    """Deliveries a consumer recorded from XAUTOCLAIM's reply (entries pending longer than
    min_idle, its own from an earlier life or another consumer's), whether or not the
    message had been recorded before. Always 0 for Pub/Sub, which keeps nothing."""
    acc = _accounting(obs)
    return None if acc is None else acc.redelivered


@metric("max_delivery_lag_s", "s", "longest wait of a message from publish to its first receipt", workload="messages")
def max_delivery_lag_s(obs):
    """Over the delivered messages: the consumer's receipt time (CLOCK_MONOTONIC in the
    consumer process, the same clock as the tool's) of the first delivery minus the moment the
    producer invoked PUBLISH/XADD. Includes the consumers' `work` per batch and, for claimed
    entries, min_idle."""
    acc = _accounting(obs)
    return None if acc is None else acc.max_delivery_lag_s


@metric("consumer_outage_s", "s", "longest time an acknowledged message waited while no consumer received anything",
        workload="messages")
def consumer_outage_s(obs):
    """For each span between two consecutive receipts (any consumer, first deliveries and
    redeliveries alike): from the first message acknowledged to the producer inside it to the
    span's end; the longest such wait. The producer's start and stop bound the first and last
    span. A killed, paused or disconnected consumer shows here; a producer that cannot
    publish (a failover) does not, until it publishes again. With healthy consumers it is
    about 1/rate plus `work`."""
    acc = _accounting(obs)
    if acc is None or acc.outage is None:
        return None
    return round(acc.outage[1] - acc.outage[0], 3)


@metric("pending_at_end", "entries", "stream entries delivered but never acknowledged, at the end (XPENDING)",
        workload="messages")
def pending_at_end(obs):
    """The group's `pending` in XINFO GROUPS on the master after the consumers caught up and
    were stopped (the count XPENDING reports). None for Pub/Sub."""
    history = _history(obs)
    if history is None or history.stream is None:
        return None
    return history.stream.pending


@metric("trimmed", "messages", "stream entries removed by MAXLEN before any consumer read them", workload="messages")
def trimmed(obs):
    """Lost messages (published, in no consumer's records) whose entry ID is older than the
    stream's first entry at the end (XINFO STREAM on the master) and that XRANGE no longer
    finds: MAXLEN ~ N removed them from the head before the group delivered them. None for
    Pub/Sub."""
    acc = _accounting(obs)
    return None if acc is None else acc.trimmed


@metric("published_per_s", "messages/s", "producer's acknowledged rate before the fault", workload="messages")
def published_per_s(obs):
    """Acknowledged PUBLISH/XADD per second from the producer's start to the fault step (or to
    its stop when there is no fault): the rate the lab file asked for, as the server took it."""
    history = _history(obs)
    if history is None or history.started_at is None:
        return None
    end = obs.marks["fault"][0] if "fault" in obs.marks else history.stopped_at
    if end is None or end <= history.started_at:
        return None
    count = sum(1 for p in history.publishes if p.outcome == OK and p.completed <= end)
    return round(count / (end - history.started_at), 1)


@metric("final_published_per_s", "messages/s", "producer's acknowledged rate over its last second (0: not publishing)",
        workload="messages")
def final_published_per_s(obs):
    """Acknowledged PUBLISH/XADD per second over the last second before the producer was
    stopped. A run whose producer was not publishing at its end did not measure recovery."""
    return _final_rate(obs, lambda history: (p.completed for p in history.publishes if p.outcome == OK))


@metric("final_delivered_per_s", "messages/s", "consumers' receipts over the producer's last second (0: not receiving)",
        workload="messages")
def final_delivered_per_s(obs):
    """Deliveries the consumers recorded per second over the last second before the producer was
    stopped. A run whose consumers were not receiving at its end did not measure recovery."""
    return _final_rate(obs, lambda history: (d.at for d in history.deliveries))


def _final_rate(obs, times: Callable[[MessageHistory], Iterable[float]]) -> float | None:
    """Per second, the `times` of the history within the last FINAL_WINDOW_S before the
    producer was stopped; None if it never stopped."""
    history = _history(obs)
    if history is None or history.stopped_at is None:
        return None
    end = history.stopped_at
    return round(sum(1 for t in times(history) if end - FINAL_WINDOW_S <= t <= end) / FINAL_WINDOW_S, 1)


@metric("fail_delivered", "messages", "messages recorded as refused that a consumer received (must be 0)",
        workload="messages")
def fail_delivered(obs):
    """Attempts recorded as `fail` (an error reply or a failed connect: certainly not
    published) whose number is in a consumer's records. Anything but 0 means an outcome was
    mislabelled; the report names the error kinds."""
    acc = _accounting(obs)
    return None if acc is None else len(acc.fail_delivered)
