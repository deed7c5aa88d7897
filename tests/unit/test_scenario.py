"""The scenario runner's pure parts with a fake runtime and clock: step marks, the timeline,
mode selection. No containers and no Redis connections."""

from __future__ import annotations

import itertools

import pytest

import orchestrator.context
from orchestrator.errors import ScenarioAborted, UsageError
from orchestrator.labs import Scenario, Step
from orchestrator.metrics import Observation
from orchestrator.probe import FAIL, OK, Attempt, ReadBack
from orchestrator.context import RunContext
from orchestrator.observe import client_events
from orchestrator.scenario import default_mode, modes_to_run, run_steps
from orchestrator.topology import derive_topology


class FakeRuntime:
    def __init__(self):
        self.calls = []

    def kill(self, node):
        self.calls.append(("kill", node.name))

    def stop(self, node, timeout_s):
        self.calls.append(("stop", node.name, timeout_s))

    def start(self, node):
        self.calls.append(("start", node.name))

    def remove(self, node):
        self.calls.append(("remove", node.name))


@pytest.fixture
def ctx(persistence_lab, monkeypatch):
    snapshots = iter([{"dataset_keys": 42}, {"dataset_keys": 0}])
    monkeypatch.setattr(orchestrator.context, "server_snapshot", lambda node: next(snapshots))
    topo = derive_topology(persistence_lab, "rdb", run_id="t1", image="redis:7.2")
    ticks = itertools.count()
    return RunContext(topo, FakeRuntime(), clock=lambda: float(next(ticks)))


def _scenario(*steps) -> Scenario:
    return Scenario(name="s", summary="", explain="", modes=("rdb",), config={}, expect={}, expect_by_mode={},
                    steps=tuple(Step(action=a, args=args, index=i) for i, (a, args) in enumerate(steps)))


def test_run_steps_marks_the_first_fault_and_restart(ctx):
    run_steps(ctx, _scenario(("kill", {"target": "master"}),
                             ("start", {"target": "master"}),
                             ("stop", {"target": "redis-1", "timeout": "5s"}),
                             ("wipe_volume", {"target": "master"}),
                             ("start", {"target": "master"})))
    assert ctx.runtime.calls == [("kill", "redis-1"), ("start", "redis-1"), ("stop", "redis-1", 5.0),
                                 ("remove", "redis-1"), ("start", "redis-1")]
    # the clock ticks once per call: t0=0, then (invoked, event, returned) for each step
    assert ctx.marks == {"fault": (1.0, 3.0), "restart": (4.0, 6.0)}
    # a role is resolved when the step runs; the timeline says which node it was
    assert [e.what for e in ctx.events] == ["kill master (redis-1)", "start master (redis-1)", "stop redis-1 5s",
                                            "wipe_volume master (redis-1)", "start master (redis-1)"]
    assert ctx.server == {"dataset_keys": 42, "fault_target": "redis-1"}   # read before the first fault only


def test_unknown_target_aborts(ctx):
    with pytest.raises(ScenarioAborted, match="no node matches target 'sentinel'"):
        run_steps(ctx, _scenario(("kill", {"target": "sentinel"})))


def test_client_events_from_the_probe_history(ctx):
    obs = Observation(
        attempts=[Attempt(1, 10.0, 10.5, OK), Attempt(2, 11.0, 11.2, FAIL, "connection refused"),
                  Attempt(3, 13.0, 13.4, OK)],
        readback=ReadBack(), marks={"fault": (10.8, 12.0)}, probe_window=(9.0, 14.0))
    events = client_events(ctx, obs)
    assert [(e.t, e.what, e.source) for e in events] == [
        (10.5, "last ack before the fault (probe:1)", "client"),
        (11.2, "first failed write: connection refused", "client"),
        (13.4, "first ack after the fault (probe:3)", "client")]


def test_default_mode(persistence_lab):
    assert default_mode(persistence_lab, persistence_lab.scenario("kill-restart")) == "aof-everysec"
    only_rdb = _scenario(("kill", {"target": "master"}))
    assert default_mode(persistence_lab, only_rdb) == "rdb"


def test_modes_to_run(persistence_lab):
    scenario = persistence_lab.scenario("aof-truncated")
    assert modes_to_run(persistence_lab, scenario, None) == ["aof-everysec", "aof-always", "rdb+aof"]
    assert modes_to_run(persistence_lab, scenario, "aof-always") == ["aof-always"]
    with pytest.raises(UsageError, match="does not run in mode 'rdb'"):
        modes_to_run(persistence_lab, scenario, "rdb")
    with pytest.raises(UsageError, match="unknown mode 'bogus'"):
        modes_to_run(persistence_lab, scenario, "bogus")
