"""Bringing a lab up with a fake runtime and kind: a lab that did not settle is started once
more from nothing (and says so); one whose nodes never answered is not."""

from __future__ import annotations

import types

import pytest

from orchestrator.engine.lifecycle import LabHandle, NotSettled, bring_up
from orchestrator.errors import RuntimeFailure
from orchestrator.kinds import derive_topology, kind_of


class FakeRuntime:
    def __init__(self):
        self.calls = []

    def up(self, nodes=None):
        self.calls.append("up" if nodes is None else f"up {','.join(n.name for n in nodes)}")

    def down(self):
        self.calls.append("down")

    def state(self, node):
        return "running", 0

    def logs(self, node, tail=5):
        return "the last line"


class FakeKind:
    """Settles only on the start numbered `settles_on` (1-based); never if None."""

    def __init__(self, runtime: FakeRuntime, settles_on: int | None):
        self.runtime, self.settles_on = runtime, settles_on

    def start_stages(self, topo):
        return [list(topo.nodes)]

    def form(self, lab):
        pass

    def not_settled(self, lab):
        starts = 1 + self.runtime.calls.count("down")    # a new start follows each removal
        if self.settles_on is not None and starts >= self.settles_on:
            return None
        return f"redis-2 replicates redis-3, not redis-1 (start {starts})"


def _handle(persistence_lab, ready=True) -> LabHandle:
    topo = derive_topology(persistence_lab, "rdb", run_id="t1", image="redis:7.2")
    nodes = types.SimpleNamespace(is_ready=lambda node: ready)
    return LabHandle(topo, FakeRuntime(), nodes=nodes)


def test_a_lab_that_settles_at_once_starts_once(persistence_lab):
    lab = _handle(persistence_lab)
    bring_up(lab, FakeKind(lab.runtime, settles_on=1), timeout_s=0.2)
    assert lab.runtime.calls == ["up"] and lab.first_attempt == ""


def test_a_lab_that_did_not_settle_is_removed_and_started_again(persistence_lab):
    lab = _handle(persistence_lab)
    bring_up(lab, FakeKind(lab.runtime, settles_on=2), timeout_s=0.2)
    assert lab.runtime.calls == ["up", "down", "up"]
    assert "did not settle within 0.2 s: redis-2 replicates redis-3, not redis-1 (start 1)" in lab.first_attempt


def test_a_second_start_that_does_not_settle_either_is_the_error(persistence_lab):
    lab = _handle(persistence_lab)
    with pytest.raises(NotSettled, match=r"\(start 2\) \(and on a first start: .*\(start 1\)\)"):
        bring_up(lab, FakeKind(lab.runtime, settles_on=None), timeout_s=0.2)
    assert lab.runtime.calls == ["up", "down", "up"]


def test_nodes_that_never_answer_are_not_started_again(persistence_lab):
    lab = _handle(persistence_lab, ready=False)
    with pytest.raises(RuntimeFailure, match="did not become ready within 0.2 s") as failure:
        bring_up(lab, FakeKind(lab.runtime, settles_on=1), timeout_s=0.2)
    assert not isinstance(failure.value, NotSettled)
    assert lab.runtime.calls == ["up"]


class StagedKind(FakeKind):
    def start_stages(self, topo):
        return [topo.nodes[:1], topo.nodes[1:]]


def test_stages_start_one_after_the_other(sentinel_lab):
    topo = derive_topology(sentinel_lab, "aof-everysec", run_id="t1", image="redis:7.2")
    lab = LabHandle(topo, FakeRuntime(), nodes=types.SimpleNamespace(is_ready=lambda node: True))
    bring_up(lab, StagedKind(lab.runtime, settles_on=1), timeout_s=0.2)
    assert lab.runtime.calls == ["up redis-1", "up " + ",".join(n.name for n in topo.nodes[1:])]


def test_sentinels_start_after_the_data_nodes(sentinel_lab):
    topo = derive_topology(sentinel_lab, "aof-everysec", run_id="t1", image="redis:7.2")
    stages = kind_of(sentinel_lab).start_stages(topo)
    assert [[n.name for n in stage] for stage in stages] == [["redis-1", "redis-2", "redis-3"],
                                                             ["sentinel-1", "sentinel-2", "sentinel-3"]]
