"""Expectations: bounds, checks, and the per-mode merge of a scenario's expectations."""

from __future__ import annotations

import pytest

from orchestrator.measure.expect import Check, check_expectations
from orchestrator.spec import Bound, Scenario


@pytest.mark.parametrize("bound, observed, holds", [
    (Bound(max=0), 0, True),
    (Bound(max=0), 1, False),
    (Bound(max=10), 9.99, True),
    (Bound(max=10), 10.01, False),
    (Bound(min=1), 1, True),
    (Bound(min=1), 0, False),
    (Bound(min=100), 100.0, True),
    (Bound(min=1, max=3), 1, True),
    (Bound(min=1, max=3), 3, True),
    (Bound(min=1, max=3), 2, True),
    (Bound(min=1, max=3), 0, False),
    (Bound(min=1, max=3), 4, False),
    (Bound(max=0), None, False),
    (Bound(min=1), None, False),
    (Bound(min=1, max=3), None, False),
])
def test_bound_holds(bound, observed, holds):
    assert bound.holds(observed) is holds


@pytest.mark.parametrize("bound, text, as_dict", [
    (Bound(max=10), "<= 10", {"max": 10}),
    (Bound(min=1), ">= 1", {"min": 1}),
    (Bound(min=1, max=3), "1 .. 3", {"min": 1, "max": 3}),
    (Bound(min=0, max=0), "= 0", {"min": 0, "max": 0}),
    (Bound(max=0.5), "<= 0.5", {"max": 0.5}),
])
def test_bound_text_and_dict(bound, text, as_dict):
    assert str(bound) == text
    assert bound.as_dict() == as_dict


def test_check_expectations():
    expectations = {"lost": Bound(max=0), "unavailable_s": Bound(max=10), "acked": Bound(min=1)}
    checks = check_expectations(expectations, {"lost": 2, "unavailable_s": 1.5, "acked": None})
    assert checks == [
        Check("lost", Bound(max=0), 2, False),
        Check("unavailable_s", Bound(max=10), 1.5, True),
        Check("acked", Bound(min=1), None, False),
    ]


def test_unobserved_metric_fails_its_check():
    (check,) = check_expectations({"failover_s": Bound(max=5)}, {})
    assert check.observed is None
    assert check.passed is False


def test_check_as_dict():
    check = Check("lost", Bound(min=1, max=3), 2, True)
    assert check.as_dict() == {"metric": "lost", "expect": {"min": 1, "max": 3}, "observed": 2, "passed": True}


def test_no_expectations_no_checks():
    assert check_expectations({}, {"lost": 1}) == []


def test_expectations_merge_common_and_mode_bounds(persistence_lab):
    scenario = persistence_lab.scenarios["kill-restart"]
    assert scenario.expectations("rdb") == {"unavailable_s": Bound(max=10), "lost": Bound(min=1),
                                            "lost_before_fault_pct": Bound(max=99)}
    assert scenario.expectations("aof-always") == {"unavailable_s": Bound(max=10), "lost": Bound(max=0)}
    assert scenario.expectations("none") == {"unavailable_s": Bound(max=10),
                                             "lost_before_fault_pct": Bound(min=100)}


def test_expectations_without_per_mode_bounds(persistence_lab):
    scenario = persistence_lab.scenarios["restart-without-volume"]
    for mode in scenario.modes:
        assert scenario.expectations(mode) == {"lost_before_fault_pct": Bound(min=100), "unavailable_s": Bound(max=15)}


def test_mode_bound_replaces_common_bound_for_the_same_metric():
    scenario = Scenario(name="s", summary="", explain="", steps=(), modes=("rdb", "none"), config={},
                        expect={"lost": Bound(max=0), "unavailable_s": Bound(max=10)},
                        expect_by_mode={"rdb": {"lost": Bound(min=1)}})
    assert scenario.expectations("rdb") == {"lost": Bound(min=1), "unavailable_s": Bound(max=10)}
    assert scenario.expectations("none") == {"lost": Bound(max=0), "unavailable_s": Bound(max=10)}
    assert scenario.expect == {"lost": Bound(max=0), "unavailable_s": Bound(max=10)}   # not mutated
