"""The external workload on real containers: programs that break the protocol on purpose end as
ERRORs that say why; `compare clients sentinel kill-master` with the reference clients; and no
client process outlives a run, whether it passes, errors or is interrupted with Ctrl-C.

The labs run under a name of their own (LAB_NAME), so these tests check exactly what they made
(`nothing_left`) and another test's cleanup of the usual lab names (conftest's no_leftovers
removes every resource of a tested lab that appeared meanwhile) cannot hit their runs, nor theirs
its runs."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import compare_clients as clients
from orchestrator.engine.lifecycle import RunSettings
from orchestrator.spec import load_lab
from orchestrator.suite import run_guarded
from orchestrator.workloads import external

from .conftest import PORT_BASE, lab_resources

LAB_NAME = "xclients"

REFERENCE = clients.CLIENTS_DIR / "redis_py_client.py"
LAB_CLI = Path(sys.executable).parent / "lab"

# Each program first writes its process id to the file named by its first argument.
PID = "import os, sys; open(sys.argv[1], 'w').write(str(os.getpid()))\n"
MISBEHAVING = {
    "bad-json": (PID + "print('SET ext:1 1 -> OK', flush=True)\nimport time; time.sleep(120)",
                 "broke the protocol: line 1 is not JSON"),
    "early-exit": (PID + textwrap.dedent("""
        import json, os, time
        for seq in range(1, 21):
            t = time.monotonic()
            print(json.dumps({"key": os.environ["LAB_KEY_PREFIX"] + str(seq), "invoke": t,
                              "complete": time.monotonic(), "outcome": "ok"}), flush=True)
        """), "exited on its own (exit code 0) after 20 attempts"),
    "no-output": (PID + "import time; time.sleep(120)", "reported no attempt (nothing on standard output)"),
}


def alive(pid: int, within_s: float = 2.0) -> bool:
    """Whether `pid` still runs `within_s` from now (SIGKILL is delivered asynchronously; a
    zombie waiting to be reaped counts as gone)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                running = stat.read().split()[2] != "Z"
        except FileNotFoundError:
            running = False
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.02)


def client_processes() -> list[str]:
    """Command lines of running processes that run a reference client program."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(clients.CLIENTS_DIR) in line:
                found.append(line)
    return found


def own(name: str):
    """The lab `name` under LAB_NAME: its resources carry redis-ha-lab.lab=xclients."""
    return dataclasses.replace(load_lab(name), name=LAB_NAME)


@pytest.fixture
def nothing_left(engine):
    """After the test: no container, network or volume of LAB_NAME (removed if there are, and the test fails)."""
    yield
    left = lab_resources(f"redis-ha-lab.lab={LAB_NAME}")
    if left:
        engine.remove_labelled(f"redis-ha-lab.lab={LAB_NAME}")
    assert not left, f"the test left lab resources behind: {left}"


def program(tmp_path: Path, name: str, body: str) -> tuple[str, Path]:
    script, pid_file = tmp_path / f"{name}.py", tmp_path / f"{name}.pid"
    script.write_text(body)
    return f"{sys.executable} {script} {pid_file}", pid_file


@pytest.mark.parametrize("name", list(MISBEHAVING))
def test_a_misbehaving_client_makes_the_run_an_error_that_says_why(name, image, tmp_path, monkeypatch, nothing_left):
    monkeypatch.setattr(external, "FIRST_ATTEMPT_WAIT_S", 2.0)    # how long start() waits for a first attempt
    body, reason = MISBEHAVING[name]
    command, pid_file = program(tmp_path, name, body)
    lab = clients.with_client(own("persistence"), "kill-restart", command)
    port = PORT_BASE + 500 + list(MISBEHAVING).index(name)
    result = run_guarded(lab, "kill-restart", "rdb", RunSettings(image=image, port_base=port))
    assert result.errored, f"{result.status}: {result.error}"
    assert reason in result.error
    assert not alive(int(pid_file.read_text())), "the client program outlived the run"


def test_a_client_that_measures_passes_and_is_gone_afterwards(image, tmp_path, nothing_left):
    command, pid_file = program(tmp_path, "good", PID + f"os.execv(sys.executable, [sys.executable, {str(REFERENCE)!r}])")
    lab = clients.with_client(own("persistence"), "kill-restart", command)
    # aof-always: lost is 0 by Redis' design there (everysec may lose a write postponed behind a
    # background fsync), so a lost write here is the client's or the tool's miscount
    result = run_guarded(lab, "kill-restart", "aof-always", RunSettings(image=image, port_base=PORT_BASE + 505))
    assert result.passed, f"{result.status}: {result.error} {[c for c in result.checks if not c.passed]}"
    assert result.metrics["acked"] > 100 and result.metrics["lost"] == 0
    assert any(e.what.startswith("client redis-py ") for e in result.events)
    assert not alive(int(pid_file.read_text()))


def test_ctrl_c_of_lab_run_ends_the_client_too(image, tmp_path, nothing_left):
    raw = yaml.safe_load(load_lab("persistence").path.read_text())
    command, pid_file = program(tmp_path, "interrupted",
                                PID + f"os.execv(sys.executable, [sys.executable, {str(REFERENCE)!r}])")
    raw["name"] = LAB_NAME
    raw["scenarios"]["kill-restart"]["workload"] = {"name": "external", "command": command}
    lab_file = tmp_path / f"{LAB_NAME}.yaml"
    lab_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    run = subprocess.Popen([str(LAB_CLI), "--port-base", str(PORT_BASE + 510), "--image", image, "run", str(lab_file),
                            "kill-restart", "--mode", "rdb"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "the client never started"
        time.sleep(1.0)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, output
    assert not alive(int(pid_file.read_text())), "the client program outlived an interrupted run"


def test_compare_clients_sentinel_kill_master(settings, nothing_left):
    available = [c for c in clients.reference_clients() if c.command]
    if len(available) < 3:
        pytest.skip("fewer than three reference clients can run here: "
                    + "; ".join(f"{c.name}: {c.skipped}" for c in clients.reference_clients() if c.skipped))
    run_settings = RunSettings(image=settings.image, port_base=PORT_BASE + 520)
    rows = clients.compare_clients(own("sentinel"), "kill-master",
                                   run=lambda lab, name, mode: run_guarded(lab, name, mode, run_settings))
    table = clients.format_clients_table(rows)
    assert [r.name for r in rows] == [clients.PROBE] + [c.name for c in clients.reference_clients()]
    measured = [r for r in rows if r.result is not None]
    assert len(measured) >= 4, table
    for row in measured:
        assert not row.result.errored, f"{row.name}: {row.result.error}"
        metrics = row.result.metrics
        assert metrics["unavailable_s"] is not None and metrics["unavailable_s"] >= 2, table
        assert metrics["acked_before_fault"] > 100 and metrics["failovers"] == 1, table
        if row.name != clients.PROBE:
            assert row.version and row.library == row.name, table
            assert clients.how_found(row.result), table
            assert row.library in table
    assert not client_processes(), "reference client programs outlived their runs"
