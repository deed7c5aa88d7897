"""The `lab` command line through click's CliRunner: exit codes and messages, no Docker.

The autouse `no_docker` fixture (conftest.py) fails any test that would create a Docker
client or connect to Redis; the few commands that need an image or an engine get fakes here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import orchestrator.cli
import orchestrator.engine.docker
import orchestrator.image
from orchestrator.cli import cli
from orchestrator.errors import EnvironmentProblem
from orchestrator.image import ImageChoice
from orchestrator.spec import PERSISTENCE_MODES
from orchestrator.spec.paths import LABS_DIR

SHIPPED_LABS = sorted(LABS_DIR.glob("*.yaml"))


@pytest.fixture
def invoke():
    runner = CliRunner()

    def run(*args, **kwargs):
        return runner.invoke(cli, list(args), **kwargs)

    return run


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_help(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    section = lines[lines.index("Commands:") + 1:]
    listed = {line.split()[0] for line in section if line.startswith("  ") and line.strip()}
    assert {"list", "validate", "render", "up", "status", "down", "run", "compare", "verify",
            "doctor", "image"} <= listed


@pytest.mark.parametrize("command", ["run", "render", "validate", "down", "verify"])
def test_subcommand_help(invoke, command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_list_shows_persistence_and_its_scenarios(invoke):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    assert "persistence" in result.output
    for scenario in ("kill-restart", "graceful-restart", "restart-without-volume", "aof-truncated", "aof-truncated-fix"):
        assert scenario in result.output
    assert "modes: none, rdb, aof-no, aof-everysec, aof-always, rdb+aof (default aof-everysec)" in result.output


def test_list_actions_and_metrics(invoke):
    result = invoke("list", "--actions", "--metrics")
    assert result.exit_code == 0
    assert "wait_for: condition, target=master, timeout=30s" in result.output
    assert "unavailable_s" in result.output


def test_validate_all_labs(invoke, persistence_lab):
    result = invoke("validate")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == len(SHIPPED_LABS)
    pairs = sum(len(s.modes) for s in persistence_lab.scenarios.values())
    assert (f"ok  persistence ({persistence_lab.path}): {len(persistence_lab.scenarios)} scenarios, "
            f"{pairs} scenario/mode projects rendered") in result.output.splitlines()


def test_validate_a_good_lab_file(invoke, write_lab):
    path = write_lab()
    result = invoke("validate", str(path))
    assert result.exit_code == 0
    assert f"ok  mini ({path})" in result.output


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["scenarios"]["x"]["steps"].__setitem__(2, {"kill": {"target": "master", "signal": 9}}),
     "scenarios.x.steps[2].kill"),
    (lambda d: d["scenarios"]["x"]["steps"].__setitem__(1, {"wait": "soon"}), "scenarios.x.steps[1].wait"),
    (lambda d: d["scenarios"]["x"].update(expect={"lost": {"min": 3, "max": 1}}), "scenarios.x.expect.lost"),
    (lambda d: d["scenarios"]["x"]["steps"].__setitem__(2, {"kill": "sentinel"}), "scenarios.x.steps[2].kill"),
], ids=["unknown-argument", "bad-duration", "min-above-max", "target-matches-no-node"])
def test_validate_malformed_lab_file(invoke, write_lab, mutate, key):
    path = write_lab(mutate)
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    (line,) = _error_lines(result.output)
    assert line.startswith(f"error: {path}: {key}: ")
    assert line.endswith("fix the lab file, then check it with `lab validate`")


def test_validate_invalid_yaml(invoke, write_lab):
    path = write_lab(text="name: [\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    (line,) = _error_lines(result.output)
    assert line.startswith(f"error: {path}: line ")


def test_validate_unknown_lab(invoke):
    result = invoke("validate", "nosuchlab")
    assert result.exit_code == 2
    assert "unknown lab 'nosuchlab'" in result.output


def test_run_unknown_lab(invoke):
    result = invoke("run", "nosuchlab", "x")
    assert result.exit_code == 2
    (line,) = _error_lines(result.output)
    assert "unknown lab 'nosuchlab'" in line


def test_run_unknown_scenario(invoke):
    result = invoke("run", "persistence", "nosuch")
    assert result.exit_code == 2
    (line,) = _error_lines(result.output)
    assert "lab 'persistence' has no scenario 'nosuch'" in line
    assert "kill-restart" in line


def test_run_unknown_mode(invoke):
    result = invoke("run", "persistence", "kill-restart", "--mode", "bogus")
    assert result.exit_code == 2
    assert "Invalid value for '--mode'" in result.output


def test_run_keep_with_repeat_is_refused(invoke):
    result = invoke("run", "persistence", "kill-restart", "--keep", "--repeat", "2")
    assert result.exit_code == 2
    assert "cannot go with --repeat" in result.output


class _UntouchableEngine:
    """Stands in for the Docker engine; any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the engine was used: {name}")


