"""Where the tool finds its data (labs/, templates/) and keeps state for `lab up`."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABS_DIR = Path(os.environ.get("LAB_LABS_DIR", ROOT / "labs"))
TEMPLATES_DIR = ROOT / "templates"


def state_dir() -> Path:
    """Rendered projects of labs started by `lab up` live here until `lab down`."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "redis-ha-lab"
