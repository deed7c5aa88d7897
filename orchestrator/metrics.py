"""Metrics: what the probe history and the servers tell, by name (the names are a contract).

Each metric's docstring says how it is measured; `lab run --explain` prints them.
A metric that does not apply to a run (no fault, no restart) is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from .cluster import shard_of_key
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


def server_metric(name: str, unit: str, short: str, method: str):
    """Register a figure the runner read from the servers (INFO, logs, CLUSTER NODES) into
    `Observation.server[name]`; `method` says how, for `lab run --explain`."""
    def compute(obs: Observation):
        return obs.server.get(name)
    compute.__name__, compute.__doc__ = name, method
    return metric(name, unit, short)(compute)


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


server_load_s = server_metric(
    "server_load_s", "s", "load time Redis reported in its log after the restart",
    """The last 'DB loaded from ...: N seconds' line of the restarted node's log (Redis' own
    measurement of reading its RDB/AOF). None when it started with no data to load.""")


dataset_keys = server_metric(
    "dataset_keys", "keys", "keys in the dataset right before the fault (INFO keyspace)",
    """`keys` of db0 in INFO keyspace, read from the target node just before the fault step.""")


dataset_bytes = server_metric(
    "dataset_bytes", "bytes", "dataset memory right before the fault (INFO used_memory_dataset)",
    """`used_memory_dataset` in INFO memory, read from the target just before the fault step.""")


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


NEW_MASTER_EVENTS = ("+switch-master", "failover-won")   # Sentinel's announcement; a cluster replica's log


def switches(obs: Observation) -> list[ServerEvent]:
    """One event per failover. Every Sentinel announces the same +switch-master with the same
    text, so a message repeating the previous switch's text is the same failover (a switch back
    and forth counts twice). In a cluster the replica that won the election logs it once."""
    found: list[ServerEvent] = []
    for event in obs.server_events:
        if event.name not in NEW_MASTER_EVENTS:
            continue
        key = (event.name, event.detail) if event.name == "+switch-master" else None
        if key is None or not found or key != (found[-1].name, found[-1].detail):
            found.append(event)
    return found


@metric("failover_s", "s", "fault to the new master's announcement (Sentinel's +switch-master, or a cluster "
                           "replica winning its election)")
def failover_s(obs: Observation):
    """From the fault step taking effect to the first +switch-master any Sentinel published
    (read from Sentinel's pub/sub channel as the run went on), or in a cluster to the first
    "Failover election won" a replica logged (Docker's timestamp of that log line): detection
    (down-after-milliseconds / cluster-node-timeout), agreement, election and promotion. None
    without a failover."""
    if "fault" not in obs.marks:
        return None
    _, effective = obs.marks["fault"]
    after = [e.at for e in obs.server_events if e.name in NEW_MASTER_EVENTS and e.at >= effective]
    return round(after[0] - effective, 3) if after else None


@metric("failovers", "count", "failovers announced (distinct +switch-master, or elections won); more than one "
                              "for one fault is an anomaly")
def failovers(obs: Observation):
    """Sentinel: distinct +switch-master messages during the run (each failover is announced by every
    Sentinel with the same text). Cluster: "Failover election won" lines in the nodes' logs. One
    fault should cause one failover; a second one can lose acknowledged writes."""
    if not obs.server.get("failover_watch"):
        return None
    return len(switches(obs))


replicas_in_sync = server_metric(
    "replicas_in_sync", "nodes", "data nodes replicating the final master with their link up",
    """At the end, the data nodes whose INFO replication says role:slave, master_host = the final
    master and master_link_status:up. After a failover and the old master's return, all of them.""")


max_node_kept = server_metric(
    "max_node_kept", "writes", "most of the before-fault acknowledged writes any one data node still holds",
    """After recovery, the writes acknowledged before the fault are read back (MGET) from every data
    node that answers; this is the largest count found on one node. 0 means every copy was wiped.""")


def _shard_gaps(obs: Observation) -> dict[int, float] | None:
    """Per shard (index in the slot order at probe start): its longest outage after the fault
    took effect, from its last acknowledged write before a failed one to its next acknowledged
    write (or to the probe's stop if none came). Gaps without a failed write of that shard do
    not count: the one-connection-at-a-time probe was then busy with other shards' keys."""
    layout = obs.server.get("shards_at_start")
    if not layout or "fault" not in obs.marks or obs.probe_window is None:
        return None
    _, effective = obs.marks["fault"]
    last_ok: dict[int, float] = {}
    failed: set[int] = set()
    gaps: dict[int, float] = {i: 0.0 for i in range(len(layout))}
    for attempt in obs.attempts:
        shard = shard_of_key(f"probe:{attempt.seq}", layout)
        if shard is None:
            continue
        if attempt.outcome != OK:
            failed.add(shard)
            continue
        if shard in failed and shard in last_ok and attempt.completed > effective:
            gaps[shard] = max(gaps[shard], attempt.completed - last_ok[shard])
        failed.discard(shard)
        last_ok[shard] = attempt.completed
    stopped = obs.probe_window[1]
    for shard in failed:
        if shard in last_ok and stopped is not None:
            gaps[shard] = max(gaps[shard], stopped - last_ok[shard])
    return gaps


def _affected_shard(obs: Observation) -> int | None:
    layout = obs.server.get("shards_at_start") or []
    target = obs.server.get("fault_target")
    return next((i for i, shard in enumerate(layout) if shard.master == target or target in shard.replicas), None)


@metric("shard_unavailable_s", "s", "cluster: longest wait for an ack on the faulted node's shard")
def shard_unavailable_s(obs: Observation):
    """In a cluster, the keys of the shard whose node was faulted (by the slot map at probe start):
    the longest time from its last acknowledged write before a failed one to its next
    acknowledged write, after the fault took effect. The probe writes keys spread over all
    slots, one at a time, so each shard's figure has the resolution of its write rate."""
    gaps, affected = _shard_gaps(obs), _affected_shard(obs)
    return None if gaps is None or affected is None else round(gaps[affected], 3)


@metric("other_shards_unavailable_s", "s", "cluster: the same for the other shards (the longest of them)")
def other_shards_unavailable_s(obs: Observation):
    """Like shard_unavailable_s, for every other shard; the largest (0 if none of their writes
    failed). With cluster-require-full-coverage yes they refuse writes (CLUSTERDOWN) while any
    slot is uncovered."""
    gaps, affected = _shard_gaps(obs), _affected_shard(obs)
    if gaps is None:
        return None
    others = [gap for i, gap in gaps.items() if i != affected]
    return round(max(others), 3) if others else None


@metric("clusterdown_errors", "attempts", "cluster: writes refused with CLUSTERDOWN")
def clusterdown_errors(obs: Observation):
    """Probe attempts answered -CLUSTERDOWN (the node knows a slot is uncovered, or it is on the
    minority side of a partition)."""
    if not obs.server.get("shards_at_start"):
        return None
    return sum(1 for a in obs.attempts if a.error == "CLUSTERDOWN")


redirects = server_metric(
    "redirects", "replies", "cluster: MOVED and ASK replies the nodes sent during the run",
    """The rise of errorstat_MOVED + errorstat_ASK (INFO errorstats) summed over the cluster's
    nodes from the probe's start to the end: redirects the client followed. A node restarted
    during the run starts counting again, so after a kill this is a lower bound.""")


nodes_agreeing = server_metric(
    "nodes_agreeing", "nodes", "cluster: nodes that share one slot map at the end",
    """After recovery, CLUSTER NODES from every cluster node that is up; the number whose slot
    map (ranges and their masters) is the one most of them share.""")


master_slots_min = server_metric(
    "master_slots_min", "slots", "cluster: fewest slots any master serves at the end",
    """From the agreed slot map at the end.""")


master_slots_max = server_metric(
    "master_slots_max", "slots", "cluster: most slots any master serves at the end",
    """From the agreed slot map at the end.""")


slots_moved = server_metric(
    "slots_moved", "slots", "cluster: slots a reshard or rebalance step moved",
    """Slots whose master differs between the slot maps read right before and right after the
    reshard/rebalance step (CLUSTER NODES).""")


keys_moved = server_metric(
    "keys_moved", "keys", "cluster: keys in the moved slots right after the move",
    """CLUSTER COUNTKEYSINSLOT for every moved slot on its new master right after the step: the
    keys migrated plus those the probe wrote there meanwhile.""")


move_s = server_metric(
    "move_s", "s", "cluster: how long the reshard or rebalance step took",
    """Wall time of the redis-cli --cluster reshard/rebalance command, run inside the lab network.""")


_LOAD_LINE = re.compile(r"DB loaded from (?:disk|append only file): ([0-9.]+) seconds")


def parse_server_load_s(log: str) -> float | None:
    """The last load time a Redis log reports, in seconds."""
    found = _LOAD_LINE.findall(log)
    return float(found[-1]) if found else None


def shard_rows(obs: Observation) -> list[dict]:
    """Per shard of the slot map at probe start: its master then, slots, acked, lost, errors and
    the longest wait for an ack after the fault (see shard_unavailable_s). [] outside a cluster."""
    layout = obs.server.get("shards_at_start")
    if not layout:
        return []
    gaps = _shard_gaps(obs) or {}
    lost_set = set(obs.readback.lost)
    rows = [{"shard": i, "master_at_start": shard.master, "replicas": list(shard.replicas),
             "slots": shard.slot_count, "acked": 0, "lost": 0, "errors": 0,
             "longest_gap_s": round(gaps[i], 3) if i in gaps else None} for i, shard in enumerate(layout)]
    for attempt in obs.attempts:
        shard = shard_of_key(f"probe:{attempt.seq}", layout)
        if shard is None:
            continue
        if attempt.outcome == OK:
            rows[shard]["acked"] += 1
            rows[shard]["lost"] += attempt.seq in lost_set
        else:
            rows[shard]["errors"] += 1
    return rows


def compute_metrics(obs: Observation) -> dict[str, float | int | None]:
    return {name: m.compute(obs) for name, m in METRICS.items()}
