"""A probe that cannot die unseen (issue 8): every exception a write raises becomes an attempt and
the loop goes on; a loop that dies anyway makes the run an ERROR; `fail` labels are checked
against the read-back; the probe must still be writing at the end."""

from __future__ import annotations

import itertools
import threading

import pytest
import redis

from orchestrator.engine.nodes import classify
from orchestrator.errors import ScenarioAborted
from orchestrator.measure.expect import ERROR, FAIL as FAILED, PASS, check_expectations, status_of
from orchestrator.measure.observation import Observation
from orchestrator.spec import Bound
from orchestrator.workloads.writes import (FAIL, INFO, OK, Attempt, Probe, ReadBack, WriteHistory, Writes,
                                           fail_landed, final_writes_per_s, key_for)


class ScriptedWriter:
    """A writer whose write() answers from a shared script; the probe is stopped when it runs out."""

    reconnect_after_error = False
    endpoint = None

    def __init__(self, script, done: threading.Event, stop):
        self.script, self.done, self.stop, self.closed = script, done, stop, False

    def write(self, key, value):
        reply = self.script.pop(0)
        if not self.script:
            self.stop()
            self.done.set()
        if isinstance(reply, BaseException):
            raise reply
        return OK, ""

    def close(self):
        self.closed = True


def _run(script, classifier=classify) -> tuple[Probe, list[ScriptedWriter]]:
    done, writers = threading.Event(), []
    holder: list[Probe] = []

    def connect():
        writers.append(ScriptedWriter(script, done, lambda: holder[0]._stop.set()))
        return writers[-1]

    clock = itertools.count(1.0, 0.5)
    probe = Probe(connect, classifier, run_id="ab12cd", clock=lambda: next(clock))
    holder.append(probe)
    probe.start()
    probe._thread.join(timeout=5)      # ends when the script is used up, or when the loop dies
    assert not probe._thread.is_alive()
    probe.stop()
    return probe, writers


def test_an_unexpected_exception_is_an_unknown_attempt_and_the_probe_keeps_writing():
    # what redis-py's RedisCluster raised during a reshard: AttributeError inside get_redis_connection
    bug = AttributeError("'NoneType' object has no attribute 'redis_connection'")
    probe, writers = _run([True, bug, True, True])
    assert [(a.outcome, a.error) for a in probe.attempts] == [
        (OK, ""), (INFO, "unexpected AttributeError"), (OK, ""), (OK, "")]
    assert probe.failure is None
    # a client that raised something nobody expected is not trusted again: a new one is made
    assert len(writers) == 2 and writers[0].closed


@pytest.mark.parametrize("exc, outcome", [
    (KeyError("slot"), INFO), (ValueError("bad reply"), INFO), (RuntimeError("?"), INFO),
    (redis.ResponseError("MISCONF Errors writing to disk"), FAIL),
])
def test_every_exception_becomes_an_attempt(exc, outcome):
    probe, _ = _run([exc, True])
    assert [a.outcome for a in probe.attempts] == [outcome, OK]


def test_a_loop_that_dies_is_the_probe_s_failure():
    def broken_classifier(exc, connecting):
        raise TypeError("classifier bug")

    probe, _ = _run([ValueError("x"), True], classifier=broken_classifier)
    assert probe.failure is not None and "TypeError: classifier bug" in probe.failure


def test_a_dead_probe_makes_the_run_an_error():
    from orchestrator.scenario import _Run

    class DeadWorkload:
        failure = "the probe's write loop died at attempt 12: TypeError: x"
        running = False

        def stop(self):
            pass

    class Ctx:
        workload = DeadWorkload()

        def stop_workload(self):
            pass

    run = _Run.__new__(_Run)
    with pytest.raises(ScenarioAborted, match="write loop died"):
        run.measure(Ctx())
    assert status_of([], "the probe's write loop died") == ERROR


class Reader:
    def __init__(self, present: dict[str, str]):
        self.present = present

    def mget(self, keys):
        return [self.present.get(k) for k in keys]


def test_fail_landed_comes_from_reading_back_the_failed_keys():
    probe = Probe(lambda: None, classify, run_id="r1")
    probe._records = [(1, 0.0, 0.1, OK, ""), (2, 0.2, 0.3, FAIL, "READONLY"), (3, 0.4, 0.5, FAIL, "TRYAGAIN"),
                      (4, 0.6, 0.7, INFO, "timeout")]
    # key 2 was refused with READONLY, but it is there with the probe's value: a mislabelled outcome
    readback = probe.read_back(Reader({key_for(1): "r1:1", key_for(2): "r1:2", key_for(3): "other", key_for(4): "r1:4"}))
    assert readback.fail_landed == [2]
    assert readback.lost == [] and readback.indeterminate_present == [4]
    history = WriteHistory(attempts=probe.attempts, readback=readback)
    obs = Observation(history=history, marks={})
    assert fail_landed(obs) == 1
    checks = check_expectations({}, {"fail_landed": 1, "final_writes_per_s": 10.0}, Writes.invariants)
    assert status_of(checks, "") == FAILED      # measured, but the labels cannot be trusted: never a PASS


def test_final_writes_per_s_counts_acks_in_the_last_second():
    attempts = [Attempt(i, t, t + 0.01, OK) for i, t in enumerate([0.0, 1.0, 8.2, 8.5, 8.9], start=1)]
    obs = Observation(history=WriteHistory(attempts=attempts, readback=ReadBack(), stopped_at=9.0), marks={})
    assert final_writes_per_s(obs) == 3.0
    stalled = Observation(history=WriteHistory(attempts=attempts[:2], readback=ReadBack(), stopped_at=9.0), marks={})
    assert final_writes_per_s(stalled) == 0.0
    checks = check_expectations({"lost": Bound(max=0)}, {"lost": 0, "final_writes_per_s": 0.0, "fail_landed": 0},
                                Writes.invariants)
    assert status_of(checks, "") == FAILED
    passing = check_expectations({"lost": Bound(max=0)}, {"lost": 0, "final_writes_per_s": 3.0, "fail_landed": 0},
                                 Writes.invariants)
    assert status_of(passing, "") == PASS
    assert [c.metric for c in passing if c.built_in] == ["final_writes_per_s", "fail_landed"]
