"""Building observations for metric tests: a write history (optionally split into the shards
of a cluster layout, as the cluster kind's key ranges would split it) plus marks, facts and
server events."""

from __future__ import annotations

from redis.crc import key_slot

from orchestrator.events import ServerEvent
from orchestrator.kinds.cluster import shard_of_key
from orchestrator.measure.observation import Observation, ServerFacts
from orchestrator.workloads.writes import Range, ReadBack, WriteHistory, key_for


def _slot(key: str) -> int:
    return key_slot(key.encode())


def write_observation(attempts, readback=None, marks=None, window=(0.0, 2.0), facts=None, kind_facts=None,
                      events=(), layout=None) -> Observation:
    ranges, range_of = (), {}
    if layout:
        ranges = tuple(Range(f"shard {i}", s.master, s.replicas, s.slot_count) for i, s in enumerate(layout))
        for a in attempts:
            index = shard_of_key(key_for(a.seq), layout, _slot)
            if index is not None:
                range_of[a.seq] = index
    history = WriteHistory(attempts=list(attempts), readback=readback or ReadBack(), ranges=ranges,
                           range_of=range_of, stopped_at=window[1] if window else None)
    return Observation(history=history, marks={} if marks is None else marks, window=window,
                       facts=facts or ServerFacts(), kind_facts=kind_facts, server_events=list(events))


def switch(at: float, detail: str, source: str, promotes: str, replaces: str | None = None,
           name: str = "+switch-master") -> ServerEvent:
    """An announcement of a new master, as a kind's event source marks it."""
    return ServerEvent(at=at, source=source, name=name, detail=detail, promotes=promotes, replaces=replaces)
