"""Metrics: what the probe history and the servers tell, by name (the names are a contract).

Each metric's docstring says how it is measured; `lab run --explain` prints them.
A metric that does not apply to a run (no fault, no restart) is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from .probe import FAIL, INFO, OK, Attempt, ReadBack
from .sentinel_watch import ServerEvent


@dataclass(frozen=True)
class Observation:
    """Everything a run observed, on the run's monotonic clock."""

    attempts: list[Attempt]
    readback: ReadBack
    marks: dict[str, tuple[float, float]]      # "fault"/"restart": (step invoked, step returned)
    probe_window: tuple[float, float] | None   # probe start, probe stop
    server: dict = field(default_factory=dict)  # server-reported figures (INFO, logs)
    server_events: list[ServerEvent] = field(default_factory=list)  # Sentinel's events, as they arrived

    @cached_property
    def _oks(self) -> list[Attempt]:
        return [a for a in self.attempts if a.outcome == OK]

    def oks(self) -> list[Attempt]:
        """The acknowledged attempts, in order (computed once; every metric reads them)."""
        return self._oks


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    short: str                  # one line for tables
    compute: Callable[[Observation], float | int | None]

    @property
    def method(self) -> str:
        return " ".join((self.compute.__doc__ or "").split())


METRICS: dict[str, Metric] = {}


def metric(name: str, unit: str, short: str):
    def register(func):
        METRICS[name] = Metric(name=name, unit=unit, short=short, compute=func)
        return func
    return register


@metric("acked", "writes", "writes the server acknowledged (+OK) during the run")
def acked(obs: Observation):
    """Count of probe attempts whose reply was +OK."""
    return len(obs.oks())


@metric("lost", "writes", "acknowledged writes missing when read back after recovery")
def lost(obs: Observation):
    """After the last step, every acknowledged key is read back with MGET; a key that is
    absent or holds another value is lost."""
    return len(obs.readback.lost)


@metric("lost_pct", "%", "lost / acked * 100")
def lost_pct(obs: Observation):
    """lost / acked * 100 (0 when nothing was acknowledged)."""
    total = acked(obs)
    return round(100.0 * lost(obs) / total, 2) if total else 0.0


def _acked_before_fault(obs: Observation) -> list[int] | None:
    if "fault" not in obs.marks:
        return None
    _, effective = obs.marks["fault"]
    return [a.seq for a in obs.oks() if a.completed <= effective]


@metric("acked_before_fault", "writes", "writes acknowledged before the fault took effect")
def acked_before_fault(obs: Observation):
    """Count of +OK replies that completed before the fault step returned (a `docker kill`
    takes some 20-30 ms, during which the server still acknowledges writes)."""
    before = _acked_before_fault(obs)
    return None if before is None else len(before)


@metric("lost_before_fault_pct", "%", "share of the writes acknowledged before the fault that were lost")
def lost_before_fault_pct(obs: Observation):
    """Of the writes acknowledged before the fault took effect, the percentage missing at
    read-back. Writes made after recovery would dilute lost_pct; this one shows what the fault
    took from the data that existed when it struck."""
    before = _acked_before_fault(obs)
    if not before:
        return None
    lost_set = set(obs.readback.lost)
    return round(100.0 * sum(1 for seq in before if seq in lost_set) / len(before), 2)


@metric("indeterminate", "writes", "timed-out or reset writes that are present afterwards")
def indeterminate(obs: Observation):
    """Attempts with outcome `info` (sent, then timeout or reset: unknown) whose key holds
    the written value when read back."""
    return len(obs.readback.indeterminate_present)


@metric("errors", "attempts", "write attempts that were not acknowledged")
def errors(obs: Observation):
    """Count of probe attempts with outcome `fail` (refused or error reply) or `info`
    (timeout, reset). After each, the probe pauses 10 ms before the next attempt."""
    return sum(1 for a in obs.attempts if a.outcome in (FAIL, INFO))


def _outage(obs: Observation, mark: str) -> tuple[float, float] | None:
    """(last ack before the fault took effect, first ack invoked after it) as seen by the probe."""
    if mark not in obs.marks:
        return None
    _, effective = obs.marks[mark]
    oks = obs.oks()
    before = [a.completed for a in oks if a.completed <= effective]
    after = [a.completed for a in oks if a.invoked >= effective]
    if not before or not after:
        return None
    return before[-1], after[0]


@metric("unavailable_s", "s", "client-observed write outage: last ack before the fault to first ack after it")
def unavailable_s(obs: Observation):
    """From the completion of the probe's last acknowledged write before the fault step took
    effect to the completion of its first acknowledged write invoked after it (for a kill and
    restart this includes the server's restart and data load). None if writes never resumed."""
    outage = _outage(obs, "fault")
    return round(outage[1] - outage[0], 3) if outage else None


