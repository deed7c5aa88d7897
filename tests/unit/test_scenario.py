"""The scenario runner's pure parts with a fake runtime and clock: step marks, the timeline,
mode selection. No containers and no Redis connections."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from orchestrator.context import RunContext
from orchestrator.errors import ScenarioAborted, UsageError
from orchestrator.kinds import derive_topology, kind_of
from orchestrator.scenario import run_steps
from orchestrator.spec import Scenario, Step
from orchestrator.workloads.writes import FAIL, OK, Attempt, ReadBack, WriteHistory, client_events


class FakeRuntime:
    def __init__(self, exited_at=None):
        self.calls = []
        self.exit_time = exited_at      # what Docker says of a killed container's exit (epoch s)

    def kill(self, node):
        self.calls.append(("kill", node.name))

    def exited_at(self, node):
        return self.exit_time

    def stop(self, node, timeout_s):
        self.calls.append(("stop", node.name, timeout_s))

    def start(self, node):
        self.calls.append(("start", node.name))

    def remove(self, node):
        self.calls.append(("remove", node.name))


class FakeNodes:
    """INFO as the engine's Redis module would read it: 42 keys before the first fault, then 0."""

    def __init__(self):
        self.answers = iter([{"db0": {"keys": 42}}, {"db0": {"keys": 0}}])

    def info(self, node, section="everything", timeout_s=2.0):
        return next(self.answers)


@pytest.fixture
def ctx(persistence_lab):
    topo = derive_topology(persistence_lab, "rdb", run_id="t1", image="redis:7.2")
    ticks = itertools.count()
    return RunContext(topo, FakeRuntime(), kind_of(persistence_lab), nodes=FakeNodes(),
                      clock=lambda: float(next(ticks)))


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
    assert (ctx.facts.dataset_keys, ctx.facts.fault_target) == (42, "redis-1")   # read before the first fault only


@pytest.mark.parametrize("exit_on_run_clock, effective", [(1.5, 1.5), (0.2, 1.0), (9.0, 3.0)])
def test_a_kill_takes_effect_when_docker_says_the_container_exited(ctx, exit_on_run_clock, effective):
    """Not when `docker kill` returned; an exit time outside the step (clocks apart) is held to it."""
    ctx.runtime.exit_time = 1_700_000_000.0
    ctx.from_wall_clock = lambda epoch_s: exit_on_run_clock if epoch_s == 1_700_000_000.0 else None
    run_steps(ctx, _scenario(("kill", {"target": "master"})))
    assert ctx.marks == {"fault": (1.0, effective)}      # invoked at 1, returned at 3


class FakeMount:
    def freeze_writeback(self):
        pass

    def power_loss(self):
        return {"discarded": {"bytes_written": 100}}


class PerNodeExits(FakeRuntime):
    """Docker's exit time per container (epoch s): the nodes of a power loss die one by one."""

    def __init__(self, exits):
        super().__init__()
        self.exits = exits

    def kill(self, *nodes):
        self.calls.append(("kill",) + tuple(n.name for n in nodes))

    def wait(self, node):
        pass

    def exited_at(self, node):
        return self.exits[node.name]


class ReplicatedNodes(FakeNodes):
    """redis-1 the master, the others its replicas (what the kind reads to resolve roles)."""

    def replication_states(self, topo):
        return {n.name: SimpleNamespace(role="master" if n.name == "redis-1" else "replica", master="redis-1",
                                        link_up=True) for n in topo.data_nodes}


def test_a_power_loss_takes_effect_when_the_first_node_died(replication_lab):
    """A power loss of every node is one moment: the first container's exit, not the step's end."""
    topo = derive_topology(replication_lab, "aof-everysec", run_id="t1", image="redis:7.2")
    exits = {node.name: 1_700_000_000.0 + i for i, node in enumerate(topo.data_nodes)}
    ticks = itertools.count()
    ctx = RunContext(topo, PerNodeExits(exits), kind_of(replication_lab), nodes=ReplicatedNodes(),
                     clock=lambda: float(next(ticks)), mounts={n.name: FakeMount() for n in topo.data_nodes})
    ctx.from_wall_clock = lambda epoch_s: epoch_s - 1_700_000_000.0 + 1.5
    run_steps(ctx, _scenario(("power_loss", {"target": "all"})))
    assert ctx.runtime.calls == [("kill",) + tuple(n.name for n in topo.data_nodes)]
    assert ctx.marks == {"fault": (1.0, 1.5)}      # invoked at 1, first exit at 1.5, returned at 3
    assert ctx.facts.discarded_bytes == 100 * len(topo.data_nodes)


def test_unknown_target_aborts(ctx):
    with pytest.raises(ScenarioAborted, match="no node matches target 'sentinel'"):
        run_steps(ctx, _scenario(("kill", {"target": "sentinel"})))


def test_client_events_from_the_probe_history(ctx):
    history = WriteHistory(attempts=[Attempt(1, 10.0, 10.5, OK), Attempt(2, 11.0, 11.2, FAIL, "connection refused"),
                                     Attempt(3, 13.0, 13.4, OK)], readback=ReadBack(), stopped_at=14.0)
    ctx.marks["fault"] = (10.8, 12.0)
    events = client_events(ctx, history, connections=[])
    assert [(e.t, e.what, e.source) for e in events] == [
        (10.5, "last ack before the fault (probe:1)", "client"),
        (11.2, "first failed write: connection refused", "client"),
        (13.4, "first ack after the fault (probe:3)", "client")]


def test_default_mode(persistence_lab):
    assert persistence_lab.default_mode(persistence_lab.scenario("kill-restart")) == "aof-everysec"
    only_rdb = _scenario(("kill", {"target": "master"}))
    assert persistence_lab.default_mode(only_rdb) == "rdb"


def test_modes_to_run(persistence_lab):
    scenario = persistence_lab.scenario("aof-truncated")
    assert persistence_lab.modes_to_run(scenario, None) == ["aof-always", "aof-no"]
    assert persistence_lab.modes_to_run(scenario, "aof-always") == ["aof-always"]
    with pytest.raises(UsageError, match="does not run in mode 'aof-everysec'"):
        persistence_lab.modes_to_run(scenario, "aof-everysec")
    with pytest.raises(UsageError, match="unknown mode 'bogus'"):
        persistence_lab.modes_to_run(scenario, "bogus")
