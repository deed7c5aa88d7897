"""Everything a run observed, typed, on the run's monotonic clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import ServerEvent


@dataclass
class ServerFacts:
    """Figures the servers reported during a run that every kind has (INFO right before the
    fault, the restarted node's log). Filled while the run goes on; None: not read."""

    fault_target: str | None = None            # the node the first fault hit
    dataset_keys: int | None = None            # INFO keyspace db0 keys, right before the fault
    dataset_bytes: int | None = None           # INFO used_memory_dataset, right before the fault
    rdb_changes_since_last_save: int | None = None
    server_load_s: float | None = None         # "DB loaded from ...: N seconds" after the restart
    fsyncs_per_s: float | None = None          # fsync calls the power-loss filesystem saw, per second of load
    discarded_bytes: int | None = None         # written but not durable when the power went out


@dataclass(frozen=True)
class Observation:
    """What a run observed: the workload's own history (typed by the workload: a write history,
    a message history), the times of the marked steps, the facts the servers reported (common
    ones and the kind's own dataclass) and the servers' events."""

    history: Any
    marks: dict[str, tuple[float, float]]               # "fault"/"restart": (step invoked, took effect)
    window: tuple[float, float | None] | None = None    # the workload's start and stop
    facts: ServerFacts = field(default_factory=ServerFacts)
    kind_facts: Any = None
    server_events: list[ServerEvent] = field(default_factory=list)

    def fault_time(self) -> float | None:
        """When the first fault took effect, or None without a fault: a killed (or powered-off)
        container's exit as Docker recorded it, else when the fault's step returned."""
        return self.marks["fault"][1] if "fault" in self.marks else None
