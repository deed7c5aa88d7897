"""The external workload's protocol: each JSON line a program prints is parsed and checked, and
whatever breaks the protocol (a line that is not JSON, an exit before the stop, no attempt,
times off the monotonic clock) becomes a failure that says which. The program here is a real
child process (a few lines of Python), the lab a fake: no Docker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest

from orchestrator.compare_clients import (ClientRun, behind_probe, collapse, format_clients_table, how_found,
                                          sequence_of, with_client)
from orchestrator.events import Event
from orchestrator.measure.result import Result
from orchestrator.spec import WORKLOADS, load_lab
from orchestrator.workloads import external
from orchestrator.workloads.external import (SEQUENCE, External, Hello, Note, ProtocolError, Reported, Transcript,
                                             build_history, describe_sequence, error_kind, error_sequence, parse_line)
from orchestrator.workloads.writes import FAIL, INFO, OK

PREFIX = "ext:t1:"
START = 1000.0
NOW = 1010.0


def line(**fields) -> str:
    return json.dumps(fields)


def attempt(key="ext:t1:1", invoke=1001.0, complete=1001.001, outcome="ok", **more) -> str:
    return line(key=key, invoke=invoke, complete=complete, outcome=outcome, **more)


# ------------------------------------------------------------------ one line

def test_an_attempt_line_is_parsed():
    parsed = parse_line(attempt(value="1", error="", server="127.0.0.1:7101"), 2, START, NOW, PREFIX)
    assert parsed == Reported(key="ext:t1:1", value="1", invoked=1001.0, completed=1001.001, outcome=OK, error="",
                              server="127.0.0.1:7101")


def test_the_client_line_and_a_note_are_parsed():
    assert parse_line(line(client="ioredis", version="6.0.0"), 1, START, NOW, PREFIX) == Hello("ioredis", "6.0.0")
    assert parse_line(line(note="reconnecting in 50 ms", at=1002.5), 3, START, NOW, PREFIX) == \
        Note(1002.5, "reconnecting in 50 ms")


@pytest.mark.parametrize("text, problem", [
    ("SET ok", "line 4 is not JSON"),
    ("[1, 2]", "line 4 is JSON but not an object"),
    (line(hello="there"), "has none of `key`"),
    (attempt(outcome="maybe"), "`outcome` must be one of ok, fail, info"),
    (attempt(key="probe:1"), "does not start with LAB_KEY_PREFIX"),
    (attempt(key=7), "`key` must be a string"),
    (line(key="ext:t1:1", complete=1001.0, outcome="ok"), "`invoke` is missing"),
    (attempt(invoke="1001"), "`invoke` must be a number of seconds"),
    (attempt(value=12), "`value` must be a string"),
])
def test_a_malformed_line_says_which_line_and_what(text, problem):
    with pytest.raises(ProtocolError, match=problem) as raised:
        parse_line(text, 4, START, NOW, PREFIX)
    assert str(raised.value).startswith("line 4")


@pytest.mark.parametrize("invoke, complete, problem", [
    (time.time(), time.time(), "after the line was read"),              # wall clock
    (999.0, 1001.0, "before the program was started"),                 # before it started
    (1001.0, 1001.0 * 1000, "after the line was read"),                # milliseconds
    (1002.0, 1001.0, "`complete` 1001.000000 is before `invoke`"),
])
def test_times_off_the_monotonic_clock_are_refused(invoke, complete, problem):
    with pytest.raises(ProtocolError, match=problem):
        parse_line(attempt(invoke=invoke, complete=complete), 5, START, NOW, PREFIX)


def test_times_within_the_rounding_slack_of_the_bounds_are_accepted():
    parsed = parse_line(attempt(invoke=START - 0.001, complete=NOW + 0.001), 5, START, NOW, PREFIX)
    assert parsed.invoked == START - 0.001


# ------------------------------------------------------------------ a transcript

def transcript_of(*lines: str) -> Transcript:
    transcript = Transcript(START, PREFIX, clock=lambda: NOW)
    for text in lines:
        transcript.feed(text + "\n")
    return transcript


def test_a_transcript_keeps_attempts_notes_and_the_client_line():
    t = transcript_of(line(client="redis-py", version="8.1.0"), attempt(), "",
                      attempt(key="ext:t1:2", outcome="fail", error="READONLY You can't write"),
                      line(note="ready", at=1003.0))
    assert t.problem is None
    assert t.hello == Hello("redis-py", "8.1.0")
    assert [a.key for a in t.attempts] == ["ext:t1:1", "ext:t1:2"]
    assert t.acked == 1 and len(t.notes) == 1


def test_after_the_first_problem_nothing_more_is_kept():
    t = transcript_of(attempt(), "garbage", attempt(key="ext:t1:2"))
    assert t.problem.startswith("line 2 is not JSON")
    assert len(t.attempts) == 1


@pytest.mark.parametrize("lines, problem", [
    ((attempt(), attempt()), "line 2: key 'ext:t1:1' was already reported on line 1"),
    ((attempt(), line(client="late", version="1")), "line 2: the `client` line must be the first line"),
])
def test_a_transcript_refuses_a_repeated_key_and_a_late_client_line(lines, problem):
    assert transcript_of(*lines).problem.startswith(problem)


# ------------------------------------------------------------------ error kinds and the history

@pytest.mark.parametrize("text, kind", [
    ("ReplyError: READONLY You can't write against a read only replica.", "READONLY"),
    ("ResponseError: CLUSTERDOWN The cluster is down", "CLUSTERDOWN"),
    ("ConnectionError: Error 111 connecting to 127.0.0.1:7100. Connection refused.", "connection refused"),
    ("Error: connect ECONNREFUSED 127.0.0.1:7100", "connection refused"),
    ("TimeoutError: Timeout reading from socket", "timeout"),
    ("SocketClosedUnexpectedlyError: Socket closed unexpectedly", "connection closed"),
    ("Predis\\Connection\\ConnectionException: Error while reading line from the server.", "connection closed"),
    ("MasterNotFoundError: No master found for 'mymaster'", "no master"),
    ("ReplyError: ERR unknown command", "ERR"),
    ("", "unspecified"),
])
def test_error_texts_get_short_kinds(text, kind):
    assert error_kind(text) == kind


def reported(seq: int, invoke: float, complete: float, outcome: str = OK, error: str = "") -> Reported:
    return Reported(f"ext:t1:{seq}", str(seq), invoke, complete, outcome, error)


def test_the_history_is_in_invoke_order_with_short_error_kinds():
    t = Transcript(START, PREFIX)
    t.attempts = [reported(2, 1002.0, 1002.1, FAIL, "ReplyError: READONLY x"), reported(1, 1001.0, 1001.1)]
    built = build_history(t, [], stopped_at=1003.0)
    assert [(a.seq, a.outcome, a.error) for a in built.history.attempts] == [(1, OK, ""), (2, FAIL, "READONLY")]
    assert built.keys == {1: "ext:t1:1", 2: "ext:t1:2"} and built.values[2] == "2"
    assert built.history.stopped_at == 1003.0 and built.history.readback.lost == []


def test_the_error_sequence_is_the_outage_the_metric_measures():
    t = Transcript(START, PREFIX)
    t.attempts = [reported(1, 1001.0, 1001.1), reported(2, 1001.2, 1001.3, INFO, "connection reset"),
                  *[reported(i, 1001.3 + i / 10, 1001.35 + i / 10, FAIL, "Connection refused") for i in range(3, 6)],
                  reported(6, 1002.0, 1002.05, FAIL, "READONLY You can't write"), reported(7, 1002.1, 1002.2)]
    history = build_history(t, [], 1003.0).history
    runs = error_sequence(history, {"fault": (1001.15, 1001.15)})
    assert runs == [("connection reset", 1, 0.0), ("connection refused", 3, 0.2), ("READONLY", 1, 0.0)]
    assert describe_sequence(runs, True) == ("connection reset x1 (0.00 s), connection refused x3 (0.20 s), "
                                             "READONLY x1 (0.00 s), then ok")


# ------------------------------------------------------------------ a real program, a fake lab

class FakeKind:
    def client_env(self, ctx):
        return {"LAB_KIND": "single", "LAB_NODES": "127.0.0.1:1", "LAB_MASTER": "127.0.0.1:1", "LAB_ADDRESS_MAP": ""}

    def key_ranges(self, ctx):
        return []


def fake_ctx():
    return SimpleNamespace(kind=FakeKind(), topo=SimpleNamespace(run_id="t1"), clock=time.monotonic, marks={},
                           t0=time.monotonic())


GOOD = """
    import json, os, time
    print(json.dumps({"client": "test", "version": "1"}), flush=True)
    seq = 0
    while True:
        seq += 1
        t = time.monotonic()
        print(json.dumps({"key": os.environ["LAB_KEY_PREFIX"] + str(seq), "invoke": t,
                          "complete": time.monotonic(), "outcome": "ok"}), flush=True)
        time.sleep(0.01)
