"""Topology kinds: one module per kind (single, replication, sentinel, cluster), each a subclass
of `base.Kind` registered when its module is imported. They are found by listing this folder, so
a new kind is one new module."""

from __future__ import annotations

import importlib
import pkgutil

from ..spec import KINDS, Lab, Scenario

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):    # _name: a draft, not yet a plug-in
        importlib.import_module(f"{__name__}.{_module.name}")


def kind_of(lab: Lab):
    return KINDS[lab.topology.kind]


def derive_topology(lab: Lab, mode: str, run_id: str, image: str, port_base: int = 7100,
                    scenario: Scenario | None = None):
    """The lab's plan for one run in one mode (its kind derives it)."""
    return kind_of(lab).derive(lab, mode, run_id, image, port_base, scenario)
