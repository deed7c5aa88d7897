"""Small helpers the unit tests share (not fixtures: plain functions)."""

from __future__ import annotations

import pytest

from orchestrator.engine.topology import DEFAULT_PORT_BASE, Topology
from orchestrator.errors import LabFileError
from orchestrator.kinds import derive_topology
from orchestrator.spec import parse_lab


def topology_of(lab, scenario: str | None = None, mode: str = "aof-everysec", port_base: int = DEFAULT_PORT_BASE,
                run_id: str = "r1", image: str = "redis:7.2") -> Topology:
    chosen = lab.scenario(scenario) if scenario else None
    return derive_topology(lab, mode, run_id=run_id, image=image, port_base=port_base, scenario=chosen)


def setting_values(node, key: str) -> list[str]:
    return [s.value for s in node.settings if s.key == key]


def setting_value(node, key: str) -> str:
    (value,) = setting_values(node, key)
    return value


def refused(write_lab, mutate) -> LabFileError:
    """The LabFileError parse_lab raises for the lab file write_lab(mutate) writes; it names that file."""
    path = write_lab(mutate)
    with pytest.raises(LabFileError) as caught:
        parse_lab(path)
    assert caught.value.path == path
    return caught.value
