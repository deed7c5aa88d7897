"""Commands on real containers: up/status/down, render and run by hand, bad input, and
cleanup after failures and Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engine.nodes import is_ready
from orchestrator.engine.poll import wait_until
from orchestrator.spec import load_lab
from orchestrator.engine.topology import LABEL_LAB
from orchestrator.kinds import derive_topology

from .conftest import PORT_BASE, lab_resources

ONE_SCENARIO_LAB = """
name: tiny
summary: one scenario in one mode, for tests
topology: {{kind: single, persistence: aof-always, modes: [aof-always]}}
scenarios:
  kill-restart:
    summary: kill and restart
    explain: test lab
    steps:
      - probe: start
      - wait: 1s
      - kill: master
      - start: master
      - wait_for: ready
      - wait: 1s
      - probe: stop
    expect:
      lost: {{{bound}}}
"""


def lab(args, image):
    return CliRunner().invoke(cli, ["--image", image, *args], catch_exceptions=False)


def test_up_status_down(image, no_leftovers):
    port = PORT_BASE + 10
    result = lab(["--port-base", str(port), "up", "persistence", "--mode", "rdb"], image)
    try:
        assert result.exit_code == 0, result.output
        assert f"redis-cli -p {port}" in result.output
        client = redis.Redis(port=port)
        assert client.ping()
        assert client.config_get("save") == {"save": "1 1"}
        status = lab(["status"], image)
        assert "persistence" in status.output and "redis-1" in status.output and "running" in status.output
    finally:
        down = lab(["down", "persistence"], image)
    assert down.exit_code == 0
    assert lab_resources(f"{LABEL_LAB}=persistence") == []


def test_rendered_project_runs_by_hand(image, tmp_path, no_leftovers):
    port = PORT_BASE + 20
    out = tmp_path / "out"
    result = lab(["--port-base", str(port), "render", "persistence", "--mode", "aof-always", "-o", str(out)], image)
    assert result.exit_code == 0, result.output
    compose = ["docker", "compose", "-f", str(out / "compose.yaml")]
    try:
        subprocess.run([*compose, "up", "-d"], check=True, capture_output=True)
        node = derive_topology(load_lab("persistence"), "aof-always", "manual", image, port_base=port).nodes[0]
        assert wait_until(lambda: is_ready(node), 20), "the hand-started project never answered"
        client = redis.Redis(port=port)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "1"], check=True, capture_output=True)


def test_port_in_use_is_one_clear_line(image, no_leftovers):
    port = PORT_BASE + 30
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = CliRunner().invoke(cli, ["--image", image, "--port-base", str(port), "run", "persistence", "kill-restart"])
    assert result.exit_code == 2
    assert f"port {port}" in result.output and "--port-base" in result.output
    assert "Traceback" not in result.output


def test_failing_step_cleans_up(image, tmp_path, no_leftovers):
    broken = tmp_path / "broken.yaml"
    broken.write_text(ONE_SCENARIO_LAB.format(bound="max: 0").replace(
        "      - kill: master\n", "      - wait_for: {condition: exited, timeout: 0.5s}\n"))
    result = CliRunner().invoke(cli, ["--image", image, "--port-base", str(PORT_BASE + 40), "run", str(broken),
                                      "kill-restart"])
    assert result.exit_code == 1, result.output     # a step that cannot complete is a deviation
    assert "was not exited within 0.5 s" in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_removes_the_lab(image, no_leftovers):
    argv = [sys.executable, "-m", "orchestrator.cli", "--image", image, "--port-base", str(PORT_BASE + 50),
            "run", "persistence", "kill-restart", "--mode", "aof-everysec"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not lab_resources(f"{LABEL_LAB}=persistence"):
        assert time.monotonic() < deadline and proc.poll() is None, "the lab never started"
        time.sleep(0.05)
    time.sleep(1.5)  # inside the scenario: the probe is writing
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert lab_resources(f"{LABEL_LAB}=persistence") == []


def test_sigterm_to_a_parallel_verify_removes_every_lab(image, no_leftovers):
    """SIGTERM to the main process alone (a CI timeout): it passes the signal on to its
    workers, each removes its lab, and nothing queued starts."""
    argv = [sys.executable, "-m", "orchestrator.cli", "--image", image, "--port-base", str(PORT_BASE + 90),
            "verify", "replication", "--jobs", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while len({c.split("-")[2] for c in _containers("replication")}) < 2:   # two runs started
        assert time.monotonic() < deadline and proc.poll() is None, "two labs never ran at once"
        time.sleep(0.05)
    time.sleep(1.0)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert time.monotonic() - started < 15, "the workers did not stop at once"
    assert lab_resources(f"{LABEL_LAB}=replication") == []


def _containers(lab: str) -> list[str]:
    done = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", f"label={LABEL_LAB}={lab}"],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_verify_own_lab_file_writes_junit_and_json(image, tmp_path, no_leftovers):
    good = tmp_path / "tiny.yaml"
    good.write_text(ONE_SCENARIO_LAB.format(bound="max: 0"))
    junit, json_file = tmp_path / "junit.xml", tmp_path / "result.json"
    result = lab(["--port-base", str(PORT_BASE + 60), "verify", str(good), "--junit", str(junit),
                  "--json", str(json_file)], image)
    assert result.exit_code == 0, result.output
    import json
    import xml.etree.ElementTree as ET

    (record,) = json.loads(json_file.read_text())
    assert record["lab"] == "tiny" and record["mode"] == "aof-always" and record["passed"] is True
    assert record["metrics"]["lost"] == 0 and record["metrics"]["acked"] > 0
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["kill-restart[aof-always]"]
    assert cases[0].find("failure") is None


def test_verify_exits_1_on_a_deviation(image, tmp_path, no_leftovers):
    wrong = tmp_path / "tiny.yaml"
    wrong.write_text(ONE_SCENARIO_LAB.format(bound="min: 1"))  # AOF loses nothing on a kill
    junit = tmp_path / "junit.xml"
    result = lab(["--port-base", str(PORT_BASE + 70), "verify", str(wrong), "--junit", str(junit)], image)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    failure = Path(junit).read_text()
    assert "<failure" in failure and "lost = 0, expected &gt;= 1" in failure


def test_ctrl_c_with_keep_says_the_lab_was_kept_and_lab_down_removes_it(image, no_leftovers):
    argv = [sys.executable, "-m", "orchestrator.cli", "--image", image, "--port-base", str(PORT_BASE + 55),
            "run", "persistence", "kill-restart", "--mode", "aof-everysec", "--keep"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not lab_resources(f"{LABEL_LAB}=persistence"):
        assert time.monotonic() < deadline and proc.poll() is None, "the lab never started"
        time.sleep(0.05)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "the lab was kept as asked (--keep)" in output and "removed" not in output.split("interrupted:")[1]
    assert lab_resources(f"{LABEL_LAB}=persistence"), "the kept lab is gone"
    command = output.split("remove it with `")[1].split("`")[0]          # lab down persistence --run <id>
    assert command.startswith("lab down persistence --run ")
    down = lab(["--port-base", str(PORT_BASE + 55), *command.split()[1:]], image)
    assert down.exit_code == 0, down.output
    assert lab_resources(f"{LABEL_LAB}=persistence") == []
