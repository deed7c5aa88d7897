"""Shared fixtures for the unit tests: no Docker and no Redis server, ever.

Every unit test runs with python-on-whales' DockerClient replaced by a stub, and redis-py's
connect() replaced by one that raises, so a test that would reach the engine or a lab's
Redis fails loudly instead of touching containers another process may own.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest
import redis.connection
import yaml

import orchestrator.engine.docker
from orchestrator.spec import load_lab


class _NoDocker:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a unit test tried to create a Docker client")


def _no_redis(self, *args, **kwargs):
    # AssertionError, not a RedisError: the clients module swallows RedisError.
    raise AssertionError(f"a unit test tried to connect to Redis at {self.host}:{self.port}")


@pytest.fixture(autouse=True)
def no_docker(monkeypatch, tmp_path):
    monkeypatch.setattr(orchestrator.engine.docker, "DockerClient", _NoDocker)
    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", _no_redis)
    monkeypatch.delenv("LAB_IMAGE", raising=False)
    monkeypatch.delenv("LAB_PORT_BASE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def persistence_lab():
    return load_lab("persistence")


@pytest.fixture(scope="session")
def sentinel_lab():
    return load_lab("sentinel")


@pytest.fixture(scope="session")
def replication_lab():
    return load_lab("replication")


# A small valid lab; malformed variants are made by mutating a copy of it.
# Steps: [0] probe start, [1] wait, [2] kill, [3] start, [4] probe stop.
MINIMAL_LAB = {
    "name": "mini",
    "summary": "a tiny lab for tests",
    "topology": {"kind": "single", "persistence": "rdb", "modes": ["none", "rdb"], "save": "1 1"},
    "scenarios": {
        "x": {
            "summary": "kill and restart",
            "explain": "what it shows",
            "steps": [
                {"probe": "start"},
                {"wait": "1s"},
                {"kill": "master"},
                {"start": "master"},
                {"probe": "stop"},
            ],
            "expect": {"lost": {"max": 0}},
        }
    },
}


@pytest.fixture
def write_lab(tmp_path) -> Callable[..., Path]:
    """write_lab(mutate) writes MINIMAL_LAB changed by `mutate(dict)`; write_lab(text=...) writes raw text."""

    def write(mutate: Callable[[dict], None] | None = None, text: str | None = None, name: str = "lab.yaml") -> Path:
        if text is None:
            raw = copy.deepcopy(MINIMAL_LAB)
            if mutate is not None:
                mutate(raw)
            text = yaml.safe_dump(raw, sort_keys=False)
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
