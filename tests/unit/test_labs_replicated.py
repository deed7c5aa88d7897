"""Lab files with replicated topologies: replicas, sentinels and sentinel settings are
checked with the key path named; `lab validate` resolves targets in replicated labs."""

from __future__ import annotations

import pytest

from .helpers import refused

from orchestrator.errors import LabFileError
from orchestrator.spec import load_lab, parse_lab
from orchestrator.validate import validate_lab


def _topology(**topology):
    """A mutation for write_lab: replace MINIMAL_LAB's topology (a single node) with this one."""
    def mutate(d):
        d["topology"] = {"persistence": "rdb", "modes": ["rdb"], **topology}
        d["scenarios"]["x"].pop("modes", None)
    return mutate


def _refused(write_lab, mutate) -> LabFileError:
    error = refused(write_lab, mutate)
    assert f"{error.path}: {error.key}: " in str(error)
    return error


# ------------------------------------------------------------------ valid topologies

def test_replication_defaults_to_two_replicas(write_lab):
    spec = parse_lab(write_lab(_topology(kind="replication"))).topology
    assert (spec.kind, spec.replicas, "sentinels" in spec.params, "sentinel" in spec.params) == (
        "replication", 2, False, False)


def test_sentinel_defaults_to_two_replicas_and_three_sentinels(write_lab):
    spec = parse_lab(write_lab(_topology(kind="sentinel"))).topology
    assert (spec.kind, spec.replicas, spec.sentinels) == ("sentinel", 2, 3)


def test_single_has_no_replicas_or_sentinels(write_lab):
    spec = parse_lab(write_lab()).topology
    assert ("replicas" in spec.params, "sentinels" in spec.params) == (False, False)
    with pytest.raises(AttributeError, match="a single topology has no 'replicas'"):
        spec.replicas


def test_sentinel_settings_become_strings(write_lab):
    spec = parse_lab(write_lab(_topology(kind="sentinel", sentinels=5, replicas=1,
                                         sentinel={"quorum": 3, "down-after-milliseconds": 1500}))).topology
    assert (spec.replicas, spec.sentinels) == (1, 5)
    assert dict(spec.sentinel) == {"quorum": "3", "down-after-milliseconds": "1500"}


@pytest.mark.parametrize("quorum", [1, 3])
def test_quorum_bounds_are_inclusive(write_lab, quorum):
    spec = parse_lab(write_lab(_topology(kind="sentinel", sentinel={"quorum": quorum}))).topology
    assert spec.sentinel["quorum"] == str(quorum)


# ------------------------------------------------------------------ refused topologies

