"""Lab files: every shipped lab loads and validates; every malformed one is refused with
a LabFileError naming the file and the key path."""

from __future__ import annotations

import pytest

from orchestrator.errors import LabFileError, UsageError
from orchestrator.spec import PERSISTENCE_MODES, Step, lab_path, load_lab, parse_duration, parse_lab
from orchestrator.spec.paths import LABS_DIR
from orchestrator.validate import validate_lab

SHIPPED_LABS = sorted(LABS_DIR.glob("*.yaml"))


def test_labs_directory_is_not_empty():
    assert SHIPPED_LABS, f"no lab files in {LABS_DIR}"


@pytest.mark.parametrize("path", SHIPPED_LABS, ids=lambda p: p.stem)
def test_shipped_lab_loads_and_validates(path):
    lab = parse_lab(path)
    assert lab.name == path.stem
    assert lab.scenarios
    rendered = validate_lab(lab)
    assert rendered == sum(len(s.modes) for s in lab.scenarios.values())


def test_persistence_lab_contents(persistence_lab):
    lab = persistence_lab
    assert lab.topology.kind == "single"
    assert lab.topology.persistence == "aof-everysec"
    assert lab.topology.modes == PERSISTENCE_MODES
    assert lab.topology.save == "1 1"
    assert set(lab.scenarios) == {"kill-restart", "graceful-restart", "restart-without-volume",
                                  "aof-truncated", "aof-truncated-fix", "power-loss"}
    assert lab.scenarios["power-loss"].modes == PERSISTENCE_MODES
    assert lab.scenarios["aof-truncated"].modes == ("aof-always", "aof-no")
    assert lab.scenarios["kill-restart"].modes == PERSISTENCE_MODES
    assert lab.scenarios["aof-truncated-fix"].config == {"aof-load-truncated": "no"}


def test_steps_bind_arguments_with_defaults(persistence_lab):
    steps = persistence_lab.scenarios["aof-truncated-fix"].steps
    assert steps[2] == Step(action="kill", args={"target": "master"}, index=2)
    assert steps[3].args == {"target": "master", "bytes": 137}
    assert steps[5].args == {"condition": "exited", "target": "master", "timeout": "30s"}
    assert steps[6].args == {"target": "master", "fix": True}
    assert steps[8].args == {"condition": "ready", "target": "master", "timeout": "30s"}


def test_explain_is_folded_to_one_line(persistence_lab):
    for scenario in persistence_lab.scenarios.values():
        assert "\n" not in scenario.explain
        assert "  " not in scenario.explain


def test_minimal_lab_is_valid(write_lab):
    lab = parse_lab(write_lab())
    assert lab.name == "mini"
    assert lab.scenarios["x"].modes == ("none", "rdb")   # the topology's modes by default
    assert validate_lab(lab) == 2


def test_target_may_be_a_node_name(write_lab):
    path = write_lab(lambda d: d["scenarios"]["x"]["steps"].__setitem__(2, {"kill": "redis-1"}))
    assert validate_lab(parse_lab(path)) == 2


# ------------------------------------------------------------------ malformed lab files

def _steps(d):
    return d["scenarios"]["x"]["steps"]


def _scenario(d):
    return d["scenarios"]["x"]


