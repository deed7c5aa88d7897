"""`lab compare messaging`'s table: faults as rows, Pub/Sub and Streams as columns."""

from __future__ import annotations

from orchestrator.compare_messaging import fault_of, format_messaging_compare, transport_of
from orchestrator.events import Event
from orchestrator.measure.result import Result


def result(scenario, fault_step, status="pass", error="", **metrics) -> Result:
    events = [Event(0.0, "lab up: redis-1 ready (none)", "tool"), Event(0.5, "messages workload starts", "tool"),
              Event(0.6, "wait 1.5s", "tool")]
    if fault_step:
        events.append(Event(2.1, fault_step, "tool"))
    values = {"published": 5000, "delivered": 5000, "lost_messages": 0, "duplicates": 0, "redelivered": 0,
              "max_delivery_lag_s": 0.12, "consumer_outage_s": 0.2, "published_per_s": 998.7, "pending_at_end": None,
              "trimmed": None}
    values.update(metrics)
    return Result(lab="messaging", scenario=scenario, mode="none", image="redis", summary="", explain="",
                  status=status, duration_s=12.0, metrics={} if status == "error" else values, checks=[],
                  events=events, error=error)


def test_transport_and_fault_come_from_the_name_and_the_timeline():
    r = result("stream-failover", "kill master (redis-1)")
    assert transport_of(r) == "stream" and fault_of(r) == "kill master"
    assert transport_of(result("other-thing", None)) is None
    assert fault_of(result("pubsub-quiet", None)) == "quiet"


def test_one_row_per_fault_with_both_transports():
    results = [result("pubsub-subscriber-restart", "kill_consumer c1 True", lost_messages=2419, published=5008),
               result("stream-consumer-crash", "kill_consumer c1 True", duplicates=110, redelivered=110, pending_at_end=0,
                      trimmed=0),
               result("stream-slow-consumer-maxlen", "pause_consumer c1", lost_messages=1664, trimmed=1664,
                      pending_at_end=0),
               result("pubsub-slow-subscriber", "pause_consumer c1", status="fail", lost_messages=2078)]
    text = format_messaging_compare(results)
    table = text.split("\n\n")[0]
    rows = [line for line in table.splitlines() if line.startswith("| kill_consumer") or line.startswith("| pause")]
    assert len(rows) == 2
    assert "lost 2,419 of 5,008 published" in rows[0] and "lost 0 of 5,000 published" in rows[0]
    assert "lost 2,078 of 5,000 published" in rows[1] and "lost 1,664 of 5,000 published" in rows[1]
    assert "(1,664 trimmed by MAXLEN)" in table
    assert "duplicates 110, redelivered 110" in table
    assert "FAIL" in table and "pubsub-subscriber-restart" in table and "stream-consumer-crash" in table
    assert text.count("pending at the end 0") == 2      # streams only
    assert "at 999 msg/s" in table


def test_repeated_runs_show_ranges_and_errors_say_so():
    results = [result("pubsub-failover", "kill master (redis-1)", lost_messages=24),
               result("pubsub-failover", "kill master (redis-2)", lost_messages=150, max_delivery_lag_s=0.31),
               result("stream-failover", None, status="error", error="no master was ready")]
    table = format_messaging_compare(results)
    assert "lost 24-150 of 5,000 published" in table and "max lag 0.12-0.31 s" in table and "2 runs" in table
    assert "ERROR: no master was ready" in table
