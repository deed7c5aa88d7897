"""Run many scenarios: `lab verify` (every scenario and mode of some labs) and
`lab compare persistence` (the persistence scenarios across every mode)."""

from __future__ import annotations

from typing import Callable, Iterable

from .labs import Lab
from .lifecycle import RunSettings
from .runtime import Engine
from .scenario import Result, run_scenario


def plan(labs: Iterable[Lab]) -> list[tuple[Lab, str, str]]:
    """(lab, scenario, mode) for every scenario of every lab, in every mode it declares."""
    return [(lab, name, mode) for lab in labs for name, scenario in lab.scenarios.items() for mode in scenario.modes]


def run_plan(runs: list[tuple[Lab, str, str]], settings: RunSettings,
             on_result: Callable[[Result], None] = lambda r: None) -> list[Result]:
    engine = Engine()
    results = []
    for lab, scenario, mode in runs:
        result = run_scenario(lab, scenario, mode, settings, engine=engine)
        on_result(result)
        results.append(result)
    return results