MALFORMED = [
    # id, mutation of MINIMAL_LAB, key path the error must name, words the problem must contain
    ("missing-summary", lambda d: d.pop("summary"), "summary", "is required"),
    ("missing-steps", lambda d: _scenario(d).pop("steps"), "scenarios.x.steps", "is required"),
    ("missing-explain", lambda d: _scenario(d).pop("explain"), "scenarios.x.explain", "is required"),
    ("unknown-top-level-key", lambda d: d.update(owner="me"), "owner", "unknown key"),
    ("unknown-topology-key", lambda d: d["topology"].update(replica_count=2), "topology.replica_count", "unknown key"),
    ("unknown-scenario-key", lambda d: _scenario(d).update(expected={}), "scenarios.x.expected", "unknown key"),
    ("bad-lab-name", lambda d: d.update(name="Mini Lab"), "name", "lower-case"),
    ("unknown-kind", lambda d: d["topology"].update(kind="galaxy"), "topology.kind", "unknown topology kind"),
    ("unknown-persistence", lambda d: d["topology"].update(persistence="fsync"), "topology.persistence", "unknown mode 'fsync'"),
    ("unknown-topology-mode", lambda d: d["topology"].update(modes=["rdb", "aof"]), "topology.modes", "unknown mode 'aof'"),
    ("unknown-scenario-mode", lambda d: _scenario(d).update(modes=["bogus"]), "scenarios.x.modes", "unknown mode 'bogus'"),
    ("empty-modes", lambda d: _scenario(d).update(modes=[]), "scenarios.x.modes", "non-empty list"),
    ("bad-save", lambda d: d["topology"].update(save="hourly"), "topology.save", "pairs of numbers"),
    ("config-bool", lambda d: d["topology"].update(config={"appendonly": True}), "topology.config.appendonly", "strings or numbers"),
    ("no-scenarios", lambda d: d.update(scenarios={}), "scenarios", "at least one scenario"),
    ("scenarios-not-mapping", lambda d: d.update(scenarios=["x"]), "scenarios", "must be a mapping"),
    ("empty-steps", lambda d: _scenario(d).update(steps=[]), "scenarios.x.steps", "non-empty list"),
    ("unknown-action", lambda d: _steps(d).__setitem__(2, {"explode": "master"}), "scenarios.x.steps[2]", "unknown action 'explode'"),
    ("two-actions-in-a-step", lambda d: _steps(d).__setitem__(2, {"kill": "master", "wait": "1s"}), "scenarios.x.steps[2]", "one action"),
    ("step-not-mapping", lambda d: _steps(d).__setitem__(2, "kill master"), "scenarios.x.steps[2]", "one action"),
    ("bad-duration", lambda d: _steps(d).__setitem__(1, {"wait": "soon"}), "scenarios.x.steps[1].wait", "not a duration"),
    ("bad-timeout", lambda d: _steps(d).__setitem__(3, {"wait_for": {"condition": "ready", "timeout": "later"}}),
     "scenarios.x.steps[3].wait_for", "not a duration"),
    ("unknown-choice", lambda d: _steps(d).__setitem__(0, {"probe": "begin"}), "scenarios.x.steps[0].probe", "must be one of start, stop"),
    ("missing-argument", lambda d: _steps(d).__setitem__(2, {"kill": None}), "scenarios.x.steps[2].kill", "missing argument target"),
    ("unknown-argument", lambda d: _steps(d).__setitem__(2, {"kill": {"target": "master", "signal": 9}}),
     "scenarios.x.steps[2].kill", "unknown argument signal"),
    ("unknown-metric", lambda d: _scenario(d).update(expect={"lost_keys": {"max": 0}}), "scenarios.x.expect.lost_keys", "unknown metric"),
    ("min-above-max", lambda d: _scenario(d).update(expect={"lost": {"min": 5, "max": 1}}), "scenarios.x.expect.lost", "min is greater than max"),
    ("bound-not-number", lambda d: _scenario(d).update(expect={"lost": {"max": "zero"}}), "scenarios.x.expect.lost.max", "must be a number"),
    ("bound-bool", lambda d: _scenario(d).update(expect={"lost": {"max": False}}), "scenarios.x.expect.lost.max", "must be a number"),
    ("bound-empty", lambda d: _scenario(d).update(expect={"lost": {}}), "scenarios.x.expect.lost", "give min, max or both"),
    ("bound-unknown-side", lambda d: _scenario(d).update(expect={"lost": {"maximum": 0}}), "scenarios.x.expect.lost.maximum", "unknown key"),
    ("bound-scalar", lambda d: _scenario(d).update(expect={"lost": 0}), "scenarios.x.expect.lost", "must be a mapping"),
    ("expect-by-mode-not-run", lambda d: _scenario(d).update(modes=["rdb"], expect_by_mode={"none": {"lost": {"max": 0}}}),
     "scenarios.x.expect_by_mode.none", "not one of this scenario's modes"),
    ("expect-by-mode-unknown-metric", lambda d: _scenario(d).update(expect_by_mode={"rdb": {"lsot": {"max": 0}}}),
     "scenarios.x.expect_by_mode.rdb.lsot", "unknown metric"),
    ("no-expectation", lambda d: _scenario(d).pop("expect"), "scenarios.x.expect", "no expectation for mode 'none'"),
    ("expectation-for-one-mode-only", lambda d: (_scenario(d).pop("expect"),
                                                 _scenario(d).update(expect_by_mode={"none": {"lost": {"min": 1}}})),
     "scenarios.x.expect", "no expectation for mode 'rdb'"),
]


