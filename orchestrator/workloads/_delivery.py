"""Delivery accounting of the `messages` workload: what was published, what the consumers
received, and what that makes lost, duplicated, redelivered and late. Pure functions on the
recorded histories (no Redis, no clock), so they are tested on synthetic histories.

Vocabulary (the metrics' contract):
- published: a PUBLISH or XADD the server answered (outcome ok): receivers count / entry ID;
- delivered: distinct message numbers some consumer recorded;
- lost: published, never delivered to any consumer. For a stream it is split by what the
  server reports at the end: `trimmed` (gone from the stream, older than its first entry:
  MAXLEN removed it before anyone read it), `gone` (not in the stream although newer than
  its first entry: the master that acknowledged it died before a replica had it), `unread`
  (still in the stream, never read); for Pub/Sub: `to_nobody` (PUBLISH answered 0 receivers)
  and `dropped` (sent to a subscriber that died or was disconnected before reading it);
- duplicates: deliveries beyond the first of each message;
- redelivered: deliveries taken over from the pending list (XAUTOCLAIM).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

OK, FAIL, INFO = "ok", "fail", "info"
PUBSUB, STREAM = "pubsub", "stream"


@dataclass(frozen=True)
class Publish:
    """One PUBLISH or XADD attempt of the producer (monotonic seconds)."""

    seq: int
    invoked: float
    completed: float
    outcome: str          # ok | fail | info
    error: str = ""       # short kind of error, "" when ok
    reply: str = ""       # PUBLISH: how many subscribers received it; XADD: the entry ID


@dataclass(frozen=True)
class Delivery:
    """One message as a consumer recorded it on receipt."""

    consumer: str
    seq: int
    at: float             # receipt, CLOCK_MONOTONIC (the tool's clock)
    entry_id: str = ""    # stream entry ID ("" for Pub/Sub)
    claimed: bool = False  # taken over from the pending list (XAUTOCLAIM)


@dataclass(frozen=True)
class ConsumerEvent:
    """A consumer's own event: start (pid), connected (port), lost (error), claimed (count,
    deleted), stop."""

    consumer: str
    at: float
    what: str
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StreamFacts:
    """What the master reported about the stream and the group after the drain (XINFO
    STREAM, XINFO GROUPS, and XRANGE of each undelivered entry)."""

    length: int = 0
    first_id: str | None = None           # first entry still in the stream
    last_generated_id: str = "0-0"
    entries_added: int = 0
    pending: int = 0                      # the group's pending entries (XPENDING count)
    lag: int | None = None                # entries not yet delivered to the group (None: unknown)
    last_delivered_id: str = "0-0"
    present: frozenset[str] = frozenset()  # of the undelivered entries' IDs, those still in the stream


@dataclass(frozen=True)
class MessageHistory:
    """What the messages workload observed."""

    transport: str
    publishes: list[Publish]
    deliveries: list[Delivery]
    consumer_events: list[ConsumerEvent] = field(default_factory=list)
    stream: StreamFacts | None = None
    started_at: float | None = None       # the producer's start and stop (monotonic)
    stopped_at: float | None = None
    drained_at: float | None = None       # when the consumers were stopped after catching up
    buffer_closes: list[tuple[float, str, int | None]] = field(default_factory=list)   # Pub/Sub: (time, node,
    #   bytes held) of each client a node closed for overcoming its output buffer limit (from its log)

    def accounting(self) -> "Accounting":
        """The delivery accounting (computed once)."""
        found = self.__dict__.get("_accounting")
        if found is None:
            found = account(self)
            object.__setattr__(self, "_accounting", found)
        return found


@dataclass(frozen=True)
class Accounting:
    published: int
    delivered: int
    deliveries: int
    lost: tuple[int, ...]                  # message numbers, ascending
    duplicates: int
    redelivered: int
    max_delivery_lag_s: float | None
    outage: tuple[float, float] | None     # the consumers' longest silence while messages were acknowledged
    fail_delivered: tuple[int, ...]        # recorded as refused, yet delivered: a mislabelled outcome
    reordered: int                         # first deliveries of a number below one the consumer had already seen
    unknown: int                           # deliveries of numbers never sent (must be 0)
    losses: dict[str, int]                 # why the lost ones were lost (see the module docstring)
    trimmed: int | None                    # streams only


def stream_id(text: str) -> tuple[int, int]:
    """`1700000000000-3` -> (1700000000000, 3), for ordering entry IDs."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def undelivered(publishes: list[Publish], deliveries: list[Delivery]) -> list[Publish]:
    """The published (ok) messages no consumer recorded, in order."""
    seen = {d.seq for d in deliveries}
    return [p for p in publishes if p.outcome == OK and p.seq not in seen]


def account(history: MessageHistory) -> Accounting:
    publishes = history.publishes
    deliveries = sorted(history.deliveries, key=lambda d: d.at)
    by_seq = {p.seq: p for p in publishes}
    first_at: dict[int, float] = {}
    for d in deliveries:
        if d.seq in by_seq and d.seq not in first_at:
            first_at[d.seq] = d.at
    known = [d for d in deliveries if d.seq in by_seq]
    lost = undelivered(publishes, known)
    lags = [first_at[seq] - by_seq[seq].invoked for seq in first_at if by_seq[seq].outcome != FAIL]
    losses, trimmed = _why_lost(history, lost)
    return Accounting(
        published=sum(1 for p in publishes if p.outcome == OK),
        delivered=len(first_at),
        deliveries=len(known),
        lost=tuple(p.seq for p in lost),
        duplicates=len(known) - len(first_at),
        redelivered=sum(1 for d in known if d.claimed),
        max_delivery_lag_s=round(max(lags), 3) if lags else None,
        outage=consumer_outage(publishes, deliveries, history.started_at, history.stopped_at),
        fail_delivered=tuple(sorted(seq for seq in first_at if by_seq[seq].outcome == FAIL)),
        reordered=reordered(deliveries),
        unknown=len(deliveries) - len(known),
        losses=losses,
        trimmed=trimmed,
    )


