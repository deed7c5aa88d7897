"""Cluster metrics from hand-built observations: per-shard outages (the shard of the faulted node
and the others), CLUSTERDOWN refusals, shard rows, elections won, and the figures read from the
servers. Keys land in known shards by choosing seq numbers whose `probe:<seq>` hashes there."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from orchestrator.events import ServerEvent
from orchestrator.kinds.cluster import (ClusterFacts, Shard, clusterdown_errors, other_shards_unavailable_s,
                                        shard_unavailable_s)
from orchestrator.measure.metrics import compute_metrics, failover_s, failovers
from orchestrator.measure.observation import Observation, ServerFacts
from orchestrator.spec import KINDS, METRICS, load_plugins
from orchestrator.workloads.writes import FAIL, INFO, OK, Attempt, ReadBack, range_rows

from .observations import write_observation

load_plugins()

LAYOUT = [
    Shard(master="redis-1", replicas=("redis-4",), slots=((0, 5460),)),
    Shard(master="redis-2", replicas=("redis-5",), slots=((5461, 10922),)),
    Shard(master="redis-3", replicas=("redis-6",), slots=((10923, 16383),)),
]
FAULT = (1.00, 1.20)      # kill step invoked, returned: the fault took effect at 1.20
WINDOW = (0.0, 6.0)       # probe start, stop


def history(*rows) -> list[Attempt]:
    """rows: (shard, invoked, completed, outcome[, error]) -> attempts with increasing seqs whose
    key `probe:<seq>` falls in that shard of LAYOUT."""
    attempts, seq = [], 0
    for shard, invoked, completed, outcome, *error in rows:
        seq += 1
        while not LAYOUT[shard].holds(key_slot(f"probe:{seq}".encode())):
            seq += 1
        attempts.append(Attempt(seq, invoked, completed, outcome, *error))
    return attempts


def test_history_helper_puts_keys_in_the_asked_shard():
    for shard in (0, 1, 2, 2, 0):
        (attempt,) = history((shard, 0.0, 0.1, OK))
        assert LAYOUT[shard].holds(key_slot(f"probe:{attempt.seq}".encode()))
    seqs = [a.seq for a in history((0, 0, 0, OK), (0, 0, 0, OK), (1, 0, 0, OK))]
    assert seqs == sorted(set(seqs))


def observe(attempts, target="redis-1", marks=None, window=WINDOW, server=None, events=(), lost=(),
            layout=LAYOUT) -> Observation:
    return write_observation(attempts, ReadBack(lost=list(lost)), {"fault": FAULT} if marks is None else marks,
                             window, facts=ServerFacts(fault_target=target),
                             kind_facts=ClusterFacts(shards_at_start=layout, **(server or {})), events=events,
                             layout=layout)


def shard_rows(obs: Observation) -> list[dict]:
    return range_rows(obs.history, obs.marks)


# kill-master: shard 0's master is killed at 1.20; its replica takes over; while its slots are
# uncovered the other shards answer CLUSTERDOWN for a while.
KILL_MASTER = history(
    (0, 0.10, 0.11, OK),
    (1, 0.20, 0.21, OK),
    (2, 0.30, 0.31, OK),
    (0, 0.90, 0.95, OK),                                  # shard 0's last ack before the fault
    (1, 1.00, 1.05, OK),                                  # shard 1's last ack before its refusals
    (0, 1.25, 1.75, INFO, "timeout"),
    (0, 1.80, 1.81, FAIL, "connection refused"),
    (2, 2.00, 2.01, OK),                                  # shard 2's last ack before its refusals
    (1, 3.00, 3.01, FAIL, "CLUSTERDOWN"),
    (2, 3.10, 3.11, FAIL, "CLUSTERDOWN"),
    (0, 3.20, 3.21, FAIL, "CLUSTERDOWN"),
    (1, 3.90, 4.05, OK),                                  # shard 1: 4.05 - 1.05 = 3.00
    (2, 4.10, 4.21, OK),                                  # shard 2: 4.21 - 2.01 = 2.20
    (0, 4.30, 4.45, OK),                                  # shard 0: 4.45 - 0.95 = 3.50
    (0, 4.50, 4.51, OK),
)


def test_shard_outage_of_the_faulted_master():
    obs = observe(KILL_MASTER)
    assert shard_unavailable_s(obs) == pytest.approx(3.50)
    assert other_shards_unavailable_s(obs) == pytest.approx(3.00)


def test_affected_shard_found_by_its_replica():
    obs = observe(KILL_MASTER, target="redis-5")
    assert shard_unavailable_s(obs) == pytest.approx(3.00)          # shard 1
    assert other_shards_unavailable_s(obs) == pytest.approx(3.50)   # shard 0 is now an "other"


@pytest.mark.parametrize("target", ["redis-3", "redis-6"])
def test_affected_shard_by_master_or_replica(target):
    assert shard_unavailable_s(observe(KILL_MASTER, target=target)) == pytest.approx(2.20)


def test_target_in_no_shard():
    obs = observe(KILL_MASTER, target="redis-7")
    assert shard_unavailable_s(obs) is None
    assert other_shards_unavailable_s(obs) == pytest.approx(3.50)    # every shard is "other"


def test_gaps_without_a_failed_attempt_do_not_count():
    # shard 2 is idle from 0.31 to 5.00 (the probe was busy elsewhere) but never fails
    attempts = history(
        (0, 0.90, 0.95, OK), (1, 0.96, 0.97, OK), (2, 0.30, 0.31, OK),
        (0, 1.30, 1.31, FAIL, "connection refused"),
        (0, 2.00, 2.10, OK),
        (1, 2.20, 2.21, OK),
        (2, 5.00, 5.01, OK),
    )
    obs = observe(attempts)
    assert shard_unavailable_s(obs) == pytest.approx(2.10 - 0.95)
    assert other_shards_unavailable_s(obs) == 0.0


def test_gap_ending_before_the_fault_does_not_count():
    attempts = history(
        (0, 0.10, 0.11, OK),
        (0, 0.20, 0.21, FAIL, "CLUSTERDOWN"),
        (0, 0.80, 0.90, OK),                   # a 0.79 s gap, over before the fault at 1.20
        (0, 1.30, 1.35, OK),
    )
    assert shard_unavailable_s(observe(attempts)) == 0.0


def test_gap_spanning_the_fault_counts_from_the_last_ack_before_it():
    attempts = history(
        (0, 0.50, 0.60, OK),
        (0, 1.10, 1.15, FAIL, "connection refused"),   # failed before the kill returned
        (0, 1.50, 1.60, OK),
    )
    assert shard_unavailable_s(observe(attempts)) == pytest.approx(1.00)


def test_longest_of_several_gaps():
    attempts = history(
        (0, 0.90, 1.00, OK),
        (0, 1.30, 1.31, FAIL, "connection refused"),
        (0, 1.40, 1.50, OK),                   # 0.50
        (0, 1.60, 1.61, INFO, "connection reset"),
        (0, 2.70, 2.80, OK),                   # 1.30
        (0, 2.90, 2.91, FAIL, "CLUSTERDOWN"),
        (0, 3.00, 3.10, OK),                   # 0.30
    )
    assert shard_unavailable_s(observe(attempts)) == pytest.approx(1.30)


def test_shard_that_never_acks_again_counts_until_probe_stop():
    attempts = history(
        (0, 0.90, 0.95, OK), (1, 1.00, 1.05, OK), (2, 1.06, 1.07, OK),
        (0, 1.30, 1.31, FAIL, "connection refused"),
        (1, 1.40, 1.41, OK),
        (0, 5.50, 5.51, FAIL, "CLUSTERDOWN"),
    )
    obs = observe(attempts, window=(0.0, 6.0))
    assert shard_unavailable_s(obs) == pytest.approx(6.0 - 0.95)
    assert other_shards_unavailable_s(obs) == 0.0


@pytest.mark.parametrize("change", [
    dict(layout=[]),
    dict(layout=None),
    dict(marks={}),
])
def test_shard_metrics_do_not_apply(change):
    obs = observe(KILL_MASTER, **change)
    assert shard_unavailable_s(obs) is None
    assert other_shards_unavailable_s(obs) is None


# ------------------------------------------------------------------ CLUSTERDOWN

def test_clusterdown_errors_count_only_clusterdown():
    assert clusterdown_errors(observe(KILL_MASTER)) == 3


def test_clusterdown_errors_zero_and_outside_a_cluster():
    assert clusterdown_errors(observe(history((0, 0.1, 0.2, OK)))) == 0
    # outside a cluster the metric is not reported at all
    assert METRICS["clusterdown_errors"].applies(KINDS["sentinel"].capabilities, "writes", lambda a: True) is not None


# ------------------------------------------------------------------ shard_rows

def test_shard_rows():
    lost = [KILL_MASTER[3].seq, KILL_MASTER[4].seq]        # shard 0's and shard 1's last acks before
    rows = shard_rows(observe(KILL_MASTER, lost=lost))
    assert rows == [
        {"shard": 0, "master_at_start": "redis-1", "replicas": ["redis-4"], "slots": 5461,
         "acked": 4, "lost": 1, "errors": 3, "longest_gap_s": 3.5},
        {"shard": 1, "master_at_start": "redis-2", "replicas": ["redis-5"], "slots": 5462,
         "acked": 3, "lost": 1, "errors": 1, "longest_gap_s": 3.0},
        {"shard": 2, "master_at_start": "redis-3", "replicas": ["redis-6"], "slots": 5461,
         "acked": 3, "lost": 0, "errors": 1, "longest_gap_s": 2.2},
    ]
    assert sum(r["acked"] for r in rows) == METRICS["acked"].compute(observe(KILL_MASTER))
    assert sum(r["errors"] for r in rows) == METRICS["errors"].compute(observe(KILL_MASTER))


def test_shard_rows_without_a_fault_have_no_gap():
    rows = shard_rows(observe(KILL_MASTER, marks={}))
    assert [r["longest_gap_s"] for r in rows] == [None, None, None]
    assert [r["acked"] for r in rows] == [4, 3, 3]


def test_shard_rows_outside_a_cluster():
    assert shard_rows(observe(KILL_MASTER, layout=None)) == []


def test_shard_rows_skip_keys_of_uncovered_slots():
    layout = [Shard(master="redis-1", replicas=(), slots=((0, 5460),))]
    rows = shard_rows(observe(KILL_MASTER, layout=layout))
    assert [(r["acked"], r["errors"]) for r in rows] == [(4, 3)]


# ------------------------------------------------------------------ elections won

WON = "configEpoch set to 7 after successful failover"


def _won(at: float, source: str) -> ServerEvent:
    """The promoted replica's log line, as the cluster kind hands it on (it names the new master)."""
    return ServerEvent(at=at, source=source, name="new configEpoch", detail=WON, promotes=source)


