"""The messaging lab on real containers: every scenario once (runs in parallel, as `lab verify`
runs them), then assertions on what the consumers recorded; and no consumer process outlives
a run, whether it passes, fails at a step, or is interrupted with Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.compare_messaging import format_messaging_compare
from orchestrator.engine.topology import LABEL_LAB
from orchestrator.spec import load_lab
from orchestrator.suite import plan
from orchestrator.workloads._consumers import PROGRAM

from .conftest import PORT_BASE, event_times, lab_resources, step_time, why_not_passed

LAB = load_lab("messaging")
RUNS = [scenario for _, scenario, _ in plan([LAB])]
STEP_FAILS_PORT = PORT_BASE + 440
CTRL_C_PORT = PORT_BASE + 460
SURVIVOR_PORT = PORT_BASE + 480

SURVIVOR_LAB = """
name: messaging
summary: two stream consumers on one node, for tests
topology: {kind: single, persistence: none}
scenarios:
  takeover:
    summary: SIGKILL one of two consumers of a group mid-batch; the other claims its entries
    explain: test lab
    workload: {name: messages, transport: stream, rate: 500, work: 50ms, consumers: 2, min_idle: 500ms}
    steps:
      - probe: start
      - wait: 1s
      - kill_consumer: {consumer: c2, mid_batch: true}
      - wait: 1.5s
      - probe: stop
    expect:
      lost_messages: {max: 0}
"""

FAILING_STEP_LAB = """
name: messaging
summary: a messages workload whose scenario fails at a step, for tests
topology: {kind: sentinel, persistence: none}
scenarios:
  broken:
    summary: a wait that cannot be met while consumers run
    explain: test lab
    workload: {name: messages, transport: stream, consumers: 2}
    steps:
      - probe: start
      - wait: 1s
      - wait_for: {condition: exited, target: redis-2, timeout: 0.5s}
      - probe: stop
    expect:
      lost_messages: {max: 0}
"""


def consumer_processes(ports) -> set[int]:
    """Live consumer processes (`_consumer.py`) of labs on `ports` (their LAB_NODES say where)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(PROGRAM) not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            env = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0")
                       if "=" in item)
        except OSError:
            continue
        nodes = env.get("LAB_NODES", "")
        if any(f"127.0.0.1:{port}" in nodes.split(",") for port in ports):
            found.add(int(proc.name))
    return found


@pytest.fixture(scope="module")
def results(verified):
    """This lab's runs of the one verify-like run of every lab (conftest.verified); none of their
    consumer processes may outlive them."""
    assert not consumer_processes(range(PORT_BASE, PORT_BASE + 200)), "consumer processes outlived their runs"
    return {r.scenario: r for r in verified if r.lab == "messaging"}


@pytest.mark.parametrize("scenario", RUNS)
def test_scenario_meets_its_expectation(results, scenario):
    result = results[scenario]
    assert result.passed, why_not_passed(result)
    m = result.metrics
    # The producer paces itself (tests/unit: test_producer_keeps_its_rate) and never outruns
    # the rate asked; how close it gets depends on the host: 113-1000 msg/s before the fault
    # with three labs at once on two busy cores. The verdicts' own bounds need the rate only
    # during the fault (the pubsub loss of >= 1000 messages in ~2 s), so no floor is asserted.
    assert 0 < m["published_per_s"] <= 1000 * 1.05, "the producer did not pace itself at the rate asked"
    assert m["delivered"] + m["lost_messages"] >= m["published"] - 5, "accounting does not add up"


def test_a_dead_subscriber_misses_exactly_what_was_published_while_it_was_gone(results):
    result = results["pubsub-subscriber-restart"]
    m = result.metrics
    killed, restarted = step_time(result, "kill_consumer c1"), step_time(result, "start_consumer c1")
    back = min(t for t in event_times(result, "client", "consumer c1 connected to") if t > restarted)
    lost_t = result.timeline["lost_acks_t"]
    assert len(lost_t) == m["lost_messages"] > 0
    # every lost message was acknowledged between the subscriber's last receipt and its return
    last = max(t for t in event_times(result, "client", "last receipt before the fault"))
    assert last - 0.05 <= min(lost_t) and max(lost_t) <= back + 0.05
    # and nearly everything published while it was dead is lost: dead time x rate
    assert m["lost_messages"] >= 0.8 * m["published_per_s"] * (back - killed)
    assert m["duplicates"] == 0 and m["redelivered"] == 0


def test_a_crashed_stream_consumer_loses_nothing_and_processes_its_batch_twice(results):
    result = results["stream-consumer-crash"]
    m = result.metrics
    assert m["lost_messages"] == 0 and m["pending_at_end"] == 0
    assert 0 < m["duplicates"] <= m["redelivered"]
    claims = [t for t in event_times(result, "client", "consumer c1 claimed") if t > step_time(result, "start_consumer c1")]
    assert claims, "the restarted consumer never claimed the pending batch"
    # the backlog waited for the restart
    assert m["max_delivery_lag_s"] >= step_time(result, "start_consumer c1") - step_time(result, "kill_consumer c1")


