"""The result of one scenario run: what every report (text, JSON, JUnit, HTML) reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..events import Event
from .expect import ERROR, FAIL, PASS, SKIP, Check


@dataclass
class Result:
    lab: str
    scenario: str
    mode: str
    image: str
    summary: str
    explain: str
    status: str                    # pass | fail | error | skip (see measure.expect)
    duration_s: float
    metrics: dict
    checks: list[Check]
    events: list[Event]
    error_kinds: dict[str, int] = field(default_factory=dict)
    waited_s: float = 0.0          # time spent in `wait` steps (inherent to the scenario)
    phases: dict[str, float] = field(default_factory=dict)  # wall time of up, steps, read-back, teardown
    roles: dict[str, str] = field(default_factory=dict)     # data node -> role at the end, as INFO says
    error: str = ""                # why the run could not measure (status error), or was skipped
    shards: list[dict] = field(default_factory=list)         # cluster: figures per shard
    promoted: list[str] = field(default_factory=list)        # each failover: who became master
    mislabelled: dict[str, int] = field(default_factory=dict)  # error kind -> `fail` writes that landed
    clock_drift_s: float | None = None   # wall - monotonic at the end minus at the start
    metric_info: dict[str, dict] = field(default_factory=dict)  # metric -> unit, short, method
    timeline: dict = field(default_factory=dict)              # bucketed history for charts

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def errored(self) -> bool:
        return self.status == ERROR

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def skipped(self) -> bool:
        return self.status == SKIP

    @property
    def verdict(self) -> str:
        return self.status.upper()

    def as_dict(self) -> dict:
        return {"lab": self.lab, "scenario": self.scenario, "mode": self.mode, "image": self.image,
                "status": self.status, "passed": self.passed, "duration_s": round(self.duration_s, 3),
                "summary": self.summary, "explain": self.explain,
                "metrics": self.metrics, "checks": [c.as_dict() for c in self.checks],
                "events": [e.as_dict() for e in self.events], "roles": self.roles, "promoted": self.promoted,
                "shards": self.shards, "error": self.error, "error_kinds": self.error_kinds,
                "mislabelled": self.mislabelled, "waited_s": round(self.waited_s, 3),
                "phases_s": {k: round(v, 3) for k, v in self.phases.items()},
                "clock_drift_s": self.clock_drift_s, "metric_info": self.metric_info, "timeline": self.timeline}