def test_one_election_won():
    obs = observe(KILL_MASTER, events=[ServerEvent(3.0, "redis-2", "node marked FAIL", "Marking node redis-1 ..."),
                                       _won(3.9, "redis-4")])
    assert failovers(obs) == 1
    assert failover_s(obs) == pytest.approx(3.9 - 1.20)


def test_each_election_won_counts_even_with_the_same_text():
    obs = observe(KILL_MASTER, events=[_won(3.9, "redis-4"), _won(4.5, "redis-5")])
    assert failovers(obs) == 2
    assert failover_s(obs) == pytest.approx(3.9 - 1.20)


def test_the_same_node_winning_twice_counts_twice():
    assert failovers(observe(KILL_MASTER, events=[_won(3.9, "redis-4"), _won(5.0, "redis-4")])) == 2


def test_no_election_won():
    obs = observe(KILL_MASTER, events=[ServerEvent(3.0, "redis-2", "cluster state changed", "Cluster state changed: fail")])
    assert failovers(obs) == 0
    assert failover_s(obs) is None


def test_election_before_the_fault_is_not_its_failover():
    obs = observe(KILL_MASTER, events=[_won(0.5, "redis-6"), _won(2.5, "redis-4")])
    assert failovers(obs) == 2
    assert failover_s(obs) == pytest.approx(2.5 - 1.20)


