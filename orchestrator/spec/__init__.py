"""Lab files as data: loading, validation against the registries, and the frozen dataclasses
everything else reads. This package imports nothing else of `orchestrator`."""

from .durations import parse_duration, whole_seconds
from .errors import LabError, LabFileError, UsageError
from .load import lab_names, lab_path, load_all_labs, load_lab, parse_lab
from .model import AOF_MODES, PERSISTENCE_MODES, Bound, Lab, Scenario, Step, TopologySpec, WorkloadSpec
from .params import Param
from .registry import ACTIONS, FAULT, KINDS, METRICS, RESTART, WORKLOADS, Applicability, load_plugins

__all__ = ["parse_duration", "whole_seconds", "LabError", "LabFileError", "UsageError", "lab_names", "lab_path",
           "load_all_labs", "load_lab", "parse_lab", "AOF_MODES", "PERSISTENCE_MODES", "Bound", "Lab", "Scenario",
           "Step", "TopologySpec", "WorkloadSpec", "Param", "ACTIONS", "FAULT", "KINDS", "METRICS", "RESTART",
           "WORKLOADS", "Applicability", "load_plugins"]
