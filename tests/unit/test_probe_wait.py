"""The probe's write loop through DirectWriter against a scripted fake connection: WAIT mode (a
write counts only once WAIT confirms enough replicas) and reconnecting after an error reply."""

from __future__ import annotations

import itertools
import threading

import pytest
import redis
import redis.exceptions as rexc

from orchestrator.engine.nodes import DirectWriter, _packed_set, classify
from orchestrator.workloads.writes import FAIL, INFO, OK, Probe

RUN = "ab12cd"


class FakeServer:
    """Replies to the probe's commands from a script, one entry per read_response(); an
    exception entry is raised. When the script runs out the probe is told to stop."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.sent: list[bytes] = []
        self.connects = 0
        self.disconnects = 0
        self.probe: Probe | None = None
        self.exhausted = threading.Event()

    def connect(self) -> "FakeConnection":
        self.connects += 1
        return FakeConnection(self, port=7100 + self.connects)

    def writer(self, **options) -> DirectWriter:
        return DirectWriter(self.connect(), **options)


class FakeConnection:
    def __init__(self, server: FakeServer, port: int):
        self.server = server
        self.port = port

    def connect(self):
        pass

    def disconnect(self):
        self.server.disconnects += 1

    def send_packed_command(self, command, check_health=True):
        assert check_health is False
        self.server.sent.append(b"".join(command))

    def read_response(self):
        reply = self.server.replies.pop(0)
        if not self.server.replies:
            self.server.probe._stop.set()      # the loop ends after this attempt
            self.server.exhausted.set()
        if isinstance(reply, Exception):
            raise reply
        return reply


def _run(replies, **options) -> tuple[Probe, FakeServer]:
    server = FakeServer(replies)
    clock = itertools.count(1.0, 0.5)
    probe = Probe(lambda: server.writer(**options), classify, run_id=RUN, clock=lambda: next(clock))
    server.probe = probe
    probe.start()
    assert server.exhausted.wait(timeout=5), "the probe did not consume the script"
    probe.stop()
    return probe, server


# The exceptions redis-py raises for error replies (`-READONLY ...` -> ReadOnlyError, the code dropped).
READONLY = rexc.ReadOnlyError("You can't write against a read only replica.")
LOADING = rexc.BusyLoadingError("Redis is loading the dataset in memory")
NOREPLICAS = redis.ResponseError("NOREPLICAS Not enough good replicas to write.")


def _wait_command(replicas: int, timeout_ms: int) -> bytes:
    return b"".join(redis.Connection().pack_command("WAIT", replicas, timeout_ms))


def test_wait_reply_below_replicas_is_info():
    probe, _ = _run([b"OK", 0], wait_replicas=1, wait_timeout_ms=100)
    (attempt,) = probe.attempts
    assert (attempt.seq, attempt.outcome, attempt.error) == (1, INFO, "WAIT 0/1")


def test_wait_reply_reaching_replicas_is_ok():
    probe, _ = _run([b"OK", 1], wait_replicas=1, wait_timeout_ms=100)
    (attempt,) = probe.attempts
    assert (attempt.outcome, attempt.error) == (OK, "")


def test_wait_shortfall_keeps_the_connection():
    probe, server = _run([b"OK", 0, b"OK", 2], wait_replicas=2, wait_timeout_ms=100)
    assert [(a.outcome, a.error) for a in probe.attempts] == [(INFO, "WAIT 0/2"), (OK, "")]
    assert server.connects == 1


def test_set_and_wait_go_in_one_packet():
    _, server = _run([b"OK", 1], wait_replicas=1, wait_timeout_ms=250)
    (packet,) = server.sent
    assert packet == _packed_set(b"probe:1", f"{RUN}:1".encode()) + _wait_command(1, 250)
    assert b"SET" in packet and b"WAIT" in packet


def test_without_wait_only_the_set_is_sent():
    probe, server = _run([b"OK"])
    assert server.sent == [_packed_set(b"probe:1", f"{RUN}:1".encode())]
    assert [a.outcome for a in probe.attempts] == [OK]


def test_error_reply_fails_and_reconnects():
    probe, server = _run([READONLY, b"OK"])
    assert [(a.seq, a.outcome) for a in probe.attempts] == [(1, FAIL), (2, OK)]
    assert server.connects == 2
    assert server.disconnects == 2          # after the error, and at the end
    assert [port for _, port in probe.connections] == [7101, 7102]


def test_response_error_kind_is_the_first_word():
    probe, server = _run([NOREPLICAS, b"OK"])
    assert [(a.outcome, a.error) for a in probe.attempts] == [(FAIL, "NOREPLICAS"), (OK, "")]
    assert server.connects == 2


def test_error_reply_in_wait_mode_reconnects():
    probe, server = _run([READONLY, b"OK", 1], wait_replicas=1)
    assert [a.outcome for a in probe.attempts] == [FAIL, OK]
    assert server.connects == 2
    assert len(probe.connections) == 2


def test_lost_connection_is_info_and_reconnects():
    probe, server = _run([redis.ConnectionError("Connection reset by peer"), b"OK"])
    assert [(a.outcome, a.error) for a in probe.attempts] == [(INFO, "connection reset"), (OK, "")]
    assert server.connects == 2


def test_loading_reply_is_fail_and_reconnects():
    # redis-py's BusyLoadingError is a ConnectionError, but LOADING is a refusal: not applied
    probe, server = _run([LOADING, b"OK"])
    assert [a.outcome for a in probe.attempts] == [FAIL, OK]
    assert server.connects == 2


@pytest.mark.parametrize("exc,kind", [
    (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), "READONLY"),
    (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), "LOADING"),
    (redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write."), "NOREPLICAS"),
])
def test_error_kind_is_the_reply_code(exc, kind):
    assert classify(exc, False) == (FAIL, kind)
