"""Failover metrics from hand-built observations: Sentinel's +switch-master events, the lost
window, and the figures the runner reads from the servers (times in seconds on the run's clock)."""

from __future__ import annotations

import pytest

from orchestrator.events import ServerEvent
from orchestrator.kinds.replication import ReplicationFacts, max_node_kept, replicas_in_sync
from orchestrator.measure.metrics import compute_metrics, failover_s, failovers, switches
from orchestrator.measure.observation import Observation
from orchestrator.spec import KINDS, METRICS, load_plugins
from orchestrator.workloads.writes import FAIL, INFO, OK, Attempt, ReadBack, lost_window_s

from .observations import switch, write_observation

load_plugins()

FAULT = (1.00, 1.20)     # kill step invoked, returned
SWITCH = "mymaster 10.213.198.11 6379 10.213.198.12 6379"
SWITCH_BACK = "mymaster 10.213.198.12 6379 10.213.198.13 6379"
HISTORY = [
    Attempt(1, 0.00, 0.10, OK),
    Attempt(2, 0.50, 0.60, OK),
    Attempt(3, 0.90, 1.10, OK),
    Attempt(4, 1.10, 1.60, INFO, "timeout"),
    Attempt(5, 1.61, 1.62, FAIL, "connection refused"),
    Attempt(6, 3.90, 4.00, OK),
    Attempt(7, 4.00, 4.25, OK),
]


def _event(at: float, name: str = "+switch-master", detail: str = SWITCH, source: str = "sentinel-1") -> ServerEvent:
    """A Sentinel event as the sentinel kind hands it on: a +switch-master names the node it promotes."""
    promotes = detail.split()[3] if name == "+switch-master" else None
    return ServerEvent(at=at, source=source, name=name, detail=detail, promotes=promotes)


def observe(events=(), lost=(), marks=None, server=None, attempts=HISTORY) -> Observation:
    return write_observation(attempts, ReadBack(lost=list(lost)), {"fault": FAULT} if marks is None else marks,
                             (0.0, 5.0), kind_facts=ReplicationFacts(**(server or {})), events=events)


def _three_sentinels(at: float, detail: str = SWITCH) -> list[ServerEvent]:
    return [_event(at + i * 0.001, detail=detail, source=f"sentinel-{i + 1}") for i in range(3)]


def test_the_new_metrics_are_registered():
    assert {"failover_s", "failovers", "lost_window_s", "replicas_in_sync", "max_node_kept"} <= set(METRICS)


# ------------------------------------------------------------------ failovers

def test_same_switch_from_three_sentinels_is_one_failover():
    obs = observe(_three_sentinels(3.5))
    assert failovers(obs) == 1
    assert [e.source for e in switches(obs)] == ["sentinel-1"]


def test_a_different_switch_is_a_second_failover():
    assert failovers(observe(_three_sentinels(3.5) + _three_sentinels(9.0, SWITCH_BACK))) == 2


def test_other_sentinel_events_are_not_failovers():
    events = [_event(3.2, "+sdown", "master mymaster 10.213.198.11 6379"),
              _event(3.3, "+odown", "master mymaster 10.213.198.11 6379 #quorum 2/2"),
              _event(3.4, "+elected-leader", "master mymaster 10.213.198.11 6379")]
    assert failovers(observe(events)) == 0
    assert failover_s(observe(events)) is None


def test_failovers_are_not_measured_without_a_failover_watch():
    # a lab whose servers announce no failover (no Sentinel) does not report the metric at all
    for kind in ("single", "replication"):
        assert METRICS["failovers"].applies(KINDS[kind].capabilities, "writes", lambda action: True) is not None
    assert METRICS["failovers"].applies(KINDS["sentinel"].capabilities, "writes", lambda action: True) is None


def test_failovers_zero_when_watched_and_nothing_happened():
    assert failovers(observe()) == 0


# ------------------------------------------------------------------ failover_s

def test_failover_s_from_the_fault_step_returning_to_the_first_switch():
    events = [_event(3.7, source="sentinel-2"), _event(3.9, source="sentinel-3")]
    assert failover_s(observe(events)) == pytest.approx(3.7 - FAULT[1])    # 2.5, not 2.7 from the invocation


def test_failover_s_counts_the_first_of_two_failovers():
    assert failover_s(observe(_three_sentinels(3.7) + _three_sentinels(9.0, SWITCH_BACK))) == pytest.approx(2.5)


def test_failover_s_ignores_a_switch_before_the_fault():
    events = [_event(0.5, detail=SWITCH_BACK), _event(3.7)]
    assert failover_s(observe(events)) == pytest.approx(2.5)


def test_failover_s_is_none_without_a_fault_or_a_switch():
    assert failover_s(observe(_three_sentinels(3.7), marks={})) is None
    assert failover_s(observe()) is None


# ------------------------------------------------------------------ lost_window_s

def test_lost_window_from_first_lost_invoke_to_last_lost_completion():
    # writes 2 and 3 were acknowledged and lost: 2 invoked at 0.50, 3 completed at 1.10
    assert lost_window_s(observe(lost=[2, 3])) == pytest.approx(0.60)


def test_lost_window_of_one_lost_write_is_its_own_duration():
    assert lost_window_s(observe(lost=[7])) == pytest.approx(0.25)


def test_lost_window_is_zero_when_nothing_was_lost():
    assert lost_window_s(observe(lost=[])) == 0.0


# ------------------------------------------------------------------ server figures

def test_replicas_in_sync_and_max_node_kept_come_from_the_servers():
    obs = observe(server={"replicas_in_sync": 2, "max_node_kept": 0})
    assert replicas_in_sync(obs) == 2
    assert max_node_kept(obs) == 0          # 0: every copy wiped, not "unknown"