@pytest.mark.parametrize("mutate, key, problem", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_lab_is_refused_naming_file_and_key(write_lab, mutate, key, problem):
    path = write_lab(mutate)
    with pytest.raises(LabFileError) as caught:
        parse_lab(path)
    assert caught.value.key == key
    assert caught.value.path == path
    assert f"{path}: {key}: " in str(caught.value)
    assert problem in str(caught.value)


def test_invalid_yaml_names_file_and_line(write_lab):
    path = write_lab(text="name: mini\nsummary: [unclosed\ntopology: {kind: single}\n")
    with pytest.raises(LabFileError) as caught:
        parse_lab(path)
    assert caught.value.key.startswith("line ")
    assert str(caught.value).startswith(f"{path}: line ")
    assert "not valid YAML" in str(caught.value)


def test_yaml_that_is_not_a_mapping_is_refused(write_lab):
    path = write_lab(text="- just\n- a list\n")
    with pytest.raises(LabFileError) as caught:
        parse_lab(path)
    assert str(caught.value).startswith(f"{path}: must be a mapping")


def test_unreadable_lab_file(tmp_path):
    with pytest.raises(LabFileError, match="cannot read"):
        parse_lab(tmp_path / "absent.yaml")


@pytest.mark.parametrize("target", ["sentinel", "redis-2"])
def test_target_matching_no_node_is_refused_by_validate(write_lab, target):
    path = write_lab(lambda d: _steps(d).__setitem__(2, {"kill": target}))
    with pytest.raises(LabFileError) as caught:     # the kind says which nodes a lab of this shape has
        validate_lab(parse_lab(path))
    assert caught.value.key == "scenarios.x.steps[2].kill"
    assert f"{path}: scenarios.x.steps[2].kill: target {target!r} matches no node" in str(caught.value)


def test_target_of_a_mapping_argument_is_checked(write_lab):
    path = write_lab(lambda d: _steps(d).__setitem__(3, {"wait_for": {"condition": "ready", "target": "replica"}}))
    with pytest.raises(LabFileError) as caught:
        validate_lab(parse_lab(path))
    assert caught.value.key == "scenarios.x.steps[3].wait_for"


def test_list_target_is_a_lab_file_error(write_lab):
    path = write_lab(lambda d: _steps(d).__setitem__(2, {"kill": ["master"]}))
    with pytest.raises(LabFileError):
        validate_lab(parse_lab(path))


def test_replicas_is_not_a_key_of_a_single_node_topology(write_lab):
    with pytest.raises(LabFileError, match="topology.replicas"):
        parse_lab(write_lab(lambda d: d["topology"].update(replicas=2)))


# ------------------------------------------------------------------ finding labs

def test_unknown_lab_name_is_a_usage_error():
    with pytest.raises(UsageError) as caught:
        lab_path("nosuchlab")
    assert "unknown lab 'nosuchlab'" in str(caught.value)
    assert "persistence" in caught.value.hint


def test_missing_lab_path_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no lab file at"):
        lab_path(str(tmp_path / "absent.yaml"))


def test_lab_loads_from_a_path(write_lab):
    path = write_lab()
    assert load_lab(str(path)).path == path


def test_unknown_scenario_lists_the_known_ones(persistence_lab):
    with pytest.raises(UsageError) as caught:
        persistence_lab.scenario("nosuch")
    assert "no scenario 'nosuch'" in str(caught.value)
    assert "kill-restart" in caught.value.hint


def test_check_mode(persistence_lab):
    assert persistence_lab.check_mode("rdb+aof") == "rdb+aof"
    with pytest.raises(UsageError, match="unknown mode 'bogus'"):
        persistence_lab.check_mode("bogus")


# ------------------------------------------------------------------ durations

@pytest.mark.parametrize("value, seconds", [
    ("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("0.5s", 0.5), ("2", 2.0), (" 3 s ", 3.0),
    (3, 3.0), (1.5, 1.5), (0, 0.0),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "", "2h", "2 seconds", "-1s", "s", "1.s", None, True, [2]])
def test_parse_duration_refuses(value):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan")])
def test_parse_duration_refuses_negative_and_non_finite_numbers(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_config_value_cannot_smuggle_a_second_directive(write_lab):
    with pytest.raises(LabFileError, match="topology.config.maxmemory"):
        parse_lab(write_lab(lambda d: d["topology"].update(config={"maxmemory": "1mb\nappendonly no"})))


def test_a_scenario_without_the_probe_is_refused(write_lab):
    def drop_probe(data):
        for scenario in data["scenarios"].values():
            scenario["steps"] = [s for s in scenario["steps"] if "probe" not in s]
    with pytest.raises(LabFileError, match=r"steps: nothing would be measured"):
        parse_lab(write_lab(drop_probe))
