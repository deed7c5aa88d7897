"""`lab validate`: everything that can be checked without a container.

Schema, actions and metrics are checked while loading (labs.py); here every step's
target is resolved against the topology of every mode, and every template is rendered.
"""

from __future__ import annotations

import yaml

from .actions import ACTIONS
from .errors import LabFileError
from .labs import Lab
from .render import render_files
from .topology import derive_topology


def validate_lab(lab: Lab) -> int:
    """Raise LabFileError on the first problem; returns how many (scenario, mode) pairs were rendered."""
    rendered = 0
    for scenario in lab.scenarios.values():
        for mode in scenario.modes:
            topo = derive_topology(lab, mode, run_id="validate", image="redis", scenario=scenario)
            names = {n.name for n in topo.nodes} | {n.role for n in topo.nodes} | {"old-master", "down"}
            for step in scenario.steps:
                if step.action == "partition" and not topo.partitionable:
                    raise LabFileError(lab.path, f"scenarios.{scenario.name}.steps[{step.index}].partition",
                                       f"a {lab.topology.kind} topology has no network between nodes to cut "
                                       f"(partition needs kind replication, sentinel or cluster)")
                for target in ACTIONS[step.action].targets(step.args):
                    if target not in names:
                        raise LabFileError(lab.path, f"scenarios.{scenario.name}.steps[{step.index}].{step.action}",
                                           f"target {target!r} matches no node (nodes and roles: {', '.join(sorted(names))})")
            files = render_files(topo)
            try:
                yaml.safe_load(files["compose.yaml"])
            except yaml.YAMLError as exc:
                raise LabFileError(lab.path, f"scenarios.{scenario.name}", f"renders an invalid compose file: {exc}") from None
            rendered += 1
    return rendered