def test_server_figures_are_none_when_not_measured():
    obs = observe(server={})
    assert replicas_in_sync(obs) is None
    assert max_node_kept(obs) is None


def test_compute_metrics_of_a_failover_run():
    obs = observe(_three_sentinels(3.7), lost=[3],
                  server={"replicas_in_sync": 2, "max_node_kept": 3})
    m = compute_metrics(obs)
    assert (m["failovers"], m["failover_s"], m["replicas_in_sync"], m["max_node_kept"]) == (1, 2.5, 2, 3)
    assert m["lost"] == 1
    assert m["lost_window_s"] == pytest.approx(0.2)
    assert m["unavailable_s"] == pytest.approx(4.00 - 1.10)


def test_a_switch_back_and_forth_counts_every_failover():
    there = "mymaster 10.213.198.11 6379 10.213.198.12 6379"
    back = "mymaster 10.213.198.12 6379 10.213.198.11 6379"
    events = _three_sentinels(3.0, there) + _three_sentinels(8.0, back) + _three_sentinels(13.0, there)
    assert failovers(observe(events)) == 3


def test_failover_s_ignores_switches_before_the_fault():
    events = [_event(0.5)] + _three_sentinels(3.2)
    assert failover_s(observe(events)) == pytest.approx(2.0)


def test_promotions_name_each_failover_once(sentinel_lab):
    from types import SimpleNamespace

    from orchestrator.kinds import derive_topology, kind_of
    from orchestrator.scenario import promotions

    topo = derive_topology(sentinel_lab, "aof-everysec", run_id="t", image="redis", port_base=7100)
    ip = {n.name: n.ip for n in topo.nodes}
    there = f"mymaster {ip['redis-1']} 6379 {ip['redis-3']} 6379"
    back = f"mymaster {ip['redis-3']} 6379 {ip['redis-1']} 6379"
    raw = [ServerEvent(e.at, e.source, e.name, e.detail) for e in _three_sentinels(3.0, there) + _three_sentinels(8.0, back)]

    class Watch:
        events = raw

        def stop(self):
            pass

    # the sentinel kind marks each +switch-master with the node it promotes and the one it replaces
    named = kind_of(sentinel_lab).server_events(SimpleNamespace(watch=Watch(), topo=topo), offset=0.0)
    assert promotions(observe(named)) == ["redis-1 -> redis-3", "redis-3 -> redis-1"]
    won = [ServerEvent(4.0, "redis-5", "new configEpoch", "configEpoch set to 7 after successful failover",
                       promotes="redis-5")]
    assert promotions(observe(won)) == ["redis-5 (won the election)"]


def _sentinel(at: float, name: str, detail: str, source: str = "sentinel-1") -> ServerEvent:
    return ServerEvent(at=at, source=source, name=name, detail=detail)


SPLIT_VOTE = [   # times as measured in a split vote (lab verify, sentinel kill-master), fault at 1.20
    _sentinel(3.90, "+sdown", "master mymaster redis-1 6379", "sentinel-2"),
    _sentinel(4.006, "+odown", "master mymaster 10.213.198.11 6379 #quorum 3/2", "sentinel-3"),
    _sentinel(4.006, "+vote-for-leader", "b30547ed6c61cbecc17fadd1c83d7089475eadde 1", "sentinel-3"),
    _sentinel(4.007, "+odown", "master mymaster 10.213.198.11 6379 #quorum 3/2", "sentinel-1"),
    _sentinel(4.008, "+vote-for-leader", "cb5274317a395c48867f73df5fe965171cd044fd 1", "sentinel-1"),
    _sentinel(4.008, "+vote-for-leader", "8e7303fc33714639f24654b514f5571e9b51037b 1", "sentinel-2"),
    _sentinel(9.165, "-failover-abort-not-elected", "master mymaster 10.213.198.11 6379"),
    _sentinel(14.144, "+vote-for-leader", "cb5274317a395c48867f73df5fe965171cd044fd 2"),
    _sentinel(14.152, "+vote-for-leader", "cb5274317a395c48867f73df5fe965171cd044fd 2", "sentinel-3"),
    switch(14.516, SWITCH, "sentinel-3", "redis-2", "redis-1"),
]


def test_a_split_vote_is_two_election_rounds_and_detection_ends_at_the_first_odown():
    obs = write_observation(HISTORY, marks={"fault": FAULT}, events=SPLIT_VOTE)
    metrics = compute_metrics(obs, ["detection_s", "election_rounds", "failover_s"])
    assert metrics == {"detection_s": 2.806, "election_rounds": 2, "failover_s": 13.316}


def test_one_round_and_no_failover_at_all():
    one_round = [e for e in SPLIT_VOTE if e.at < 9 and not (e.name == "+vote-for-leader" and e.source != "sentinel-3")]
    obs = write_observation(HISTORY, marks={"fault": FAULT}, events=one_round)
    assert compute_metrics(obs, ["election_rounds"]) == {"election_rounds": 1}
    quiet = write_observation(HISTORY, marks={}, events=[])
    assert compute_metrics(quiet, ["detection_s", "election_rounds"]) == {"detection_s": None, "election_rounds": 0}


def test_sentinel_figures_apply_to_sentinel_labs_only():
    """`applies` is None where a metric can be measured, else the reason it cannot."""
    for name in ("detection_s", "election_rounds"):
        assert METRICS[name].applies(KINDS["sentinel"].capabilities, "writes", lambda a: True) is None
        for other in ("replication", "cluster"):
            why = METRICS[name].applies(KINDS[other].capabilities, "writes", lambda a: True)
            assert why == "needs a topology with sentinel"