def test_failovers_need_an_announcement():
    # the election alone is not the failover: the takeover line (new configEpoch) is
    obs = observe(KILL_MASTER, events=[ServerEvent(3.9, "redis-4", "failover-won", "Failover election won: I'm the new master.")])
    assert failovers(obs) == 0


# ------------------------------------------------------------------ read from the servers

SERVER_FIGURES = {"redirects": 1234, "nodes_agreeing": 6, "master_slots_min": 4096, "master_slots_max": 4096,
                  "slots_moved": 1802, "keys_moved": 950, "move_s": 7.25}


@pytest.mark.parametrize("name", list(SERVER_FIGURES))
def test_server_figures_are_read_from_the_cluster_facts(name):
    assert METRICS[name].compute(observe(KILL_MASTER, server=SERVER_FIGURES)) == SERVER_FIGURES[name]
    figures = {**SERVER_FIGURES, name: None}
    assert METRICS[name].compute(observe(KILL_MASTER, server={k: v for k, v in figures.items() if k != name})) is None


def test_every_cluster_metric_is_registered_and_computes():
    names = {"shard_unavailable_s", "other_shards_unavailable_s", "clusterdown_errors", *SERVER_FIGURES}
    assert names <= set(METRICS)
    figures = compute_metrics(observe(KILL_MASTER, server=SERVER_FIGURES, events=[_won(3.9, "redis-4")]))
    assert (figures["shard_unavailable_s"], figures["other_shards_unavailable_s"]) == (3.5, 3.0)
    assert (figures["clusterdown_errors"], figures["failovers"], figures["move_s"]) == (3, 1, 7.25)


def test_unavailable_s_in_a_cluster_is_the_slowest_shard():
    # the killed shard waited 3.5 s while the other shards kept acknowledging: the headline is 3.5,
    # not the short gap between any two acknowledged writes
    obs = observe(KILL_MASTER)
    assert METRICS["unavailable_s"].compute(obs) == pytest.approx(3.50)
    assert METRICS["unavailable_s"].compute(observe(KILL_MASTER, target="redis-6")) == pytest.approx(3.50)
