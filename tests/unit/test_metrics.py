"""Metrics computed from synthetic probe histories (times in seconds on the run's clock)."""

from __future__ import annotations

import pytest

from orchestrator.measure.metrics import compute_metrics, parse_server_load_s
from orchestrator.measure.observation import Observation, ServerFacts
from orchestrator.spec import METRICS, load_plugins
from orchestrator.workloads.writes import FAIL, INFO, OK, Attempt, ReadBack

from .observations import write_observation

load_plugins()

FAULT = (1.00, 1.10)      # kill step invoked, returned
RESTART = (1.50, 1.60)    # start step invoked, returned

# A kill-and-restart history:
#  1-4  acknowledged before the fault step was invoked
#  5    invoked before, acknowledged while the kill step ran (before it returned):
#       acked before the fault took effect, so acked_before_fault = 5
#  6    sent, then timed out (info); present at read-back (indeterminate)
#  7-8  refused while the server is down (fail)
#  9    after the restart: LOADING while the dataset loads (fail)
#  10   first acknowledged write invoked after the fault returned
#  11   acknowledged
HISTORY = [
    Attempt(1, 0.00, 0.01, OK),
    Attempt(2, 0.25, 0.26, OK),
    Attempt(3, 0.50, 0.51, OK),
    Attempt(4, 0.75, 0.76, OK),
    Attempt(5, 0.99, 1.05, OK),
    Attempt(6, 1.05, 1.30, INFO, "timeout"),
    Attempt(7, 1.31, 1.32, FAIL, "connection refused"),
    Attempt(8, 1.45, 1.46, FAIL, "connection refused"),
    Attempt(9, 1.62, 1.70, FAIL, "LOADING"),
    Attempt(10, 1.71, 1.80, OK),
    Attempt(11, 1.81, 1.82, OK),
]
READBACK = ReadBack(lost=[3, 4, 5], indeterminate_present=[6], keys_checked=8)


def observe(attempts=HISTORY, readback=READBACK, marks=None, window=(0.0, 2.0), server=None) -> Observation:
    marks = {"fault": FAULT, "restart": RESTART} if marks is None else marks
    return write_observation(attempts, readback, marks, window, facts=ServerFacts(**(server or {})))


def test_counts():
    m = compute_metrics(observe())
    assert m["acked"] == 7
    assert m["lost"] == 3
    assert m["lost_pct"] == pytest.approx(round(300 / 7, 2))
    assert m["acked_before_fault"] == 5
    assert m["lost_before_fault_pct"] == 60.0      # 3, 4 and 5 of 1..5
    assert m["indeterminate"] == 1
    assert m["errors"] == 4


def test_unavailable_s_runs_from_last_ack_before_the_fault_returned_to_first_ack_invoked_after():
    # last ack completed by 1.10: seq 5 at 1.05; first ack invoked at or after 1.10: seq 10, done 1.80
    assert METRICS["unavailable_s"].compute(observe()) == pytest.approx(0.75)


def test_unavailable_s_is_none_when_writes_never_resume():
    history = [a for a in HISTORY if a.seq < 10]
    assert METRICS["unavailable_s"].compute(observe(history)) is None


def test_unavailable_s_is_none_without_an_ack_before_the_fault():
    history = [a for a in HISTORY if a.invoked >= FAULT[1]]
    assert METRICS["unavailable_s"].compute(observe(history)) is None


def test_fault_metrics_are_none_without_a_fault_mark():
    m = compute_metrics(observe(marks={}))
    assert m["unavailable_s"] is None
    assert m["acked_before_fault"] is None
    assert m["lost_before_fault_pct"] is None
    assert m["load_s"] is None
    assert m["acked"] == 7          # counts do not depend on marks


def test_load_s_runs_from_restart_invoked_to_first_ack_invoked_after_it():
    assert METRICS["load_s"].compute(observe()) == pytest.approx(0.30)    # 1.80 - 1.50


def test_load_s_is_none_when_writes_never_resume():
    history = [a for a in HISTORY if a.seq < 10]
    assert METRICS["load_s"].compute(observe(history)) is None


