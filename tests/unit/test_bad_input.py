"""Bad input is caught before anything starts (issue 8): one line saying what is wrong and how
to fix it, exit code 2, no traceback, no container. Lab files that would have run wrongly are
refused by `lab validate` with the file and the key."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import LabFileError
from orchestrator.spec import parse_lab

from .helpers import refused


@pytest.fixture
def invoke():
    def run(*args):
        return CliRunner().invoke(cli, list(args))
    return run


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(lines) == 1, result.output
    return lines[0]


def _steps(d):
    return d["scenarios"]["x"]["steps"]


def _scenario(d):
    return d["scenarios"]["x"]


def _kind(kind, **fields):
    def mutate(d):
        d["topology"] = {"kind": kind, "persistence": "rdb", **fields}
        _scenario(d).pop("modes", None)
    return mutate


def _then(*mutations):
    def mutate(d):
        for m in mutations:
            m(d)
    return mutate


# ------------------------------------------------------------------ the file itself

def test_invalid_utf8_names_the_line(write_lab, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: mini\nsummary: caf\xe9\n")
    with pytest.raises(LabFileError) as caught:
        parse_lab(path)
    assert caught.value.key == "line 2"
    assert "not UTF-8" in str(caught.value)


def test_pathological_nesting_is_one_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(LabFileError, match="nested too deeply|not valid YAML"):
        parse_lab(path)


def test_a_key_given_twice_is_refused_with_both_lines(write_lab):
    path = write_lab(text="name: mini\nsummary: one\nsummary: two\ntopology: {kind: single}\nscenarios: {}\n")
    with pytest.raises(LabFileError) as caught:
        parse_lab(path)
    assert caught.value.key == "line 3"
    assert "key 'summary' is given twice (first on line 2)" in str(caught.value)


def test_a_duplicate_key_deep_inside_is_refused(write_lab):
    text = ("name: mini\nsummary: s\ntopology: {kind: single}\nscenarios:\n  x:\n    summary: a\n    explain: b\n"
            "    steps: [{probe: start}, {kill: master}]\n    expect: {lost: {max: 0, max: 5}}\n")
    with pytest.raises(LabFileError, match="'max' is given twice"):
        parse_lab(write_lab(text=text))


def test_a_huge_file_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: mini\n" + "#" * (2 << 20) + "\n")
    with pytest.raises(LabFileError, match="at most"):
        parse_lab(path)


# ------------------------------------------------------------------ typed arguments, never coerced

REFUSED = [
    # id, mutation, key, words
    ("fix-as-a-string", lambda d: _steps(d).__setitem__(2, {"check_aof": {"target": "master", "fix": "no"}}),
     "scenarios.x.steps[2].check_aof", "fix must be true or false"),
    ("sub-second-stop-timeout", lambda d: _steps(d).__setitem__(2, {"stop": {"target": "master", "timeout": "500ms"}}),
     "scenarios.x.steps[2].stop", "not a whole number of seconds"),
    ("fractional-stop-timeout", lambda d: _steps(d).__setitem__(2, {"stop": {"target": "master", "timeout": 1.5}}),
     "scenarios.x.steps[2].stop", "not a whole number of seconds"),
    ("bytes-as-text", lambda d: _steps(d).__setitem__(2, {"truncate_aof": {"target": "master", "bytes": "137"}}),
     "scenarios.x.steps[2].truncate_aof", "whole number"),
    ("nan-bound", lambda d: _scenario(d).update(expect={"lost": {"min": float("nan")}}),
     "scenarios.x.expect.lost.min", "finite"),
    ("inf-bound", lambda d: _scenario(d).update(expect={"lost": {"max": float("inf")}}),
     "scenarios.x.expect.lost.max", "finite"),
    ("quoted-boolean-config", lambda d: d["topology"].update(config={"appendonly": True}),
     "topology.config.appendonly", "strings or numbers"),
    ("replicas-as-text", _kind("replication", replicas="2"), "topology.replicas", "whole number"),
    ("mode-twice", lambda d: d["topology"].update(modes=["rdb", "rdb"]), "topology.modes", "twice"),
    ("bad-scenario-name", lambda d: d.update(scenarios={"Kill It": d["scenarios"]["x"]}), "scenarios.Kill It",
     "lower-case"),
]

NOT_APPLICABLE = [
    ("reshard-in-a-single-node", lambda d: _steps(d).__setitem__(2, {"reshard": {"target": "master"}}),
     "scenarios.x.steps[2].reshard", "a single topology has no cluster slots"),
    ("promote-in-a-cluster", _then(_kind("cluster"), lambda d: _steps(d).__setitem__(2, {"promote": "replica"})),
     "scenarios.x.steps[2].promote", "has no replicas that follow a master by REPLICAOF"),
    ("partition-of-a-single-node", lambda d: _steps(d).__setitem__(2, {"partition": "master"}),
     "scenarios.x.steps[2].partition", "no network between nodes to cut"),
    ("failover-expected-of-a-single-node", lambda d: _scenario(d).update(expect={"failover_s": {"max": 5}}),
     "scenarios.x.expect.failover_s", "cannot be measured in this scenario: failover_s needs a topology with failover"),
    ("cluster-metric-in-sentinel-lab", _then(_kind("sentinel"), lambda d: _scenario(d).update(
        expect={"clusterdown_errors": {"max": 0}})), "scenarios.x.expect.clusterdown_errors", "slots"),
    ("slots-moved-without-a-move", _then(_kind("cluster"), lambda d: _scenario(d).update(
        expect={"slots_moved": {"min": 1}})), "scenarios.x.expect.slots_moved", "needs a reshard or rebalance step"),
    ("truncate-aof-in-mode-none", lambda d: _steps(d).__setitem__(2, {"truncate_aof": {"target": "master", "bytes": 9}}),
     "scenarios.x.steps[2].truncate_aof", "does not apply in mode none, rdb"),
    ("wait-for-cluster-ok-in-sentinel-lab", _then(_kind("sentinel"), lambda d: _steps(d).__setitem__(
        3, {"wait_for": "cluster_ok"})), "scenarios.x.steps[3].wait_for", "cannot wait for cluster_ok"),
    ("wait-for-replicas-of-a-single-node", lambda d: _steps(d).__setitem__(0, {"probe": {"command": "start",
                                                                                       "wait_replicas": 1}}),
     "scenarios.x.steps[0].probe.wait_replicas", "WAIT only where replicas follow one master"),
    ("wait-for-more-replicas-than-there-are", _then(_kind("replication"), lambda d: _steps(d).__setitem__(
        0, {"probe": {"command": "start", "wait_replicas": 3}})),
     "scenarios.x.steps[0].probe.wait_replicas", "WAIT 3 can never be satisfied: each master of this replication "
                                                 "lab has 2 replicas"),
    ("wait-zero-timeout", _then(_kind("replication"), lambda d: _steps(d).__setitem__(
        0, {"probe": {"command": "start", "wait_replicas": 1, "wait_timeout": 0}})),
     "scenarios.x.steps[0].probe.wait_timeout", "at least 1ms"),
    ("unknown-workload-option", lambda d: _steps(d).__setitem__(0, {"probe": {"command": "start", "rate": 5}}),
     "scenarios.x.steps[0].probe", "has no option 'rate'"),
    ("two-probe-starts", lambda d: _steps(d).insert(2, {"probe": "start"}),
     "scenarios.x.steps[2].probe", "already started by steps[0]"),
    ("stop-before-start", lambda d: _steps(d).insert(0, {"probe": "stop"}),
     "scenarios.x.steps[0].probe", "stops the probe before it is started"),
    ("options-on-stop", lambda d: _steps(d).__setitem__(4, {"probe": {"command": "stop", "wait_replicas": 1}}),
     "scenarios.x.steps[4].probe", "options go with `probe: start`"),
    ("config-fights-the-mode", lambda d: d["topology"].update(config={"appendonly": "no"}),
     "topology.config.appendonly", "set by the persistence mode"),
    ("scenario-config-fights-the-mode", lambda d: _scenario(d).update(config={"appendfsync": "always"}),
     "scenarios.x.config.appendfsync", "set by the persistence mode"),
    ("config-sets-the-port", lambda d: d["topology"].update(config={"port": 6380}), "topology.config.port",
     "set by the tool"),
    ("config-sets-save", lambda d: d["topology"].update(config={"save": "60 1"}), "topology.config.save",
     "topology.save"),
    ("config-sets-replicaof", _then(_kind("replication"), lambda d: d["topology"].update(config={"replicaof": "x 1"})),
     "topology.config.replicaof", "set by the tool"),
    ("config-sets-cluster-enabled", _then(_kind("cluster"), lambda d: d["topology"].update(
        config={"cluster-enabled": "no"})), "topology.config.cluster-enabled", "set by the tool"),
    ("start-down-elsewhere", lambda d: _steps(d).__setitem__(2, {"kill": "down"}),
     "scenarios.x.steps[2].kill", "target 'down' matches no node"),
]


@pytest.mark.parametrize("mutate, key, words", [c[1:] for c in REFUSED + NOT_APPLICABLE],
                         ids=[c[0] for c in REFUSED + NOT_APPLICABLE])
def test_refused_naming_file_and_key(write_lab, mutate, key, words):
    error = refused(write_lab, mutate)
    assert error.key == key
    assert words in str(error), str(error)


# ------------------------------------------------------------------ command-line options

@pytest.mark.parametrize("base", ["70000", "0", "80", "-1"])
def test_impossible_port_bases(invoke, base):
    line = one_error_line(invoke("--port-base", base, "render", "persistence"))
    assert "--port-base" in line and "port from 1024 to 65535" in line


def test_a_port_base_that_cannot_hold_the_lab(invoke, tmp_path):
    line = one_error_line(invoke("--image", "redis:7.2", "--port-base", "65532", "render", "sentinel",
                                 "-o", str(tmp_path / "out")))
    assert "leaves no room for lab 'sentinel' (6 ports" in line and "use --port-base 65530 or lower" in line


def test_a_port_base_that_cannot_hold_parallel_jobs(invoke):
    line = one_error_line(invoke("--port-base", "65500", "verify", "persistence", "--jobs", "3"))
    assert "in each of the parallel jobs" in line


def test_render_under_a_regular_file(invoke, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_error_line(invoke("--image", "redis:7.2", "render", "persistence", "-o", str(blocker / "out")))
    assert "is a file, so no directory can be made under it" in line
    line = one_error_line(invoke("--image", "redis:7.2", "render", "persistence", "-o", str(blocker)))
    assert "is a file, not a directory" in line


@pytest.mark.parametrize("command", [["run", "persistence", "kill-restart", "--json"], ["verify", "--json"],
                                     ["verify", "--junit"], ["compare", "persistence", "--json"]])
def test_output_into_a_missing_directory_is_refused_before_the_run(invoke, tmp_path, command):
    line = one_error_line(invoke(*command, str(tmp_path / "missing" / "out.json")))
    assert "does not exist" in line and "mkdir -p" in line


def test_output_onto_a_directory_is_refused(invoke, tmp_path):
    line = one_error_line(invoke("run", "persistence", "kill-restart", "--json", str(tmp_path)))
    assert "is a directory" in line


def test_keep_with_repeat(invoke):
    line = one_error_line(invoke("run", "persistence", "kill-restart", "--keep", "--repeat", "2"))
    assert "cannot go with --repeat" in line


def test_power_loss_targets_a_node_or_every_data_node(write_lab):
    from orchestrator.spec import parse_lab as parse

    lab = parse(write_lab(lambda d: _steps(d).__setitem__(2, {"power_loss": {"target": "all", "dirty_expire": "1s"}})))
    assert lab.scenarios["x"].steps[2].args == {"target": "all", "dirty_expire": "1s", "writeback_interval": "5s"}
    error = refused(write_lab, lambda d: _steps(d).__setitem__(2, {"power_loss": {"target": "master",
                                                                                  "dirty_expire": "soon"}}))
    assert error.key == "scenarios.x.steps[2].power_loss" and "not a duration" in str(error)


def test_a_power_loss_run_without_fuse_is_skipped_never_passed(monkeypatch, persistence_lab):
    import orchestrator.scenario
    from orchestrator.engine.lifecycle import RunSettings

    monkeypatch.setattr(orchestrator.scenario, "fuse_available", lambda: (False, "/dev/fuse does not exist"))
    result = orchestrator.scenario.run_scenario(persistence_lab, "power-loss", "aof-always",
                                                RunSettings(image="redis:7.2", port_base=7100))
    assert (result.status, result.passed, result.skipped) == ("skip", False, True)
    assert "needs FUSE: /dev/fuse does not exist" in result.error
