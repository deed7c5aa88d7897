"""The action registry: binding what a lab file gives to an action's parameters."""

from __future__ import annotations

import pytest

from orchestrator.spec import ACTIONS, FAULT, RESTART, Param, load_plugins
from orchestrator.spec.registry import Action

load_plugins()


def test_registry_names():
    assert set(ACTIONS) == {"probe", "wait", "wait_for", "kill", "stop", "wipe_volume", "start",
                            "truncate_aof", "check_aof", "pause", "unpause", "partition", "heal", "promote",
                            "reshard", "add_node", "rebalance", "power_loss", "kill_consumer", "start_consumer",
                            "pause_consumer", "resume_consumer"}
    for name, spec in ACTIONS.items():
        assert spec.name == name
        assert spec.summary


def test_marks_used_by_the_metrics():
    assert ACTIONS["kill"].mark == FAULT
    assert ACTIONS["stop"].mark == FAULT
    assert ACTIONS["start"].mark == RESTART
    assert ACTIONS["wipe_volume"].mark is None
    assert ACTIONS["wait"].mark is None


@pytest.mark.parametrize("action, arg, bound", [
    ("kill", "master", {"target": "master"}),
    ("wait", "2s", {"duration": "2s"}),
    ("wait", 3, {"duration": 3}),
    ("probe", "stop", {"command": "stop"}),
    ("wait_for", "ready", {"condition": "ready", "target": "master", "timeout": "30s"}),
    ("stop", "redis-1", {"target": "redis-1", "timeout": "60s"}),
])
def test_scalar_binds_to_the_first_parameter(action, arg, bound):
    assert ACTIONS[action].bind(arg) == bound


@pytest.mark.parametrize("action, arg, bound", [
    ("truncate_aof", {"target": "master", "bytes": 100}, {"target": "master", "bytes": 100}),
    ("wait_for", {"condition": "exited", "timeout": "5s"}, {"condition": "exited", "target": "master", "timeout": "5s"}),
    ("check_aof", {"target": "master"}, {"target": "master", "fix": True}),
    ("check_aof", {"target": "master", "fix": False}, {"target": "master", "fix": False}),
])
def test_mapping_binds_by_name_and_fills_defaults(action, arg, bound):
    assert ACTIONS[action].bind(arg) == bound


def test_none_binds_nothing_and_applies_defaults():
    spec = Action(name="nap", func=lambda ctx, level="low": None, summary="", params=(Param("level", default="low"),))
    assert spec.bind(None) == {"level": "low"}


def test_none_for_a_required_argument_is_missing():
    with pytest.raises(TypeError, match="missing argument target"):
        ACTIONS["kill"].bind(None)


def test_mapping_missing_a_required_argument():
    with pytest.raises(TypeError, match="missing argument bytes"):
        ACTIONS["truncate_aof"].bind({"target": "master"})


def test_unknown_argument():
    with pytest.raises(TypeError, match="unknown argument signal"):
        ACTIONS["kill"].bind({"target": "master", "signal": 9})


def test_run_context_is_not_an_argument():
    with pytest.raises(TypeError, match="unknown argument ctx"):
        ACTIONS["kill"].bind({"ctx": 1, "target": "master"})


def test_scalar_for_an_action_without_parameters():
    spec = Action(name="noop", func=lambda ctx: None, summary="")
    with pytest.raises(TypeError, match="takes no argument"):
        spec.bind("x")
    assert spec.bind(None) == {}
    assert spec.usage() == "noop: (no arguments)"


@pytest.mark.parametrize("action, arg", [
    ("wait", "soon"),
    ("wait", "2h"),
    ("wait_for", {"condition": "ready", "timeout": "later"}),
    ("stop", {"target": "master", "timeout": "long"}),
])
def test_invalid_duration(action, arg):
    with pytest.raises(ValueError, match="not a duration"):
        ACTIONS[action].bind(arg)


@pytest.mark.parametrize("action, arg, message", [
    ("probe", "begin", "command must be one of start, stop, not 'begin'"),
    ("wait_for", "healthy", "condition must be one of ready, exited, cluster_ok, new_master, replicas_synced, not 'healthy'"),
])
def test_invalid_choice(action, arg, message):
    with pytest.raises(ValueError) as caught:
        ACTIONS[action].bind(arg)
    assert str(caught.value) == message


def test_targets():
    assert ACTIONS["kill"].targets(ACTIONS["kill"].bind("redis-1")) == ["redis-1"]
    assert ACTIONS["wait_for"].targets(ACTIONS["wait_for"].bind("ready")) == ["master"]
    assert ACTIONS["wait"].targets(ACTIONS["wait"].bind("1s")) == []


def test_usage():
    assert ACTIONS["kill"].usage() == "kill: target"
    assert ACTIONS["wait_for"].usage() == "wait_for: condition, target=master, timeout=30s"
    assert ACTIONS["truncate_aof"].usage() == "truncate_aof: target, bytes"


# ------------------------------------------------------------------ redis-check-aof's verdict

CHECK_AOF_FIX_OUTPUT = """\
Start checking Multi Part AOF
Start to check BASE AOF (RDB format).
[offset 0] Checking RDB file appendonly.aof.1.base.rdb
RDB preamble is OK, proceeding with AOF tail...
BASE AOF appendonly.aof.1.base.rdb is valid
Start to check INCR files.
0x          10a3c2: Expected to read 28 bytes, got 3 bytes
AOF analyzed: filename=appendonly.aof.1.incr.aof, size=68546, ok_up_to=68446, ok_up_to_line=9781, diff=100
This will shrink the AOF appendonly.aof.1.incr.aof from 68546 bytes, with 100 bytes, to 68446 bytes
Continue? [y/N]: Successfully truncated AOF appendonly.aof.1.incr.aof
All AOF files and manifest are valid
"""


def test_check_aof_verdict_reports_what_fix_did():
    from orchestrator.faults.files import check_aof_verdict as _check_aof_verdict

    assert _check_aof_verdict(CHECK_AOF_FIX_OUTPUT, 0) == (
        "This will shrink the AOF appendonly.aof.1.incr.aof from 68546 bytes, with 100 bytes, to 68446 bytes; "
        "Successfully truncated AOF appendonly.aof.1.incr.aof")


def test_check_aof_verdict_without_fix_is_the_last_line():
    from orchestrator.faults.files import check_aof_verdict as _check_aof_verdict

    output = "Start checking Multi Part AOF\nAOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it.\n\n"
    assert _check_aof_verdict(output, 1) == "AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it."
    assert _check_aof_verdict("", 1) == "exit code 1"


@pytest.mark.parametrize("count", ["lots", 0, -5, 1.5, True])
def test_truncate_aof_bytes_must_be_a_positive_whole_number(count):
    with pytest.raises(ValueError, match="bytes"):
        ACTIONS["truncate_aof"].bind({"target": "master", "bytes": count})


@pytest.mark.parametrize("arg", [["master"], {"target": {"a": 1}}, {1: "x"}])
def test_targets_and_argument_names_must_be_words(arg):
    with pytest.raises(TypeError):
        ACTIONS["kill"].bind(arg)