def test_writes_per_s_counts_acks_until_the_fault():
    # 4 acks completed by the fault step's invocation at 1.00, probe started at 0.00
    assert METRICS["writes_per_s"].compute(observe()) == 4.0


def test_writes_per_s_without_a_fault_uses_the_probe_window():
    assert METRICS["writes_per_s"].compute(observe(marks={}, window=(0.0, 2.0))) == 3.5   # 7 acks / 2 s


def test_writes_per_s_is_none_without_a_probe_window():
    assert METRICS["writes_per_s"].compute(observe(window=None)) is None


def test_nothing_acknowledged():
    history = [Attempt(1, 0.0, 0.1, FAIL, "connection refused"), Attempt(2, 0.2, 0.3, INFO, "timeout")]
    m = compute_metrics(observe(history, ReadBack()))
    assert m["acked"] == 0
    assert m["lost"] == 0
    assert m["lost_pct"] == 0.0
    assert m["errors"] == 2
    assert m["acked_before_fault"] == 0
    assert m["lost_before_fault_pct"] is None
    assert m["unavailable_s"] is None


def test_everything_acknowledged_before_the_fault_lost():
    readback = ReadBack(lost=[1, 2, 3, 4, 5])
    assert METRICS["lost_before_fault_pct"].compute(observe(readback=readback)) == 100.0


def test_server_figures_pass_through():
    m = compute_metrics(observe(server={"server_load_s": 0.072, "dataset_keys": 120, "dataset_bytes": 4096}))
    assert (m["server_load_s"], m["dataset_keys"], m["dataset_bytes"]) == (0.072, 120, 4096)
    assert compute_metrics(observe())["server_load_s"] is None


def test_metric_names_are_the_contract():
    assert {"acked", "lost", "lost_pct", "indeterminate", "unavailable_s", "errors"} <= set(METRICS)
    assert set(compute_metrics(observe())) == set(METRICS)


def test_every_metric_documents_its_method():
    for name, m in METRICS.items():
        assert m.method, name
        assert m.unit and m.short, name


# ------------------------------------------------------------------ Redis logs

RDB_LOG = """\
1:C 28 Nov 2024 09:54:01.001 * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
1:M 28 Nov 2024 09:54:01.010 * Server initialized
1:M 28 Nov 2024 09:54:01.011 * Loading RDB produced by version 7.2.4
1:M 28 Nov 2024 09:54:01.012 * RDB age 3 seconds
1:M 28 Nov 2024 09:54:01.023 * Done loading RDB, keys loaded: 412, keys expired: 0.
1:M 28 Nov 2024 09:54:01.023 * DB loaded from disk: 0.012 seconds
1:M 28 Nov 2024 09:54:01.023 * Ready to accept connections tcp
"""

AOF_LOG = """\
1:M 28 Nov 2024 09:55:02.100 * Server initialized
1:M 28 Nov 2024 09:55:02.101 * Reading RDB base file on AOF loading...
1:M 28 Nov 2024 09:55:02.102 * DB loaded from base file appendonly.aof.1.base.rdb: 0.001 seconds
1:M 28 Nov 2024 09:55:02.173 * DB loaded from incr file appendonly.aof.1.incr.aof: 0.070 seconds
1:M 28 Nov 2024 09:55:02.173 * DB loaded from append only file: 0.072 seconds
1:M 28 Nov 2024 09:55:02.173 * Ready to accept connections tcp
"""


def test_parse_server_load_s_from_rdb():
    assert parse_server_load_s(RDB_LOG) == 0.012


def test_parse_server_load_s_from_aof_takes_the_total_not_the_per_file_lines():
    assert parse_server_load_s(AOF_LOG) == 0.072


def test_parse_server_load_s_last_one_wins():
    assert parse_server_load_s(RDB_LOG + AOF_LOG) == 0.072
    assert parse_server_load_s(AOF_LOG + RDB_LOG) == 0.012


def test_parse_server_load_s_absent():
    assert parse_server_load_s("1:M 28 Nov 2024 09:54:01.023 * Ready to accept connections tcp\n") is None
    assert parse_server_load_s("") is None