"""


def program(tmp_path, body: str) -> str:
    path = tmp_path / "client.py"
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


def run_workload(command: str, seconds: float = 0.5) -> External:
    workload = External(fake_ctx(), {"command": command})
    workload.start()
    try:
        time.sleep(seconds)
    finally:
        workload.stop()
    return workload


def test_a_well_behaved_program_is_measured_and_stopped(tmp_path):
    workload = run_workload(program(tmp_path, GOOD))
    assert workload.failure is None
    assert workload.client == Hello("test", "1")
    assert len(workload.transcript.attempts) >= 5
    assert not workload.program.alive
    assert workload.window[0] <= workload.transcript.attempts[0].invoked and workload.window[1] is not None


@pytest.mark.parametrize("body, problem", [
    ('print("this is not json", flush=True)\nimport time; time.sleep(5)',
     "broke the protocol: line 1 is not JSON"),
    ('import sys; print("starting", file=sys.stderr); sys.exit(3)',
     r"exited on its own \(exit code 3\) after 0 attempts.*starting"),
    ("import time; time.sleep(5)", "reported no attempt \\(nothing on standard output\\)"),
    ('import json, time; print(json.dumps({"key": "ext:t1:1", "invoke": time.time(), "complete": time.time(), '
     '"outcome": "ok"}), flush=True); time.sleep(5)', "is after the line was read"),
])
def test_a_misbehaving_program_gives_a_failure_that_says_which(tmp_path, monkeypatch, body, problem):
    monkeypatch.setattr(external, "FIRST_ATTEMPT_WAIT_S", 1.0)     # start() waits that long for a first attempt
    workload = run_workload(program(tmp_path, body), seconds=0.3)
    assert workload.failure is not None
    assert re.search(problem, workload.failure), workload.failure


def test_a_program_that_ignores_sigterm_is_killed_with_its_children(tmp_path):
    body = GOOD.replace("import json, os, time", "import json, os, signal, subprocess, sys, time\n"
                        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                        "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                        "    open(os.environ['CHILD_PID_FILE'], 'w').write(str(child.pid))")
    os.environ["CHILD_PID_FILE"] = str(tmp_path / "child.pid")
    try:
        started = time.monotonic()
        workload = run_workload(program(tmp_path, body))
        took = time.monotonic() - started
    finally:
        del os.environ["CHILD_PID_FILE"]
    assert workload.failure is None
    assert not workload.program.alive
    assert 2.0 <= took < 5.0            # SIGTERM, 2 s of grace, SIGKILL
    child = int((tmp_path / "child.pid").read_text())
    assert _gone_soon(child), "the program's own child outlived it"


def _gone_soon(pid: int, within_s: float = 2.0) -> bool:
    """SIGKILL is delivered asynchronously: give the kernel a moment."""
    deadline = time.monotonic() + within_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:       # a zombie waiting for its parent counts as gone
        return stat.read().split()[2] != "Z"


def test_the_program_dies_with_the_process_that_started_it(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from types import SimpleNamespace
        sys.path.insert(0, {str(tmp_path.parent)!r})
        from orchestrator.workloads.external import Program, Transcript
        t = Transcript(time.monotonic(), "ext:")
        p = Program([sys.executable, "-c", "import time; time.sleep(60)"], {{}}, t)
        p.start()
        print(p.process.pid, flush=True)
        time.sleep(60)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone_soon(child, within_s=5.0)


def test_a_missing_program_stops_the_run_with_its_name():
    from orchestrator.errors import ScenarioAborted
    with pytest.raises(ScenarioAborted, match="'no-such-client-program' was not found"):
        External(fake_ctx(), {"command": "no-such-client-program --flag"}).start()


@pytest.mark.parametrize("options, problem", [
    ({"command": "node 'unclosed"}, "cannot be split"),
    ({"command": "  "}, "names no program"),
    ({"command": "x", "run_limit": "500ms"}, "at least 1s"),
])
def test_options_are_checked_before_anything_runs(options, problem):
    merged = {"await_recovery": "30s", "run_limit": "10m", **options}
    assert problem in External.check_options(merged, None, {})[1]


def test_a_lab_file_may_name_the_external_workload(write_lab):
    from orchestrator.spec import parse_lab

    def external(lab):
        lab["scenarios"]["x"]["workload"] = {"name": "external", "command": "node client.js"}
    lab = parse_lab(write_lab(external))
    assert lab.scenarios["x"].workload.name == "external"
    assert "external" in WORKLOADS


# ------------------------------------------------------------------ the comparison table

def result_with(unavailable, failover, sequence=None, kinds=None, status="pass", client=None, checks=()):
    events = []
    if client:
        events.append(Event(0.1, f"client {client[0]} {client[1]}", "client"))
    if sequence:
        events.append(Event(2.0, SEQUENCE + sequence, "client"))
    return Result(lab="sentinel", scenario="kill-master", mode="aof-everysec", image="i", summary="", explain="",
                  status=status, duration_s=20.0, metrics={"unavailable_s": unavailable, "failover_s": failover,
                                                           "lost": 0, "indeterminate": 0},
                  checks=list(checks), events=events, error_kinds=kinds or {})


def test_the_table_compares_each_client_with_the_probe_beyond_the_failover():
    probe = ClientRun("lab probe", None, result=result_with(3.3, 3.0))
    slow = ClientRun("ioredis", "node x.js", result=result_with(
        4.9, 3.2, "connection refused x12 (1.50 s), then ok", {"connection refused": 12}, client=("ioredis", "6.0.0")))
    skipped = ClientRun("predis", None, skipped="PHP (`php`) is not installed")
    table = format_clients_table([probe, slow, skipped])
    assert behind_probe(slow.result, probe.result) == pytest.approx(1.4)
    row = next(text for text in table.splitlines() if "| ioredis" in text)
    assert "6.0.0" in row and "+1.40" in row and "connection refused 12" in row
    assert "kept reconnecting to the old address" in row
    assert "[2] ioredis: 1.40 s longer than the probe: retryStrategy" in table
    assert "[3] predis: skipped: PHP (`php`) is not installed" in table


def test_a_client_within_a_quarter_second_of_the_probe_needs_no_change():
    probe = result_with(3.3, 3.0)
    fast = ClientRun("redis-py", "python x.py", result=result_with(3.4, 3.05, "no master x3 (0.20 s), then ok",
                                                                   client=("redis-py", "8.1.0")))
    assert "nothing to change" in format_clients_table([ClientRun("lab probe", None, result=probe), fast])


def test_how_the_client_found_the_new_master_comes_from_its_error_sequence():
    runs, recovered = sequence_of(result_with(4, 3, "connection closed x1 (0.00 s), READONLY x2 (0.01 s), then ok"))
    assert runs == [("connection closed", 1, 0.0), ("READONLY", 2, 0.01)] and recovered
    assert "was told READONLY by the demoted master" in how_found(result_with(4, 3, "READONLY x2 (0.01 s), then ok"))
    assert "never wrote again" in how_found(result_with(None, 3, "timeout x1 (30.00 s), no ack by the end"))
    assert collapse([("a", 1, 0.1), ("b", 2, 0.2), ("a", 3, 0.3)]) == [("a", 4, 0.4), ("b", 2, 0.2)]


def test_a_client_replaces_only_the_workload_of_its_scenario():
    lab = load_lab("sentinel")
    changed = with_client(lab, "kill-master", "node client.js")
    assert changed.scenarios["kill-master"].workload.name == "external"
    assert changed.scenarios["kill-master"].workload.options == {"command": "node client.js"}
    assert changed.scenarios["kill-master"].steps == lab.scenarios["kill-master"].steps
    assert changed.scenarios["pause-master"] is lab.scenarios["pause-master"]


def test_a_client_whose_runtime_is_missing_is_skipped_with_the_reason(monkeypatch, tmp_path):
    from orchestrator import compare_clients as clients
    monkeypatch.setenv("LAB_CLIENTS_DIR", str(tmp_path))          # no node_modules there
    found = {c.name: c for c in clients.reference_clients()}
    assert "npm package 'ioredis' is not installed in" in found["ioredis"].skipped
    assert found["ioredis"].command is None
    assert found["redis-py"].command and not found["redis-py"].skipped
    monkeypatch.setenv("PATH", str(tmp_path))                      # neither node nor php on PATH
    found = {c.name: c for c in clients.reference_clients()}
    assert found["node-redis"].skipped.startswith("Node.js (`node`) is not installed")
    assert found["predis"].skipped.startswith("PHP (`php`) is not installed")


def test_compare_runs_the_probe_first_then_each_client_and_lists_the_skipped(monkeypatch, tmp_path):
    from orchestrator import compare_clients as clients
    monkeypatch.setenv("LAB_CLIENTS_DIR", str(tmp_path))
    ran = []

    def run(lab, name, mode):
        ran.append(lab.scenarios[name].workload)
        return result_with(3.3, 3.0)
    rows = clients.compare_clients(load_lab("sentinel"), "kill-master", run, commands=["./my-client --fast"])
    assert [r.name for r in rows] == ["lab probe", "redis-py", "ioredis", "node-redis", "predis", "my-client"]
    assert ran[0].name == "writes" and all(w.name == "external" for w in ran[1:])
    assert ran[-1].options == {"command": "./my-client --fast"}
    assert {"ioredis", "node-redis"} <= {r.name for r in rows if r.skipped}
    assert all(r.skipped for r in rows if r.result is None)
