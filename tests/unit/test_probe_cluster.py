"""The probe's write loop through ClusterWriter against a scripted fake RedisCluster: the outcome
each error gets (CLUSTERDOWN and refusals fail, resets and timeouts are unknown), the keys and
values written, and connecting again only when there is no client yet."""

from __future__ import annotations

import itertools

import pytest
import redis
from redis.exceptions import ClusterDownError, ClusterError, RedisClusterException, SlotNotCoveredError

from orchestrator.engine.nodes import ClusterWriter, classify
from orchestrator.workloads.writes import FAIL, INFO, OK, Probe

RUN = "ab12cd"
REFUSED = "Error 111 connecting to 127.0.0.1:7100. Connection refused."


class FakeCluster:
    """Answers set() from a script: an exception entry is raised, anything else returned. When
    the script runs out the probe is told to stop."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.written: list[tuple[str, str]] = []
        self.closed = 0
        self.probe: Probe | None = None

    def set(self, key, value):
        self.written.append((key, value))
        reply = self.replies.pop(0)
        if not self.replies:
            self.probe._stop.set()          # the loop ends after this attempt
        if isinstance(reply, Exception):
            raise reply
        return reply

    def close(self):
        self.closed += 1


class Factory:
    """The probe's connect(): raises the scripted connect errors first, then returns the client."""

    def __init__(self, client: FakeCluster, failures=()):
        self.client = client
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return ClusterWriter(self.client)


def _run(replies, connect_failures=()) -> tuple[Probe, FakeCluster, Factory]:
    client = FakeCluster(replies)
    factory = Factory(client, connect_failures)
    clock = itertools.count(1.0, 0.5)
    probe = Probe(factory, classify, run_id=RUN, clock=lambda: next(clock))
    client.probe = probe
    probe.start()
    probe._thread.join(timeout=5)
    assert not probe._thread.is_alive(), "the probe did not consume the script"
    probe.stop()
    return probe, client, factory


def outcomes(probe: Probe) -> list[tuple[str, str]]:
    return [(a.outcome, a.error) for a in probe.attempts]


def test_error_sequence_then_success():
    probe, client, factory = _run([
        ClusterDownError("The cluster is down"),
        redis.ConnectionError(REFUSED),
        redis.ConnectionError("Connection reset by peer"),
        redis.TimeoutError("Timeout reading from socket"),
        SlotNotCoveredError('Slot "7000" is not covered by the cluster.'),
        True,
    ])
    assert outcomes(probe) == [
        (FAIL, "CLUSTERDOWN"),
        (FAIL, "connection refused"),
        (INFO, "connection reset"),
        (INFO, "timeout"),
        (FAIL, "SlotNotCoveredError"),
        (OK, ""),
    ]
    assert [a.seq for a in probe.attempts] == [1, 2, 3, 4, 5, 6]
    assert factory.calls == 1            # RedisCluster reconnects by itself; the probe keeps it
    assert client.closed == 1            # closed once, when the loop ends


def test_keys_and_values_written():
    probe, client, _ = _run([True, ClusterDownError("The cluster is down"), True])
    assert client.written == [(f"probe:{seq}", f"{RUN}:{seq}") for seq in (1, 2, 3)]
    assert client.written == [(probe.key_for(s), probe.value_for(s)) for s in (1, 2, 3)]
    assert [a.outcome for a in probe.attempts] == [OK, FAIL, OK]


def test_times_come_from_the_clock():
    probe, _, _ = _run([True, redis.TimeoutError("Timeout reading from socket")])
    # clock: 1.0 start, then invoked/completed per attempt
    assert [(a.invoked, a.completed) for a in probe.attempts] == [(1.5, 2.0), (2.5, 3.0)]
    assert probe.started_at == 1.0


@pytest.mark.parametrize("exc, outcome, kind", [
    (redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"), FAIL, "TRYAGAIN"),
    (redis.ResponseError("NOREPLICAS Not enough good replicas to write."), FAIL, "NOREPLICAS"),
    (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), FAIL, "READONLY"),
    (redis.TimeoutError("Timeout connecting to server"), FAIL, "timeout"),
    (ConnectionRefusedError(111, "Connection refused"), FAIL, "connection refused"),
    (ConnectionResetError(104, "Connection reset by peer"), INFO, "connection reset"),
    (RedisClusterException("Redis Cluster cannot be connected."), FAIL, "RedisClusterException"),
])
def test_other_errors(exc, outcome, kind):
    probe, _, _ = _run([exc, True])
    assert outcomes(probe) == [(outcome, kind), (OK, "")]


def test_client_creation_failures_are_fail_and_retried():
    probe, client, factory = _run([True], connect_failures=[
        RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node"),
        redis.ConnectionError(REFUSED),
    ])
    assert outcomes(probe) == [(FAIL, "RedisClusterException"), (FAIL, "connection refused"), (OK, "")]
    assert factory.calls == 3
    assert client.written == [("probe:3", f"{RUN}:3")]       # seqs 1 and 2 were never sent


# redis-py's RedisCluster raises ClusterError("TTL exhausted.") after 16 redirects of one command
# (redis/cluster.py, _execute_command): no node took the write, so it is recorded as failed and the
# probe goes on.
def test_ttl_exhausted_is_recorded_and_the_probe_goes_on():
    probe, _, _ = _run([ClusterError("TTL exhausted."), True])
    assert [a.outcome for a in probe.attempts] == [FAIL, OK]
