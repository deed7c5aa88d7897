"""Metrics every kind and workload share: figures the servers reported, and failovers as the
servers announced them. The workloads (orchestrator/workloads) and kinds (orchestrator/kinds)
register their own metrics next to the code that records what they read.

Each metric's docstring says how it is measured; `lab run --explain` prints them. A metric
that does not apply to a run is not reported; one that applies but could not be measured
this time (no restart, writes never resumed) is None.
"""

from __future__ import annotations

import re

from ..events import ServerEvent
from ..spec.registry import metric, ordered_metrics
from .observation import Observation


def compute_metrics(obs: Observation, names=None) -> dict[str, float | int | None]:
    """The value of each metric in `names` (the ones that apply to the run; None: all), in report order."""
    wanted = None if names is None else set(names)
    return {m.name: m.compute(obs) for m in ordered_metrics() if wanted is None or m.name in wanted}


def fact_metric(name: str, unit: str, short: str, method: str, of: str = "facts", workload: str | None = None,
                **options):
    """Register a figure the runner read from the servers into `Observation.facts.<name>` (or,
    with of="kind_facts", into the kind's own facts); `method` says how, for `--explain`. It
    applies to every workload unless `workload` names the history it needs."""
    def compute(obs: Observation):
        return getattr(getattr(obs, of), name, None)
    compute.__name__, compute.__doc__ = name, method
    return metric(name, unit, short, workload=workload, **options)(compute)


server_load_s = fact_metric(
    "server_load_s", "s", "load time Redis reported in its log after the restart",
    """The last 'DB loaded from ...: N seconds' line of the restarted node's log (Redis' own
    measurement of reading its RDB/AOF). None when it started with no data to load.""",
    needs=("start",))


dataset_keys = fact_metric(
    "dataset_keys", "keys", "keys in the dataset right before the fault (INFO keyspace)",
    """`keys` of db0 in INFO keyspace, read from the target node just before the fault step.""")


dataset_bytes = fact_metric(
    "dataset_bytes", "bytes", "dataset memory right before the fault (INFO used_memory_dataset)",
    """`used_memory_dataset` in INFO memory, read from the target just before the fault step.""")


fsyncs_per_s = fact_metric(
    "fsyncs_per_s", "calls/s", "fsync and fdatasync calls per second the data directory's filesystem saw",
    """Counted by the power-loss filesystem serving the data directories (every fsync and
    fdatasync the servers made, all data nodes together) from the workload's start to the power
    loss, divided by that time: what the persistence mode asks of the disk.""", needs=("power_loss",))


discarded_bytes = fact_metric(
    "discarded_bytes", "bytes", "bytes written but not yet durable when the power went out",
    """What the power-loss filesystem discarded at the power loss: bytes written (write(2)
    lengths) that no fsync, fdatasync or modelled writeback had made durable.""", needs=("power_loss",))


_LOAD_LINE = re.compile(r"DB loaded from (?:disk|append only file): ([0-9.]+) seconds")


def parse_server_load_s(log: str) -> float | None:
    """The last load time a Redis log reports, in seconds."""
    found = _LOAD_LINE.findall(log)
    return float(found[-1]) if found else None


# ------------------------------------------------------------------ failovers

def switches(obs: Observation) -> list[ServerEvent]:
    """One event per failover: the server events that announce a new master (`promotes` set by
    the kind's event source). Every Sentinel announces the same +switch-master with the same
    text: a repeat of the last announcement by a node that has not made it yet is the same
    failover. Anything else is a new one (a switch back and forth counts twice, and so does one
    node announcing twice)."""
    found: list[ServerEvent] = []
    announced_by: set[str] = set()
    for event in obs.server_events:
        if event.promotes is None:
            continue
        if found and (event.promotes, event.detail) == (found[-1].promotes, found[-1].detail) \
                and event.source not in announced_by:
            announced_by.add(event.source)
            continue
        found.append(event)
        announced_by = {event.source}
    return found


@metric("failover_s", "s", "fault to the servers' announcement of the new master", requires=frozenset({"failover"}),
        workload=None)
def failover_s(obs: Observation):
    """From the fault step taking effect to the first announcement that a new master is in
    place: Sentinel's +switch-master (read from the Sentinels' pub/sub channel as the run went
    on), or in a cluster the promoted replica's "configEpoch set to N after successful
    failover" (it has taken over the slots and tells the others; Docker's timestamp of the log
    line, on the same clock). Both include detection (down-after-milliseconds /
    cluster-node-timeout), agreement, election and promotion. None without a failover."""
    effective = obs.fault_time()
    if effective is None:
        return None
    after = [e.at for e in switches(obs) if e.at >= effective]
    return round(after[0] - effective, 3) if after else None


@metric("failovers", "count", "failovers the servers announced; more than one for one fault is an anomaly",
        requires=frozenset({"failover"}), workload=None)
def failovers(obs: Observation):
    """Distinct announcements of a new master during the run: Sentinel's +switch-master (every
    Sentinel publishes the same text: counted once), or a cluster replica's successful-failover
    log line. One fault should cause one failover; a second one can lose acknowledged writes."""
    return len(switches(obs))