def _why_lost(history: MessageHistory, lost: list[Publish]) -> tuple[dict[str, int], int | None]:
    if history.transport == PUBSUB:
        to_nobody = sum(1 for p in lost if p.reply == "0")
        return {"to_nobody": to_nobody, "dropped": len(lost) - to_nobody}, None
    facts = history.stream or StreamFacts()
    first = stream_id(facts.first_id) if facts.first_id else None
    counts = Counter()
    for p in lost:
        if p.reply in facts.present:
            counts["unread"] += 1
        elif first is None or stream_id(p.reply) < first:
            counts["trimmed"] += 1
        else:
            counts["gone"] += 1
    losses = {"trimmed": counts["trimmed"], "gone": counts["gone"], "unread": counts["unread"]}
    return losses, counts["trimmed"]


def reordered(deliveries: list[Delivery]) -> int:
    """First deliveries (not claims) of a number lower than one the same consumer had received
    before: the consumer saw the messages out of publication order."""
    highest: dict[str, int] = {}
    seen: set[int] = set()
    count = 0
    for d in sorted(deliveries, key=lambda d: d.at):
        if not d.claimed and d.seq not in seen and d.seq < highest.get(d.consumer, 0):
            count += 1
        seen.add(d.seq)
        highest[d.consumer] = max(highest.get(d.consumer, 0), d.seq)
    return count


def consumer_outage(publishes: list[Publish], deliveries: list[Delivery], start: float | None,
                    end: float | None) -> tuple[float, float] | None:
    """The longest time an acknowledged message waited while no consumer received anything:
    for each span between two consecutive receipts (by any consumer; first deliveries and
    redeliveries alike), from the first acknowledgement to the producer inside it to the span's
    end. The producer's start and stop bound the first and last span. A producer that cannot
    publish (a failover) is not the consumers' outage: the span starts when it publishes
    again. None without acknowledged messages or a known producer window."""
    acked = sorted(p.completed for p in publishes if p.outcome == OK)
    if not acked or start is None or end is None:
        return None
    inside = sorted(d.at for d in deliveries if start < d.at < end)
    edges = [start] + inside + [end]
    best = None
    for a, b in zip(edges, edges[1:]):
        i = bisect.bisect_right(acked, a)
        if i < len(acked) and acked[i] < b and (best is None or b - acked[i] > best[1] - best[0]):
            best = (acked[i], b)
    return best


# ------------------------------------------------------------------ per consumer and per bucket

def consumer_rows(history: MessageHistory) -> list[dict]:
    """Per consumer name: its process lives, connections, deliveries, distinct messages,
    claims, and the longest gap between two of its receipts."""
    names = sorted({d.consumer for d in history.deliveries} | {e.consumer for e in history.consumer_events},
                   key=_natural)
    rows = []
    for name in names:
        mine = sorted((d for d in history.deliveries if d.consumer == name), key=lambda d: d.at)
        events = [e for e in history.consumer_events if e.consumer == name]
        gaps = [b.at - a.at for a, b in zip(mine, mine[1:])]
        rows.append({"consumer": name, "lives": sum(1 for e in events if e.what == "start"),
                     "connections": sum(1 for e in events if e.what == "connected"),
                     "received": len(mine), "distinct": len({d.seq for d in mine}),
                     "claimed": sum(1 for d in mine if d.claimed),
                     "longest_gap_s": round(max(gaps), 3) if gaps else None})
    return rows


def _natural(name: str) -> tuple:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (name.rstrip("0123456789"), int(digits) if digits else 0)


def bucket_counts(history: MessageHistory, t0: float, bucket_s: float) -> tuple[float, dict, dict] | None:
    """(start on the timeline's clock, producer counts, consumer counts) per `bucket_s`: the
    producer's attempts by outcome (published / failed / unknown), the consumers' first
    deliveries and duplicates, both on the same buckets. None without any attempt."""
    if not history.publishes:
        return None
    times = [p.completed for p in history.publishes] + [d.at for d in history.deliveries]
    start, end = min(times) - t0, max(times) - t0
    buckets = int((end - start) / bucket_s) + 1

    def index(at: float) -> int:
        return min(buckets - 1, max(0, int((at - t0 - start) / bucket_s)))

    produced = {"published": [0] * buckets, "failed": [0] * buckets, "unknown": [0] * buckets}
    name = {OK: "published", FAIL: "failed", INFO: "unknown"}
    for p in history.publishes:
        produced[name[p.outcome]][index(p.completed)] += 1
    consumed = {"delivered": [0] * buckets, "duplicates": [0] * buckets}
    seen: set[int] = set()
    for d in sorted(history.deliveries, key=lambda d: d.at):
        consumed["duplicates" if d.seq in seen else "delivered"][index(d.at)] += 1
        seen.add(d.seq)
    return start, produced, consumed