REFUSED = [
    # id, topology, key path the error must name, words the problem must contain
    ("replicas-in-single", dict(kind="single", replicas=1), "topology.replicas", "a single topology has no replicas"),
    ("sentinels-in-single", dict(kind="single", sentinels=3), "topology.sentinels", "a single topology has no sentinels"),
    ("sentinels-in-replication", dict(kind="replication", sentinels=3), "topology.sentinels",
     "a replication topology has no sentinels"),
    ("replicas-zero", dict(kind="replication", replicas=0), "topology.replicas", "from 1 to 5"),
    ("replicas-too-many", dict(kind="sentinel", replicas=6), "topology.replicas", "from 1 to 5"),
    ("replicas-text", dict(kind="replication", replicas="2"), "topology.replicas", "whole number"),
    ("replicas-bool", dict(kind="replication", replicas=True), "topology.replicas", "whole number"),
    ("replicas-float", dict(kind="replication", replicas=2.0), "topology.replicas", "whole number"),
    ("sentinels-zero", dict(kind="sentinel", sentinels=0), "topology.sentinels", "from 1 to 7"),
    ("sentinels-too-many", dict(kind="sentinel", sentinels=8), "topology.sentinels", "from 1 to 7"),
    ("sentinel-settings-in-replication", dict(kind="replication", sentinel={"quorum": 1}), "topology.sentinel",
     "only a sentinel topology"),
    ("sentinel-settings-in-single", dict(kind="single", sentinel={"quorum": 1}), "topology.sentinel",
     "only a sentinel topology"),
    ("unknown-sentinel-setting", dict(kind="sentinel", sentinel={"auth-pass": "secret"}), "topology.sentinel.auth-pass",
     "unknown Sentinel setting"),
    ("sentinel-setting-bool", dict(kind="sentinel", sentinel={"quorum": True}), "topology.sentinel.quorum",
     "strings or numbers"),
    ("sentinel-not-mapping", dict(kind="sentinel", sentinel=["quorum"]), "topology.sentinel", "must be a mapping"),
    ("quorum-zero", dict(kind="sentinel", sentinel={"quorum": 0}), "topology.sentinel.quorum", "greater than 0"),
    ("down-after-not-a-number", dict(kind="sentinel", sentinel={"down-after-milliseconds": "soon"}),
     "topology.sentinel.down-after-milliseconds", "whole number"),
    ("quorum-above-sentinels", dict(kind="sentinel", sentinel={"quorum": 4}), "topology.sentinel.quorum", "from 1 to 3"),
    ("quorum-above-given-sentinels", dict(kind="sentinel", sentinels=5, sentinel={"quorum": 6}),
     "topology.sentinel.quorum", "from 1 to 5"),
    ("quorum-negative", dict(kind="sentinel", sentinel={"quorum": -1}), "topology.sentinel.quorum", "whole number"),
    ("quorum-fraction", dict(kind="sentinel", sentinel={"quorum": 1.5}), "topology.sentinel.quorum", "whole number"),
    ("quorum-word", dict(kind="sentinel", sentinel={"quorum": "two"}), "topology.sentinel.quorum", "whole number"),
]


@pytest.mark.parametrize("topology, key, problem", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_topology_names_the_key(write_lab, topology, key, problem):
    error = _refused(write_lab, _topology(**topology))
    assert error.key == key
    assert problem in str(error)


# ------------------------------------------------------------------ lab validate

@pytest.mark.parametrize("name", ["sentinel", "replication"])
def test_real_replicated_labs_validate(name):
    lab = load_lab(name)
    assert validate_lab(lab) == sum(len(s.modes) for s in lab.scenarios.values())


def _kill(target):
    def mutate(d):
        _topology(kind="sentinel")(d)
        d["scenarios"]["x"]["steps"][2] = {"kill": target}
    return mutate


@pytest.mark.parametrize("target", ["old-master", "replica", "redis-3", "sentinel", "sentinel-3"])
def test_replicated_targets_are_accepted(write_lab, target):
    assert validate_lab(parse_lab(write_lab(_kill(target)))) == 1


@pytest.mark.parametrize("target", ["redis-4", "sentinel-4", "slave"])
def test_target_matching_no_node_is_refused(write_lab, target):
    path = write_lab(_kill(target))
    with pytest.raises(LabFileError) as caught:
        validate_lab(parse_lab(path))
    assert caught.value.key == "scenarios.x.steps[2].kill"
    assert f"target {target!r} matches no node" in str(caught.value)


def test_sentinel_target_is_refused_without_sentinels(write_lab):
    def mutate(d):
        _topology(kind="replication")(d)
        d["scenarios"]["x"]["steps"][3] = {"start": "sentinel-1"}
    with pytest.raises(LabFileError) as caught:
        validate_lab(parse_lab(write_lab(mutate)))
    assert caught.value.key == "scenarios.x.steps[3].start"


def test_old_master_accepted_in_replication_lab(write_lab):
    def mutate(d):
        _topology(kind="replication", replicas=1)(d)
        d["scenarios"]["x"]["steps"][3] = {"start": "old-master"}
    assert validate_lab(parse_lab(write_lab(mutate))) == 1


def test_partition_in_a_single_node_lab_is_refused_before_anything_runs(write_lab):
    def partition_step(lab):
        lab["scenarios"]["x"]["steps"][2] = {"partition": "master"}

    with pytest.raises(LabFileError, match=r"scenarios\.x\.steps\[2\]\.partition: a single topology has no network"):
        validate_lab(parse_lab(write_lab(partition_step)))