def test_maxlen_trims_what_a_stalled_consumer_had_not_read(results):
    result = results["stream-slow-consumer-maxlen"]
    m = result.metrics
    assert m["trimmed"] == m["lost_messages"] > 0
    resumed = step_time(result, "resume_consumer c1")
    assert max(result.timeline["lost_acks_t"]) < resumed, "an entry published after the stall was lost"
    assert m["duplicates"] == 0 and m["pending_at_end"] == 0


def test_a_stalled_subscriber_is_cut_off_at_its_output_buffer_limit(results):
    result = results["pubsub-slow-subscriber"]
    paused, resumed = step_time(result, "pause_consumer c1"), step_time(result, "resume_consumer c1")
    closes = [e.t for e in result.events if e.source == "server" and "output buffer limit" in e.what]
    assert closes and paused < closes[0] < resumed, "Redis did not close the stalled subscriber"
    lost_t = result.timeline["lost_acks_t"]
    assert lost_t and paused - 0.5 <= min(lost_t) and max(lost_t) <= resumed + 1.0
    assert result.metrics["max_delivery_lag_s"] >= 0.5 * (resumed - paused)    # the kernel's backlog, read late


@pytest.mark.parametrize("scenario", ["pubsub-failover", "stream-failover"])
def test_producer_and_consumers_follow_a_failover(results, scenario):
    result = results[scenario]
    assert result.metrics["failovers"] == 1
    new = [node for node, role in result.roles.items() if role == "master"]
    assert new and new[0] != "redis-1"
    assert event_times(result, "client", f"consumer c1 connected to {new[0]}")
    assert result.metrics["final_delivered_per_s"] > 0


def test_stream_failover_keeps_the_group_whole(results):
    m = results["stream-failover"].metrics
    assert m["pending_at_end"] == 0
    assert m["redelivered"] >= m["duplicates"]


def test_compare_table_has_a_row_per_fault(results):
    table = format_messaging_compare(list(results.values())).split("\n\n")[0]
    for fault in ("kill_consumer c1", "pause_consumer c1", "kill master"):
        assert f"| {fault}" in table
    assert "ERROR" not in table


def test_a_surviving_consumer_claims_what_a_dead_one_left_pending(image, tmp_path, no_leftovers):
    lab = tmp_path / "messaging.yaml"
    lab.write_text(SURVIVOR_LAB)
    out = tmp_path / "result.json"
    result = CliRunner().invoke(cli, ["--image", image, "--port-base", str(SURVIVOR_PORT), "run", str(lab), "takeover",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    m = data["metrics"]
    assert m["lost_messages"] == 0 and m["pending_at_end"] == 0
    assert 0 < m["duplicates"] <= m["redelivered"]
    killed = next(e["t"] for e in data["events"] if e["what"].startswith("kill_consumer c2"))
    claims = [e["t"] for e in data["events"] if e["what"].startswith("consumer c1 claimed")]
    assert claims and claims[0] - killed >= 0.5 - 0.05, "claimed before min_idle had passed"
    assert not consumer_processes([SURVIVOR_PORT])


# ------------------------------------------------------------------ no consumer outlives a run

def test_a_failing_step_stops_the_consumers(image, tmp_path, no_leftovers):
    broken = tmp_path / "messaging.yaml"
    broken.write_text(FAILING_STEP_LAB)
    result = CliRunner().invoke(cli, ["--image", image, "--port-base", str(STEP_FAILS_PORT), "run", str(broken),
                                      "broken"])
    assert result.exit_code == 1, result.output
    assert "was not exited within 0.5 s" in result.output
    assert not consumer_processes(range(STEP_FAILS_PORT, STEP_FAILS_PORT + 6))


def test_ctrl_c_stops_the_consumers_and_removes_the_lab(image, no_leftovers):
    ports = range(CTRL_C_PORT, CTRL_C_PORT + 6)
    argv = [sys.executable, "-m", "orchestrator.cli", "--image", image, "--port-base", str(CTRL_C_PORT),
            "run", "messaging", "stream-consumer-crash"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not consumer_processes(ports):
        assert time.monotonic() < deadline and proc.poll() is None, "no consumer ever started"
        time.sleep(0.05)
    time.sleep(1.0)          # the producer is publishing, the consumer receiving
    running = consumer_processes(ports)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert not consumer_processes(ports), f"consumers {running} outlived the interrupted run"
    assert lab_resources(f"{LABEL_LAB}=messaging") == []
