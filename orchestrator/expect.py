"""Check a run's metrics against the expectations its scenario states for the mode."""

from __future__ import annotations

from dataclasses import dataclass

from .labs import Bound


@dataclass(frozen=True)
class Check:
    metric: str
    bound: Bound
    observed: float | int | None
    passed: bool

    def as_dict(self) -> dict:
        return {"metric": self.metric, "expect": self.bound.as_dict(), "observed": self.observed,
                "passed": self.passed}


def check_expectations(expectations: dict[str, Bound], metrics: dict) -> list[Check]:
    """One Check per expectation; a metric that was not observed (None) fails its check."""
    return [Check(metric=name, bound=bound, observed=metrics.get(name), passed=bound.holds(metrics.get(name)))
            for name, bound in expectations.items()]
