"""Reports: JUnit XML, JSON (design.md's fields), the compare table and the result text."""

from __future__ import annotations

import re

import json
import xml.etree.ElementTree as ET

import pytest

from orchestrator import report
from orchestrator.measure.expect import Check
from orchestrator.spec import Bound
from orchestrator.spec import METRICS, load_plugins
from orchestrator.events import Event
from orchestrator.measure.result import Result


load_plugins()


def make_result(scenario="kill-restart", mode="rdb", passed=True, lab="persistence", error="", **metrics) -> Result:
    values = {name: None for name in METRICS}
    values.update(acked=900, lost=0, lost_pct=0.0, acked_before_fault=400, lost_before_fault_pct=0.0,
                  unavailable_s=1.234, errors=12, load_s=0.31)
    values.update(metrics)
    checks = [Check("unavailable_s", Bound(max=10), values["unavailable_s"], True),
              Check("lost", Bound(max=0), values["lost"], passed)]
    events = [Event(0.0, "lab up: redis-1 ready (rdb)", "tool"),
              Event(2.0034, "kill master", "tool"),
              Event(3.2371, "first ack after the fault (probe:412)", "client")]
    return Result(lab=lab, scenario=scenario, mode=mode, image="redis:7.2", summary="SIGKILL redis-server",
                  explain="A SIGKILL is a crash.", status="error" if error else "pass" if passed else "fail",
                  duration_s=5.6789, metrics={} if error else values, checks=[] if error else checks, events=events,
                  error_kinds={"connection refused": 10, "LOADING": 2}, error=error)


@pytest.fixture
def results():
    return [make_result(mode="aof-always"),
            make_result(mode="rdb", passed=False, lost=37, lost_pct=4.11, lost_before_fault_pct=9.25)]


# ------------------------------------------------------------------ JUnit XML

def test_junit_xml_one_testcase_per_result_failure_only_when_failed(results):
    root = ET.fromstring(report.junit_xml(results))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["kill-restart[aof-always]", "kill-restart[rdb]"]
    assert {c.get("classname") for c in cases} == {"persistence.kill-restart"}
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert "lost = 37, expected <= 0" in failure.get("message")
    assert "unavailable_s" not in failure.get("message")     # only the failed checks
    assert "acked=900" in cases[0].find("system-out").text


def test_junit_xml_one_testsuite_per_lab(results):
    results.append(make_result(lab="sentinel", scenario="kill-master", mode="aof-everysec"))
    root = ET.fromstring(report.junit_xml(results))
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("persistence", "2", "1"), ("sentinel", "1", "0")]


def test_junit_xml_all_passed():
    root = ET.fromstring(report.junit_xml([make_result()]))
    assert root.get("failures") == "0"
    assert root.find(".//failure") is None


# ------------------------------------------------------------------ JSON

def _assert_design_fields(obj: dict):
    assert {"lab", "scenario", "mode", "image", "passed", "duration_s", "metrics", "checks", "events"} <= set(obj)
    assert isinstance(obj["passed"], bool)
    assert isinstance(obj["duration_s"], float)
    assert {"acked", "lost", "lost_pct", "unavailable_s", "errors"} <= set(obj["metrics"])
    for check in obj["checks"]:
        assert set(check) == {"metric", "expect", "observed", "passed"}
    for event in obj["events"]:
        assert {"t", "what"} <= set(event)


def test_write_json_single_result(tmp_path):
    path = tmp_path / "result.json"
    report.write_json(path, make_result(passed=False, lost=5))
    obj = json.loads(path.read_text())
    _assert_design_fields(obj)
    assert (obj["lab"], obj["scenario"], obj["mode"], obj["image"], obj["passed"]) == \
        ("persistence", "kill-restart", "rdb", "redis:7.2", False)
    assert obj["duration_s"] == 5.679
    assert obj["metrics"]["lost"] == 5
    assert obj["checks"][1] == {"metric": "lost", "expect": {"max": 0}, "observed": 5, "passed": False}
    assert obj["events"][1]["t"] == 2.003
    assert obj["events"][1]["what"] == "kill master"


def test_write_json_list(tmp_path, results):
    path = tmp_path / "results.json"
    report.write_json(path, results)
    data = json.loads(path.read_text())
    assert isinstance(data, list) and len(data) == 2
    for obj in data:
        _assert_design_fields(obj)
    assert [o["passed"] for o in data] == [True, False]


# ------------------------------------------------------------------ tables

def _table_rows(table: str) -> list[list[str]]:
    """Body rows of a tabulate "simple" table as lists of stripped cells, cut at the
    column positions of the dashed rule under the header."""
    lines = table.splitlines()
    rule_at = next(i for i, line in enumerate(lines) if line and set(line) <= {"-", " "})
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[rule_at])]
    body = []
    for line in lines[rule_at + 1:]:
        if not line.strip():
            break
        body.append([line[start:end].strip() for start, end in spans])
    return body