@metric("load_s", "s", "restart step to first acknowledged write (container start, load, Docker's port proxy)")
def load_s(obs: Observation):
    """From the moment the restart step was invoked (container start) to the completion of the
    probe's first acknowledged write invoked after it: container start, dataset load, Docker's
    port proxy reconnecting to the new container, and the probe's 10 ms retry pause.
    server_load_s is the load alone, as Redis measured it."""
    if "restart" not in obs.marks:
        return None
    invoked, _ = obs.marks["restart"]
    after = [a.completed for a in obs.oks() if a.invoked >= invoked]
    return round(after[0] - invoked, 3) if after else None


@metric("server_load_s", "s", "load time Redis reported in its log after the restart")
def server_load_s(obs: Observation):
    """The last 'DB loaded from ...: N seconds' line of the restarted node's log (Redis' own
    measurement of reading its RDB/AOF). None when it started with no data to load."""
    return obs.server.get("server_load_s")


@metric("dataset_keys", "keys", "keys in the dataset right before the fault (INFO keyspace)")
def dataset_keys(obs: Observation):
    """`keys` of db0 in INFO keyspace, read from the target node just before the fault step."""
    return obs.server.get("dataset_keys")


@metric("dataset_bytes", "bytes", "dataset memory right before the fault (INFO used_memory_dataset)")
def dataset_bytes(obs: Observation):
    """`used_memory_dataset` in INFO memory, read from the target just before the fault step."""
    return obs.server.get("dataset_bytes")


@metric("writes_per_s", "writes/s", "probe throughput before the fault")
def writes_per_s(obs: Observation):
    """Acknowledged writes per second from the probe's start to the fault step (or to the
    probe's stop when there is no fault): how hard the probe pressed on the server."""
    if obs.probe_window is None:
        return None
    start = obs.probe_window[0]
    end = obs.marks["fault"][0] if "fault" in obs.marks else obs.probe_window[1]
    count = sum(1 for a in obs.oks() if a.completed <= end)
    return round(count / (end - start), 1) if end > start else None


@metric("lost_window_s", "s", "span of time over which the lost writes had been acknowledged")
def lost_window_s(obs: Observation):
    """From the invocation of the first lost write to the completion of the last one: how long
    the client was being told +OK for writes that did not survive (0 when nothing was lost)."""
    lost_set = set(obs.readback.lost)
    if not lost_set:
        return 0.0
    lost_attempts = [a for a in obs.oks() if a.seq in lost_set]
    return round(lost_attempts[-1].completed - lost_attempts[0].invoked, 3)


def switches(obs: Observation) -> list[ServerEvent]:
    """+switch-master events, one per failover. Every Sentinel announces the same switch with
    the same text, so a message that repeats the previous switch's text is the same failover;
    a switch back and forth (A to B, B to A) counts twice."""
    found: list[ServerEvent] = []
    for event in obs.server_events:
        if event.name == "+switch-master" and (not found or event.detail != found[-1].detail):
            found.append(event)
    return found


@metric("failover_s", "s", "fault to Sentinel's first +switch-master (detection, election, promotion)")
def failover_s(obs: Observation):
    """From the fault step taking effect to the first +switch-master any Sentinel published
    (read from Sentinel's pub/sub channel of that name as the run went on): down-after-milliseconds,
    agreement (+odown), leader election and the promotion of a replica. None without Sentinel
    or without a failover."""
    if "fault" not in obs.marks:
        return None
    _, effective = obs.marks["fault"]
    after = [e.at for e in obs.server_events if e.name == "+switch-master" and e.at >= effective]
    return round(after[0] - effective, 3) if after else None


@metric("failovers", "count", "failovers Sentinel announced (distinct +switch-master); more than one is an anomaly")
def failovers(obs: Observation):
    """Distinct +switch-master messages published by the Sentinels during the run (each failover
    is announced by every Sentinel with the same text). One fault should cause one failover; a
    second one means Sentinel failed over again, which can lose acknowledged writes."""
    if not obs.server.get("sentinels_watched"):
        return None
    return len(switches(obs))


@metric("replicas_in_sync", "nodes", "data nodes replicating the final master with their link up")
def replicas_in_sync(obs: Observation):
    """At the end, the data nodes whose INFO replication says role:slave, master_host = the final
    master and master_link_status:up. After a failover and the old master's return, all of them."""
    return obs.server.get("replicas_in_sync")


@metric("max_node_kept", "writes", "most of the before-fault acknowledged writes any one data node still holds")
def max_node_kept(obs: Observation):
    """After recovery, the writes acknowledged before the fault are read back (MGET) from every data
    node that answers; this is the largest count found on one node. 0 means every copy was wiped."""
    return obs.server.get("max_node_kept")


_LOAD_LINE = re.compile(r"DB loaded from (?:disk|append only file): ([0-9.]+) seconds")


def parse_server_load_s(log: str) -> float | None:
    """The last load time a Redis log reports, in seconds."""
    found = _LOAD_LINE.findall(log)
    return float(found[-1]) if found else None


def compute_metrics(obs: Observation) -> dict[str, float | int | None]:
    return {name: m.compute(obs) for name, m in METRICS.items()}
