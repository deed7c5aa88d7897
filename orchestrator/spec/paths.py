"""Where the tool finds its data (the labs and templates that ship with it) and keeps state.

labs/ and templates/ sit at the top of the source tree; the build maps them into the wheel as
`orchestrator/labs` and `orchestrator/templates` (pyproject.toml), so an installed tool finds
them beside its own code and a source checkout finds them at the top.
"""

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
_SOURCE_ROOT = _PACKAGE.parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _SOURCE_ROOT / name


LABS_DIR = Path(os.environ.get("LAB_LABS_DIR") or _data_dir("labs"))
TEMPLATES_DIR = _data_dir("templates")


def state_dir() -> Path:
    """Rendered projects of labs kept running (`lab up`, `lab run --keep`) live here until `lab down`."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "redis-ha-lab"
