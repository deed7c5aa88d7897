"""The cluster lab on real containers: every scenario once (runs in parallel, as `lab verify`
runs them), then assertions per shard, on the slot map, redirects and lost writes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.spec import load_lab

from .conftest import PORT_BASE, event_times, why_not_passed

LAB = load_lab("cluster")
SCENARIOS = list(LAB.scenarios)


@pytest.fixture(scope="module")
def results(verified):
    """This lab's runs of the one verify-like run of every lab (conftest.verified)."""
    done = [r for r in verified if r.lab in ("cluster",)]
    return {r.scenario: r for r in done}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_meets_its_expectation(results, scenario):
    result = results[scenario]
    assert result.passed, why_not_passed(result)
    assert result.metrics["acked"] > 100, "the probe barely wrote"   # measured 1378-2089 on a busy host


def test_kill_master_promotes_its_replica(results):
    result = results["kill-master"]
    first = result.shards[0]
    assert result.roles[first["master_at_start"]] == "down"
    promoted = first["replicas"][0]
    assert result.roles[promoted] == "master"
    # the cluster's own sequence: FAIL, then the replica wins its election
    fail, won = min(event_times(result, "server", "as failing")), min(event_times(result, "server", "Failover election won"))
    assert fail < won
    assert f"{promoted}: Failover election won" in next(e.what for e in result.events if "election won" in e.what)
    # the killed shard waited for the election; the other shards only for the CLUSTERDOWN window
    assert result.metrics["shard_unavailable_s"] > result.metrics["other_shards_unavailable_s"]
    assert all(row["lost"] == 0 for row in result.shards[1:])


def test_kill_shard_full_coverage_stops_every_shard_partial_coverage_only_one(results):
    full, partial = results["kill-shard"], results["kill-shard-partial-coverage"]
    assert full.metrics["other_shards_unavailable_s"] >= 1.0
    assert all(row["errors"] > 0 for row in full.shards)          # every shard refused writes
    assert partial.metrics["other_shards_unavailable_s"] < 0.5
    dead, *others = partial.shards
    assert all(row["errors"] * 20 < dead["errors"] for row in others)   # only the dead shard refused writes
    assert event_times(full, "server", "Cluster state changed: fail")


def test_reshard_moves_slots_and_the_client_follows_redirects(results):
    m = results["reshard"].metrics
    assert 1700 <= m["slots_moved"] <= 1900        # a third of 5461
    assert m["keys_moved"] > 0 and m["redirects"] > 0
    assert m["nodes_agreeing"] == 6 and m["lost"] == 0


def test_rebalance_spreads_the_slots_over_four_masters(results):
    result = results["add-node-rebalance"]
    assert result.roles["redis-7"] == "master"
    assert result.metrics["master_slots_min"] >= 4000 and result.metrics["master_slots_max"] <= 4200
    assert result.metrics["nodes_agreeing"] == 7


def test_partition_loses_what_the_isolated_master_acknowledged(results):
    result = results["partition-master"]
    isolated = result.shards[0]["master_at_start"]
    assert result.roles[isolated].startswith("replica of")       # it rejoined as a replica
    assert result.shards[0]["lost"] == result.metrics["lost"] > 0  # only its shard lost writes
    assert 1.0 <= result.metrics["lost_window_s"] <= 8.0


def test_lab_up_cluster_prints_how_to_connect(image, no_leftovers):
    runner = CliRunner()
    args = ["--image", image, "--port-base", str(PORT_BASE + 100)]
    try:
        up = runner.invoke(cli, args + ["up", "cluster"])
        assert up.exit_code == 0, up.output
        assert f"redis-cli -c -p {PORT_BASE + 100}" in up.output
        status = runner.invoke(cli, args + ["status"])
        assert status.output.count("replica of redis-") == 3, status.output
    finally:
        runner.invoke(cli, args + ["down", "cluster"])
