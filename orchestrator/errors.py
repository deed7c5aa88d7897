"""Our exception types. Exit codes are decided in `exit_code_for` and nowhere else.

0: every run measured and as expected; 1: a run FAILed (an expectation missed) or ERRORed (it
could not measure); 2: usage, lab file or environment error found before anything started
(and, with a traceback, bugs); 130: interrupted by the user.
"""

from .spec.errors import (EXIT_ERROR, EXIT_EXPECTATION_FAILED, EXIT_INTERRUPTED, EXIT_OK, LabError, LabFileError,
                          UsageError, exit_code_for)

__all__ = ["EXIT_ERROR", "EXIT_EXPECTATION_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "LabError", "LabFileError",
           "UsageError", "exit_code_for", "EnvironmentProblem", "RuntimeFailure", "ScenarioAborted"]


class EnvironmentProblem(LabError):
    """Docker not reachable, compose v2 missing, image missing, port in use."""


class RuntimeFailure(LabError):
    """A Docker command failed or a node did not become ready while a lab ran: the run could
    not measure (ERROR)."""


class ScenarioAborted(LabError):
    """A step could not be carried out (a node never became ready, no failover within the
    timeout, the probe died): the run could not measure what it claims (ERROR)."""

    exit_code = EXIT_EXPECTATION_FAILED
