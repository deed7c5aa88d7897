"""Check a run's metrics against what its scenario expects, and decide the verdict.

PASS: measured, every expectation met. FAIL: measured, an expectation missed. ERROR: the run
could not measure (an infrastructure fault, the workload died, a step that never completed).
SKIP: the run needs what this machine lacks (FUSE for a power loss); it was not started.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import Bound

PASS, FAIL, ERROR, SKIP = "pass", "fail", "error", "skip"


@dataclass(frozen=True)
class Check:
    metric: str
    bound: Bound
    observed: float | int | None
    passed: bool
    built_in: bool = False      # an invariant of the workload, not a line of the lab file

    def as_dict(self) -> dict:
        found = {"metric": self.metric, "expect": self.bound.as_dict(), "observed": self.observed,
                 "passed": self.passed}
        if self.built_in:
            found["built_in"] = True
        return found


def check_expectations(expectations: dict[str, Bound], metrics: dict,
                       invariants: dict[str, Bound] | None = None) -> list[Check]:
    """One Check per expectation, then one per invariant of the workload (what every run must
    show to count as measured, e.g. the probe still writing at the end). A metric that was not
    observed (None) fails its check."""
    checks = [Check(metric=name, bound=bound, observed=metrics.get(name), passed=bound.holds(metrics.get(name)))
              for name, bound in expectations.items()]
    for name, bound in (invariants or {}).items():
        checks.append(Check(metric=name, bound=bound, observed=metrics.get(name),
                            passed=bound.holds(metrics.get(name)), built_in=True))
    return checks


def status_of(checks: list[Check], error: str) -> str:
    if error:
        return ERROR
    return PASS if all(c.passed for c in checks) else FAIL
