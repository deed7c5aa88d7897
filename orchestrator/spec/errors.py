"""The error types every layer raises, and the exit codes they map to (decided in one place:
`exit_code_for`).

0: every run measured and as expected; 1: a run FAILed or ERRORed; 2: a usage, lab-file or
environment error found before anything started (and, with a traceback, bugs); 130: interrupted.
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
    """Unknown lab, scenario or mode; bad option values; an output path that cannot be written."""


class LabFileError(LabError):
    """A lab file that cannot be read, parsed or validated. Names the file and key."""

    def __init__(self, path, key: str, problem: str):
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"{where}: {problem}", "fix the lab file, then check it with `lab validate`")
        self.path = path
        self.key = key
        self.problem = problem


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, LabError):
        return exc.exit_code
    return EXIT_ERROR
