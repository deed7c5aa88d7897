"""Our exception types. Exit codes are decided here and nowhere else.

0: every expectation met; 1: an expectation failed; 2: usage, lab file or
environment error (and, with a traceback, bugs); 130: interrupted by the user.
"""

EXIT_OK = 0
EXIT_EXPECTATION_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class LabError(Exception):
    """A known problem the user can fix. `hint` says how."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(LabError):
    """Unknown lab, scenario or mode; bad option values."""


class LabFileError(LabError):
    """A lab file that cannot be read, parsed or validated. Names the file and key."""

    def __init__(self, path, key: str, problem: str):
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"{where}: {problem}", "fix the lab file, then check it with `lab validate`")
        self.path = path
        self.key = key


class EnvironmentProblem(LabError):
    """Docker not reachable, compose v2 missing, image missing, port in use."""


class RuntimeFailure(LabError):
    """A Docker command failed or a node did not become ready while a lab ran."""


class ScenarioAborted(LabError):
    """A step could not be carried out (a node never became ready, no failover happened):
    the outcome deviates from what the scenario expects, so it exits like a failed expectation."""

    exit_code = EXIT_EXPECTATION_FAILED


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, LabError):
        return exc.exit_code
    return EXIT_ERROR