def test_run_in_a_mode_the_scenario_does_not_run(invoke, monkeypatch):
    # `run` resolves the image before the scenario checks its mode: fake both Docker-facing parts.
    monkeypatch.setattr(orchestrator.image, "resolve_image", lambda engine, requested=None: ImageChoice("redis:7.2"))
    monkeypatch.setattr(orchestrator.engine.docker, "Engine", _UntouchableEngine)
    result = invoke("run", "persistence", "aof-truncated", "--mode", "none")
    assert result.exit_code == 2
    (line,) = _error_lines(result.output)
    assert "scenario 'aof-truncated' does not run in mode 'none'" in line


def test_down_without_a_lab(invoke):
    result = invoke("down")
    assert result.exit_code == 2
    (line,) = _error_lines(result.output)
    assert "say which lab to remove" in line


def test_down_unknown_lab(invoke):
    result = invoke("down", "nosuchlab")
    assert result.exit_code == 2
    assert "unknown lab 'nosuchlab'" in result.output


def test_render_writes_the_project(invoke, tmp_path):
    out = tmp_path / "project"
    result = invoke("--image", "redis:7.2", "render", "persistence", "--mode", "aof-always", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "compose.yaml").is_file()
    assert "appendfsync always" in (out / "redis-1.conf").read_text().splitlines()
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    assert compose["services"]["redis-1"]["image"] == "redis:7.2"
    assert compose["name"] == "lab-persistence-manual"
    assert f"wrote {out / 'compose.yaml'}" in result.output


def test_render_takes_image_and_port_base_from_the_environment(invoke, tmp_path):
    out = tmp_path / "project"
    result = invoke("render", "persistence", "--mode", "none", "-o", str(out),
                    env={"LAB_IMAGE": "my/redis:7", "LAB_PORT_BASE": "7400"})
    assert result.exit_code == 0, result.output
    service = yaml.safe_load((out / "compose.yaml").read_text())["services"]["redis-1"]
    assert service["image"] == "my/redis:7"
    assert service["ports"] == ["127.0.0.1:7400:6379"]


def test_render_with_a_scenario_applies_its_config(invoke, tmp_path):
    out = tmp_path / "project"
    result = invoke("--image", "redis:7.2", "render", "persistence", "--scenario", "aof-truncated-fix", "-o", str(out))
    assert result.exit_code == 0, result.output
    conf = (out / "redis-1.conf").read_text().splitlines()
    assert "aof-load-truncated no" in conf
    assert "appendfsync everysec" in conf          # the lab's default mode


def test_render_default_mode_per_lab(invoke, tmp_path):
    result = invoke("--image", "redis:7.2", "render", "persistence", "-o", str(tmp_path))
    assert result.exit_code == 0
    assert "(mode aof-everysec, image redis:7.2)" in result.output


