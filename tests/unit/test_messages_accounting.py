"""The messages workload without Docker: delivery accounting on synthetic histories (loss,
duplicates, reordering, claims, trims), its metrics and timeline, the producer against a fake
connection, the lab-file checks, and the consumer program's own pieces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from orchestrator.errors import LabFileError
from orchestrator.events import Event
from orchestrator.measure.metrics import compute_metrics
from orchestrator.measure.observation import Observation
from orchestrator.spec import METRICS, load_plugins, parse_lab
from orchestrator.workloads import _consumer
from orchestrator.workloads._consumers import Life, last_receipt, read_log
from orchestrator.workloads._delivery import (ConsumerEvent, Delivery, MessageHistory, Publish, StreamFacts, account,
                                              bucket_counts, consumer_outage, consumer_rows, stream_id)
from orchestrator.workloads.messages import Producer, consumer_windows, summary_line, timeline
from orchestrator.workloads.writes import ReadBack, WriteHistory

load_plugins()


def published(count, start=10.0, every=0.01, outcome="ok", reply="1", first=1):
    """`count` publishes from message `first`, one every `every` s from `start`."""
    return [Publish(seq, start + i * every, start + i * every + 0.001, outcome, "" if outcome == "ok" else "timeout",
                    reply) for i, seq in enumerate(range(first, first + count))]


def received(seqs, start=10.005, every=0.01, consumer="c1", claimed=False):
    return [Delivery(consumer, seq, start + i * every, "", claimed) for i, seq in enumerate(seqs)]


def history(publishes, deliveries, transport="pubsub", stream=None, start=10.0, stop=None):
    stop = stop if stop is not None else max(p.completed for p in publishes) + 0.01
    return MessageHistory(transport=transport, publishes=publishes, deliveries=deliveries, stream=stream,
                          started_at=start, stopped_at=stop)


# ------------------------------------------------------------------ accounting

def test_every_message_delivered_once():
    acc = account(history(published(100), received(range(1, 101))))
    assert (acc.published, acc.delivered, acc.deliveries) == (100, 100, 100)
    assert acc.lost == () and acc.duplicates == 0 and acc.redelivered == 0 and acc.reordered == 0
    assert acc.max_delivery_lag_s == pytest.approx(0.005)
    assert acc.losses == {"to_nobody": 0, "dropped": 0}


def test_pubsub_loss_is_split_by_what_publish_answered():
    publishes = published(40) + published(20, start=10.4, reply="0", first=41) + published(40, start=10.6, first=61)
    deliveries = received(range(1, 38)) + received(range(61, 101), start=10.605)
    acc = account(history(publishes, deliveries))
    assert acc.lost == tuple(range(38, 61))
    assert acc.losses == {"to_nobody": 20, "dropped": 3}     # 38-40 were sent to a subscriber that then died
    assert acc.duplicates == 0 and acc.trimmed is None


def test_duplicates_and_claims_of_a_dead_consumers_batch():
    publishes = published(10, reply="")
    first = received(range(1, 11))
    again = received(range(6, 11), start=12.0, claimed=True)      # recorded, not acknowledged, claimed after a restart
    acc = account(history(publishes, first + again, transport="stream", stream=StreamFacts()))
    assert acc.delivered == 10 and acc.deliveries == 15
    assert acc.duplicates == 5 and acc.redelivered == 5 and acc.lost == ()


def test_a_claim_of_what_was_never_recorded_is_redelivered_not_duplicated():
    publishes = published(10, reply="")
    deliveries = received(range(1, 6)) + received(range(6, 11), start=12.0, claimed=True)
    acc = account(history(publishes, deliveries, transport="stream", stream=StreamFacts()))
    assert acc.duplicates == 0 and acc.redelivered == 5 and acc.lost == ()
    assert acc.max_delivery_lag_s == pytest.approx(12.04 - 10.09, abs=1e-6)   # message 10: invoked 10.09, claimed at 12.04


def test_reordering_is_neither_loss_nor_duplication():
    order = [1, 2, 5, 3, 4, 6, 9, 7, 8, 10]
    acc = account(history(published(10), received(order)))
    assert acc.lost == () and acc.duplicates == 0 and acc.delivered == 10
    assert acc.reordered == 4          # 3, 4 after 5; 7, 8 after 9


def test_two_consumers_of_a_group_share_the_messages():
    deliveries = received(range(1, 11, 2), consumer="c1") + received(range(2, 11, 2), consumer="c2")
    acc = account(history(published(10), deliveries, transport="stream", stream=StreamFacts()))
    assert acc.delivered == 10 and acc.duplicates == 0 and acc.reordered == 0
    rows = consumer_rows(history(published(10), deliveries))
    assert [(r["consumer"], r["received"], r["distinct"]) for r in rows] == [("c1", 5, 5), ("c2", 5, 5)]


def test_stream_losses_are_trimmed_gone_or_unread():
    ids = [f"1000-{i}" for i in range(10)]
    publishes = [Publish(i + 1, 10 + i * 0.01, 10 + i * 0.01 + 0.001, "ok", "", ids[i]) for i in range(10)]
    deliveries = received([5, 6, 7])
    # first entry at the end is 1000-4: 1-4 were trimmed; 8 vanished (newer than the first entry,
    # not in the stream); 9 and 10 are still there, unread
    facts = StreamFacts(length=6, first_id="1000-4", present=frozenset({ids[8], ids[9]}))
    acc = account(history(publishes, deliveries, transport="stream", stream=facts))
    assert acc.lost == (1, 2, 3, 4, 8, 9, 10)
    assert acc.losses == {"trimmed": 4, "gone": 1, "unread": 2}
    assert acc.trimmed == 4


def test_an_empty_stream_at_the_end_means_everything_undelivered_was_trimmed():
    publishes = [Publish(i, 10.0, 10.001, "ok", "", f"5-{i}") for i in (1, 2)]
    acc = account(history(publishes, [], transport="stream", stream=StreamFacts(length=0, first_id=None)))
    assert acc.trimmed == 2


def test_stream_ids_order_numerically():
    assert stream_id("1700000000000-10") > stream_id("1700000000000-9")
    assert stream_id("999-0") < stream_id("1000-0")


def test_failed_and_unknown_publishes_are_not_lost():
    publishes = published(3) + published(2, start=10.1, outcome="fail", first=4) + published(2, start=10.2,
                                                                                             outcome="info", first=6)
    deliveries = received([1, 2, 3, 6])
    acc = account(history(publishes, deliveries))
    assert acc.published == 3 and acc.lost == ()
    assert acc.delivered == 4 and acc.fail_delivered == ()


def test_a_refused_publish_that_arrives_is_mislabelled():
    publishes = published(2) + published(1, start=10.1, outcome="fail", first=3)
    acc = account(history(publishes, received([1, 2, 3])))
    assert acc.fail_delivered == (3,)


def test_deliveries_of_numbers_never_sent_are_counted_apart():
    acc = account(history(published(2), received([1, 2, 99])))
    assert acc.unknown == 1 and acc.delivered == 2 and acc.duplicates == 0


# ------------------------------------------------------------------ the consumers' silence

def test_outage_is_the_longest_wait_of_an_acknowledged_message_while_nobody_received():
    publishes = published(300)                                       # acknowledged 10.001 .. 12.991
    deliveries = received(range(1, 101)) + received(range(151, 301), start=11.505)
    span = consumer_outage(publishes, deliveries, start=10.0, end=13.0)
    assert span == pytest.approx((11.001, 11.505))                   # message 101 waited from its ack


def test_a_silence_while_the_producer_could_not_publish_is_no_consumer_outage():
    publishes = published(100) + published(100, start=13.0, first=101)    # nothing acknowledged 11.0 .. 13.0
    deliveries = received(range(1, 101)) + received(range(101, 201), start=13.005)
    span = consumer_outage(publishes, deliveries, start=10.0, end=14.0)
    assert span[1] - span[0] < 0.02


def test_consumers_silent_until_the_end():
    span = consumer_outage(published(100), received(range(1, 51)), start=10.0, end=11.0)
    assert span == pytest.approx((10.501, 11.0))


# ------------------------------------------------------------------ metrics, report

MESSAGE_METRICS = [n for n, m in METRICS.items() if m.workload == "messages"]


def observe(hist, marks=None) -> Observation:
    return Observation(history=hist, marks=marks or {}, window=(hist.started_at, hist.stopped_at))


def metrics_of(hist, marks=None) -> dict:
    return compute_metrics(observe(hist, marks), MESSAGE_METRICS)


def test_metrics_read_the_accounting():
    publishes = published(300)
    hist = history(publishes, received(range(1, 101)) + received(range(151, 301), start=11.505), stop=13.0)
    m = metrics_of(hist, marks={"fault": (11.0, 11.01)})
    assert (m["published"], m["delivered"], m["lost_messages"], m["duplicates"]) == (300, 250, 50, 0)
    assert m["consumer_outage_s"] == pytest.approx(0.504)
    assert m["published_per_s"] == pytest.approx(100.0)
    assert m["final_published_per_s"] == pytest.approx(100.0)
    assert m["final_delivered_per_s"] == pytest.approx(100.0)
    assert m["fail_delivered"] == 0
    assert m["pending_at_end"] is None and m["trimmed"] is None       # Pub/Sub has neither


def test_stream_metrics_come_from_the_servers_facts():
    hist = history(published(10, reply=""), received(range(1, 11)), transport="stream",
                   stream=StreamFacts(length=10, first_id="1-0", pending=3))
    m = metrics_of(hist)
    assert m["pending_at_end"] == 3 and m["trimmed"] == 0


def test_message_metrics_say_nothing_about_a_writes_run():
    writes = Observation(history=WriteHistory(attempts=[], readback=ReadBack()), marks={})
    assert {"published", "delivered", "lost_messages", "duplicates", "redelivered", "max_delivery_lag_s",
            "consumer_outage_s", "pending_at_end", "trimmed"} <= set(MESSAGE_METRICS)
    assert all(v is None for v in compute_metrics(writes, MESSAGE_METRICS).values())


def test_timeline_buckets_count_every_attempt_and_delivery():
    publishes = published(50) + published(5, start=10.5, outcome="fail", first=51)
    deliveries = received(range(1, 51)) + received([3, 4], start=10.7, claimed=True)
    hist = history(publishes, deliveries)
    events = [Event(0.2, "kill_consumer c1", "tool"), Event(0.4, "start_consumer c1", "tool"),
              Event(0.45, "pause_consumer c1", "tool"), Event(0.9, "healed consumer c1", "tool")]
    line = timeline(hist, t0=10.0, events=events)
    producer, consumers = line["series"]
    assert sum(producer["counts"]["published"]) == 50 and sum(producer["counts"]["failed"]) == 5
    assert sum(consumers["counts"]["delivered"]) == 50 and sum(consumers["counts"]["duplicates"]) == 2
    assert line["windows"] == [{"from": 0.2, "to": 0.4, "what": "kill_consumer c1"},
                               {"from": 0.45, "to": 0.9, "what": "pause_consumer c1"}]
    assert line["lost_acks_t"] == [] and line["outage"]["metric"] == "consumer_outage_s"


def test_bucket_counts_need_attempts():
    assert bucket_counts(history(published(1), []), 10.0, 0.1) is not None
    assert bucket_counts(MessageHistory("pubsub", [], []), 10.0, 0.1) is None


def test_consumer_windows_pair_each_fault_with_its_undo():
    events = [Event(1.0, "kill_consumer c2 False", "tool"), Event(1.5, "kill_consumer c1 True", "tool"),
              Event(2.0, "start_consumer c1", "tool")]
    assert consumer_windows(events) == [{"from": 1.0, "to": None, "what": "kill_consumer c2"},
                                        {"from": 1.5, "to": 2.0, "what": "kill_consumer c1"}]


def test_summary_line_names_the_reasons():
    publishes = published(10) + published(5, start=10.2, reply="0", first=11)
    line = summary_line(history(publishes, received(range(1, 11))))
    assert line.startswith("accounting: 15 published, 10 delivered, 5 lost (5 published while no subscriber")


# ------------------------------------------------------------------ the producer

class FakeConnection:
    """Answers each command with `replies` in turn: a value, or an exception to raise."""

    def __init__(self, replies):
        self.replies, self.sent = replies, []

    def send_command(self, *args):
        self.sent.append(args)

    def read_response(self):
        reply = self.replies.pop(0) if self.replies else b"1"
        if isinstance(reply, BaseException):
            raise reply
        return reply


class FakeWriter:
    def __init__(self, connection, port=7100):
        self.connection, self.endpoint, self.closed = connection, port, False

    def close(self):
        self.closed = True


def classify(exc, connecting):
    return ("fail", "refused") if connecting or isinstance(exc, ValueError) else ("info", "timeout")


def test_producer_records_every_attempt_and_reconnects_after_an_error():
    import redis

    writers = [FakeWriter(FakeConnection([b"1", redis.TimeoutError("t"), b"1"])), None,
               FakeWriter(FakeConnection([ValueError("READONLY"), b"0"]), port=7101)]

    def connect():
        writer = writers.pop(0) if writers else FakeWriter(FakeConnection([]), port=7102)
        if writer is None:
            raise ConnectionRefusedError("refused")
        return writer

    producer = Producer(connect, classify, lambda seq: ("PUBLISH", "ch", f"{seq} x"), rate=2000)
    producer.start()
    time.sleep(0.2)
    producer.stop()
    attempts = producer.publishes
    assert [(a.seq, a.outcome, a.error, a.reply) for a in attempts[:5]] == [
        (1, "ok", "", "1"),              # PUBLISH answered: 1 receiver
        (2, "info", "timeout", ""),      # sent, no answer: unknown; the producer connects again
        (3, "fail", "refused", ""),      # the connect failed
        (4, "fail", "refused", ""),      # an error reply (READONLY); it connects again
        (5, "ok", "", "1")]
    assert [port for _, port in producer.connections[:3]] == [7100, 7101, 7102]
    assert producer.failure is None
    assert all(a.invoked <= a.completed for a in attempts)
    assert [a.seq for a in attempts] == list(range(1, len(attempts) + 1))


def test_producer_keeps_its_rate():
    producer = Producer(lambda: FakeWriter(FakeConnection([])), classify, lambda seq: ("PUBLISH", "ch", "x"), rate=500)
    producer.start()
    time.sleep(0.5)
    producer.stop()
    expected = 500 * (producer.stopped_at - producer.started_at)
    assert 0.7 * expected <= producer.published <= expected + 2     # never ahead of its schedule


def test_a_producer_that_dies_says_why():
    def broken_classify(exc, connecting):
        raise KeyError("no such kind")

    producer = Producer(lambda: FakeWriter(FakeConnection([])), broken_classify, lambda seq: 1 / 0, rate=100)
    producer.start()
    time.sleep(0.05)
    producer.stop()
    assert "died at message 1" in producer.failure and "KeyError" in producer.failure


# ------------------------------------------------------------------ the lab file

def messages_lab(scenario_changes=None, workload=None):
    def mutate(lab):
        lab["topology"] = {"kind": "sentinel", "persistence": "none"}
        x = lab["scenarios"]["x"]
        x.pop("modes", None)
        x["workload"] = workload or {"name": "messages", "transport": "stream", "consumers": 2}
        x["steps"] = [{"probe": "start"}, {"kill_consumer": "c2"}, {"start_consumer": "c2"},
                      {"pause_consumer": "c1"}, {"resume_consumer": "c1"}, {"probe": "stop"}]
        x["expect"] = {"lost_messages": {"max": 0}}
        if scenario_changes:
            scenario_changes(x)
    return mutate


def test_a_messages_scenario_loads(write_lab):
    lab = parse_lab(write_lab(messages_lab()))
    assert lab.scenarios["x"].workload.name == "messages"
    assert lab.scenarios["x"].workload.options["consumers"] == 2


@pytest.mark.parametrize("changes, key, problem", [
    (lambda x: x["steps"].insert(1, {"kill_consumer": "c3"}), "steps[1].kill_consumer.consumer", "no consumer 'c3'"),
    (lambda x: x.update(workload={"name": "messages", "transport": "pubsub", "maxlen": 100}), "maxlen",
     "a Pub/Sub channel keeps nothing to trim"),
    (lambda x: x.update(workload={"name": "messages", "min_idle": "0ms"}), "min_idle", "at least 1ms"),
    (lambda x: x.update(workload="writes", expect={"lost": {"max": 0}}), "steps[1].kill_consumer",
     "acts on the messages workload"),
    (lambda x: x.update(expect={"lost": {"max": 0}}), "expect.lost", "is measured on a writes history"),
    (lambda x: x.update(workload={"name": "messages", "transport": "kafka"}), "probe", "transport must be one of"),
    (lambda x: x["steps"].insert(1, {"kill_consumer": {"consumer": "c1", "mid_batch": True}}),
     "steps[1].kill_consumer.mid_batch", "needs the workload's `work` > 0"),
])
def test_what_does_not_apply_is_refused(write_lab, changes, key, problem):
    with pytest.raises(LabFileError, match=problem) as caught:
        parse_lab(write_lab(messages_lab(changes)))
    assert key in str(caught.value)


def test_the_workload_refuses_a_cluster(write_lab):
    def as_cluster(lab):
        messages_lab()(lab)
        lab["topology"] = {"kind": "cluster", "persistence": "none"}
    with pytest.raises(LabFileError, match="talks to one master"):
        parse_lab(write_lab(as_cluster))


# ------------------------------------------------------------------ the consumer program

def test_consumer_reads_where_the_lab_is_from_the_kinds_environment():
    lab = _consumer.Lab({"LAB_SENTINELS": "127.0.0.1:7103,127.0.0.1:7104", "LAB_MASTER_NAME": "mymaster",
                         "LAB_NODES": "127.0.0.1:7100", "LAB_ADDRESS_MAP": "10.1.2.11:6379=127.0.0.1:7100"})
    assert lab.sentinels == [("127.0.0.1", 7103), ("127.0.0.1", 7104)]
    assert lab.remap == {"10.1.2.11:6379": ("127.0.0.1", 7100)}
    assert _consumer._number([b"n", b"17", b"p", b"xxx"]) == 17


def test_consumer_speaks_resp2():
    ours, theirs = socket.socketpair()
    conn = _consumer.Resp(ours, 7100)
    try:
        conn.send("XACK", "s", "g", b"1-0", 7)
        assert theirs.recv(1000) == b"*5\r\n$4\r\nXACK\r\n$1\r\ns\r\n$1\r\ng\r\n$3\r\n1-0\r\n$1\r\n7\r\n"
        assert not conn.readable(0)
        theirs.sendall(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$6\r\n17 xxx\r\n:3\r\n+OK\r\n$-1\r\n*-1\r\n"
                       b"*2\r\n$3\r\n0-0\r\n*0\r\n")
        assert conn.readable(1)
        assert conn.read() == [b"message", b"ch", b"17 xxx"]
        assert [conn.read() for _ in range(5)] == [3, b"OK", None, None, [b"0-0", []]]
        theirs.sendall(b"-NOGROUP No such key\r\n")
        with pytest.raises(_consumer.ReplyError, match="^NOGROUP"):
            conn.read()
        theirs.close()
        with pytest.raises(ConnectionError, match="closed"):
            conn.read()
    finally:
        conn.close()


def test_read_log_keeps_whole_lines_only(tmp_path):
    out = tmp_path / "c1-1.jsonl"
    out.write_text(json.dumps({"ev": "connected", "t": 1.5, "port": 7100}) + "\n"
                   + '{"n":3,"t":1.600000,"id":"5-0","claimed":1}\n' + '{"n":4,"t":1.7')
    life = Life("c1", 1, process=None, out=out, err=tmp_path / "err", started_at=0.0)
    deliveries, events = read_log(life)
    assert deliveries == [Delivery("c1", 3, 1.6, "5-0", True)]
    assert events == [ConsumerEvent("c1", 1.5, "connected", {"port": 7100})]


def test_last_receipt_is_that_of_the_last_message_line(tmp_path):
    out = tmp_path / "c1-1.jsonl"
    assert last_receipt(out) is None
    out.write_text('{"n":3,"t":1.600000,"id":"","claimed":0}\n{"n":4,"t":1.700000,"id":"","claimed":0}\n')
    assert last_receipt(out) == 1.7
    out.write_text(out.read_text() + json.dumps({"ev": "lost", "t": 1.8}) + "\n")
    assert last_receipt(out) is None


def _consumer_argv(tmp_path, parent: int) -> list[str]:
    return [sys.executable, "-I", "-S", _consumer.__file__, "--name", "c1", "--transport", "stream", "--key", "s",
            "--out", str(tmp_path / "c1.jsonl"), "--parent", str(parent)]


def test_consumer_stops_on_sigterm_and_says_so(tmp_path):
    env = {**os.environ, "LAB_NODES": "127.0.0.1:1"}            # nothing listens: it keeps trying
    process = subprocess.Popen(_consumer_argv(tmp_path, os.getpid()), env=env, start_new_session=True)
    deadline = time.monotonic() + 10
    while not (tmp_path / "c1.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    lines = [json.loads(line) for line in (tmp_path / "c1.jsonl").read_text().splitlines()]
    assert [line["ev"] for line in lines] == ["start", "stop"]


def test_consumer_dies_with_the_process_that_started_it(tmp_path):
    """A parent that is SIGKILLed cannot clean up: the kernel (PR_SET_PDEATHSIG) ends the consumer."""
    script = ("import os, subprocess, sys, time; "
              f"p = subprocess.Popen({_consumer_argv(tmp_path, 0)!r}[:-1] + [str(os.getpid())], "
              "env=dict(os.environ, LAB_NODES='127.0.0.1:1'), start_new_session=True); "
              "print(p.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while not (tmp_path / "c1.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _exists(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _exists(child), "the consumer outlived the process that started it"


def _exists(pid: int) -> bool:
    """True while `pid` is a live process (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
