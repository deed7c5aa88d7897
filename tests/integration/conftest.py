"""Fixtures for tests on real containers. Without Docker they skip, except in CI
(CI=true), where a missing engine is an error: the Docker tests must run there."""

from __future__ import annotations

import os
import subprocess

import pytest

from orchestrator.engine.docker import Engine
from orchestrator.engine.lifecycle import RunSettings
from orchestrator.engine.topology import LABEL_LAB
from orchestrator.errors import LabError
from orchestrator.image import resolve_image
from orchestrator.report import deviations

# Away from the default 7100 so a lab a developer keeps running does not collide.
PORT_BASE = int(os.environ.get("LAB_TEST_PORT_BASE", "7300"))


@pytest.fixture(scope="session")
def engine() -> Engine:
    engine = Engine()
    try:
        engine.version()
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but Docker is not usable: {exc}")
        pytest.skip(f"Docker is not usable here: {exc}")
    return engine


@pytest.fixture(scope="session")
def image(engine) -> str:
    try:
        return resolve_image(engine).name
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but no Redis image: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def settings(image) -> RunSettings:
    return RunSettings(image=image, port_base=PORT_BASE)


def lab_resources(label: str = LABEL_LAB) -> list[str]:
    """Names of containers, networks and volumes carrying `label` (key or key=value)."""
    found = []
    for kind in ("container", "network", "volume"):
        args = ["docker", kind, "ls", "-q", "--filter", f"label={label}"]
        if kind == "container":
            args.insert(3, "-a")
        found += subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    return found


# The labs these tests run (their resources carry `redis-ha-lab.lab=<name>`); other labelled
# resources on the machine (another developer's lab) are none of their business.
TEST_LABS = ("persistence", "replication", "sentinel", "cluster", "tiny", "broken", "messaging")


def resources_of_tested_labs() -> set[str]:
    return {r for lab in TEST_LABS for r in lab_resources(f"{LABEL_LAB}={lab}")}


@pytest.fixture
def no_leftovers(engine):
    """Assert that a test leaves no lab resources behind (and remove them if it did)."""
    before = resources_of_tested_labs()
    yield
    left = resources_of_tested_labs() - before
    for lab in TEST_LABS:
        if left & set(lab_resources(f"{LABEL_LAB}={lab}")):
            engine.remove_labelled(f"{LABEL_LAB}={lab}")
    assert not left, f"the test left lab resources behind: {sorted(left)}"


@pytest.fixture(scope="session")
def verified(settings) -> list:
    """Every scenario of every shipped lab in every mode, run once as `lab verify` runs them (in
    parallel worker processes, DEFAULT_JOBS at once); the lab modules' tests read their results.
    Nothing may be left behind: containers, networks, volumes or power-loss mounts."""
    from orchestrator.spec import load_all_labs
    from orchestrator.engine.topology import DEFAULT_JOBS
    from orchestrator.suite import plan, run_plan

    before = resources_of_tested_labs()
    done = run_plan(plan(load_all_labs()), settings, jobs=DEFAULT_JOBS)
    assert resources_of_tested_labs() == before, "runs left containers, networks or volumes behind"
    assert "fuse.unsynced" not in open("/proc/mounts").read(), "a power-loss filesystem stayed mounted"
    return done


def why_not_passed(result) -> str:
    """A failed assertion's message: the report's own deviations and the probe's errors by kind."""
    return "; ".join(filter(None, [deviations(result), f"errors by kind: {result.error_kinds}"]))


def step_time(result, prefix: str) -> float:
    """When the run's first step whose description starts with `prefix` began (run clock)."""
    return next(e.t for e in result.events if e.source == "tool" and e.what.startswith(prefix))


def event_times(result, source: str, text: str) -> list[float]:
    """Times of the timeline's events from `source` (client, server) whose text contains `text`."""
    return [e.t for e in result.events if e.source == source and text in e.what]
