"""`lab validate`: everything that can be checked without a container.

The lab file itself (schema, actions and their arguments, targets, workload options, metrics,
what applies to the kind and the modes) is checked while loading (spec); here every scenario's
compose project is rendered in every mode and the compose file parsed back.
"""

from __future__ import annotations

import yaml

from .engine.render import render_files
from .errors import LabFileError
from .kinds import derive_topology
from .spec import Lab


def validate_lab(lab: Lab) -> int:
    """Raise LabFileError on the first problem; returns how many (scenario, mode) pairs were rendered."""
    rendered = 0
    for scenario in lab.scenarios.values():
        for mode in scenario.modes:
            topo = derive_topology(lab, mode, run_id="validate", image="redis", scenario=scenario)
            files = render_files(topo)
            try:
                yaml.safe_load(files["compose.yaml"])
            except yaml.YAMLError as exc:
                raise LabFileError(lab.path, f"scenarios.{scenario.name}", f"renders an invalid compose file: {exc}") from None
            rendered += 1
    return rendered