def test_render_unknown_lab(invoke, tmp_path):
    result = invoke("--image", "redis:7.2", "render", "nosuchlab", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown lab 'nosuchlab'" in result.output


@pytest.mark.parametrize("mode", PERSISTENCE_MODES)
def test_mode_choices_are_the_persistence_modes(invoke, mode, tmp_path):
    result = invoke("--image", "redis:7.2", "render", "persistence", "--mode", mode, "-o", str(tmp_path / mode))
    assert result.exit_code == 0, result.output


def test_image_which_prints_the_choice_and_its_note(invoke, monkeypatch):
    seen = []

    def resolve(engine, requested=None):
        seen.append(requested)
        return ImageChoice("redis-ha-lab/redis:local", "redis:7.2 is absent and cannot be pulled")

    monkeypatch.setattr(orchestrator.image, "resolve_image", resolve)
    monkeypatch.setattr(orchestrator.engine.docker, "Engine", _UntouchableEngine)
    result = invoke("--image", "mine:1", "image", "which")
    assert result.exit_code == 0
    assert result.stdout == "redis-ha-lab/redis:local\n"
    assert result.stderr == "note: redis:7.2 is absent and cannot be pulled\n"
    assert seen == ["mine:1"]


def test_image_which_without_an_image_exits_2(invoke, monkeypatch):
    def resolve(engine, requested=None):
        raise EnvironmentProblem("no Redis image", "run `lab image build`")

    monkeypatch.setattr(orchestrator.image, "resolve_image", resolve)
    monkeypatch.setattr(orchestrator.engine.docker, "Engine", _UntouchableEngine)
    result = invoke("image", "which")
    assert result.exit_code == 2
    assert _error_lines(result.output) == ["error: no Redis image; run `lab image build`"]


# ------------------------------------------------------------------ lab down: only what it was asked to remove

class _RecordingEngine:
    """Records which labels `lab down` removes by."""

    removed: list[tuple[str, ...]] = []

    def remove_labelled(self, *labels):
        _RecordingEngine.removed.append(labels)
        return 3


@pytest.fixture
def recording_engine(monkeypatch, tmp_path):
    _RecordingEngine.removed = []
    monkeypatch.setattr(orchestrator.engine.docker, "Engine", _RecordingEngine)
    state = tmp_path / "state" / "redis-ha-lab"     # XDG_STATE_HOME (conftest) / redis-ha-lab
    for project in ("lab-sentinel", "lab-sentinel-ab12cd", "lab-sentinel-ef34gh", "lab-cluster"):
        (state / project).mkdir(parents=True)
    return state


def test_down_removes_what_lab_up_made_and_nothing_else(invoke, recording_engine):
    result = invoke("down", "sentinel")
    assert result.exit_code == 0, result.output
    assert _RecordingEngine.removed == [("redis-ha-lab.lab=sentinel", "redis-ha-lab.run=up")]
    assert sorted(p.name for p in recording_engine.iterdir()) == ["lab-cluster", "lab-sentinel-ab12cd",
                                                                 "lab-sentinel-ef34gh"]


def test_down_one_kept_run(invoke, recording_engine):
    result = invoke("down", "sentinel", "--run", "ab12cd")
    assert result.exit_code == 0, result.output
    assert _RecordingEngine.removed == [("redis-ha-lab.lab=sentinel", "redis-ha-lab.run=ab12cd")]
    assert "lab-sentinel-ab12cd" not in [p.name for p in recording_engine.iterdir()]
    assert "lab-sentinel" in [p.name for p in recording_engine.iterdir()]


def test_down_every_run_of_a_lab_needs_the_flag(invoke, recording_engine):
    result = invoke("down", "sentinel", "--runs")
    assert result.exit_code == 0, result.output
    assert _RecordingEngine.removed == [("redis-ha-lab.lab=sentinel",)]
    assert sorted(p.name for p in recording_engine.iterdir()) == ["lab-cluster"]


def test_down_all(invoke, recording_engine, monkeypatch):
    import orchestrator.engine.unsynced

    asked = []
    monkeypatch.setattr(orchestrator.engine.unsynced, "unmount_leftovers", lambda prefix: asked.append(prefix) or 2)
    result = invoke("down", "--all")
    assert asked == ["/"] and "unmounted 2 power-loss filesystems" in result.output
    assert result.exit_code == 0, result.output
    assert _RecordingEngine.removed == [("redis-ha-lab.lab",)]
    assert list(recording_engine.iterdir()) == []


# ------------------------------------------------------------------ lab report: HTML from a saved result

RUN_RESULT = Path(__file__).parent.parent / "htmlreport_fixtures" / "run-sentinel-kill-master.json"


def test_report_draws_a_saved_run_result(invoke, tmp_path):
    """A result exactly as `lab failover --json` wrote it draws again as a page with a marker for
    every step and server event, and plotly.js beside it."""
    import json

    page = tmp_path / "pages" / "failover.html"
    result = invoke("report", str(RUN_RESULT), "--html", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    saved = json.loads(RUN_RESULT.read_text())
    assert saved["timeline"]["series"][0]["counts"]["ok"], "the saved result carries the bucketed history"
    for event in saved["events"]:
        if event["source"] in ("tool", "server") and "+switch-master" in event["what"]:
            assert "+switch-master" in html
    assert list(page.parent.glob("plotly-*.min.js")), "plotly.js is written beside the page"
    assert "https://" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_report_draws_a_saved_list_as_an_index(invoke, tmp_path):
    import json

    listed = tmp_path / "verify.json"
    listed.write_text(json.dumps([json.loads(RUN_RESULT.read_text())]))
    result = invoke("report", str(listed), "--html", str(tmp_path / "site"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / "index.html").is_file()
    assert len(list((tmp_path / "site").glob("*.html"))) == 2


def test_report_of_a_file_that_is_not_a_result(invoke, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = invoke("report", str(bad), "--html", str(tmp_path / "x.html"))
    assert result.exit_code == 2
    assert "is not a JSON result of lab" in result.output