def test_format_compare_one_row_per_mode():
    modes = ["none", "rdb", "aof-everysec", "aof-always", "rdb+aof"]
    results = []
    for mode in modes:
        results.append(make_result("kill-restart", mode, server_load_s=0.012, dataset_keys=400))
        if mode.startswith("aof") or mode == "rdb+aof":
            results.append(make_result("aof-truncated", mode, lost=2))
    rows = _table_rows(report.format_compare(results))
    assert [row[0] for row in rows] == modes
    by_mode = {row[0]: row for row in rows}
    assert by_mode["none"][2] == "n/a"                 # aof-truncated does not run without AOF
    assert by_mode["aof-always"][2] == "2/400 (0%)"
    assert by_mode["rdb"][1:] == ["0/400 (0%)", "n/a", "-", "0.31", "0.012", "400"]


def test_format_compare_marks_failed_cells():
    rows = _table_rows(report.format_compare([make_result(mode="rdb", passed=False, lost=37,
                                                          lost_before_fault_pct=9.25)]))
    assert rows == [["rdb", "37/400 (9.25%) FAIL", "-", "0.31", "-", "-"]]


def _check_rows(text: str) -> list[list[str]]:
    """The rows of format_result's expectation table, split on whitespace."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("expectation ")) + 2   # header, rule
    end = lines.index("", start)
    return [line.split() for line in lines[start:end]]


def test_format_result_pass():
    text = report.format_result(make_result())
    assert text.startswith("persistence / kill-restart  [mode rdb, image redis:7.2]")
    assert _check_rows(text) == [["unavailable_s", "<=", "10", "1.234", "PASS"],
                                 ["lost", "<=", "0", "0", "PASS"]]
    assert "PASS: 2 of 2 expectations met" in text
    assert "FAIL" not in text
    assert "kill master" in text
    assert "10 connection refused, 2 LOADING" in text
    assert "server_load_s" not in text            # metrics that were not observed are left out


def test_format_result_fail_names_the_failed_check():
    text = report.format_result(make_result(passed=False, lost=37))
    assert _check_rows(text) == [["unavailable_s", "<=", "10", "1.234", "PASS"],
                                 ["lost", "<=", "0", "37", "FAIL"]]
    assert "FAIL: 1 of 2 expectations met" in text


def test_format_result_explain_shows_methods():
    text = report.format_result(make_result(), explain=True)
    assert "how it was measured" in text
    assert "--explain says" not in text


def test_format_verify_and_verify_line(results):
    text = report.format_verify(results)
    assert "1 passed, 1 failed" in text
    assert "lost=37 (expected <= 0)" in text
    assert report.verify_line(results[1]).startswith("FAIL  persistence kill-restart [rdb]  acked=900 lost=37")


def test_format_repeats():
    runs = [make_result(unavailable_s=1.0), make_result(unavailable_s=3.0), make_result(unavailable_s=2.0, passed=False)]
    text = report.format_repeats(runs)
    assert text.startswith("3 runs, 2 passed")
    row = next(l.split() for l in text.splitlines() if l.startswith("unavailable_s"))
    assert row == ["unavailable_s", "1", "2", "3", "3"]


# ------------------------------------------------------------------ ERROR: could not measure

def test_an_error_is_a_junit_error_and_a_json_status(tmp_path, results):
    results.append(make_result(mode="aof-everysec", error="no master was ready for the read-back within 30 s"))
    root = ET.fromstring(report.junit_xml(results))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    case = root.findall("testsuite/testcase")[2]
    assert case.find("failure") is None
    assert "could not measure: no master was ready" in case.find("error").get("message")
    path = tmp_path / "results.json"
    report.write_json(path, results)
    assert [o["status"] for o in json.loads(path.read_text())] == ["pass", "fail", "error"]
    assert json.loads(path.read_text())[2]["error"].startswith("no master was ready")


def test_compare_and_verify_show_an_error_without_its_metrics():
    broken = make_result(mode="aof-always", error="the probe's write loop died at attempt 12: TypeError: x")
    rows = _table_rows(report.format_compare([make_result(mode="rdb"), broken]))
    assert rows[1][:2] == ["aof-always", "ERROR"]
    text = report.format_verify([make_result(mode="rdb"), broken])
    assert "1 passed, 0 failed, 1 could not measure (ERROR)" in text
    assert report.verify_line(broken).startswith("ERROR persistence kill-restart [aof-always]  could not measure: "
                                                 "the probe's write loop died")
    assert "ERROR: the run could not measure" in report.format_result(broken)
