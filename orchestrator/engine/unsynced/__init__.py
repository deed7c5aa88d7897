"""A filesystem that forgets what was not fsynced, to simulate a power loss (issue 10).

`UnsyncedMount` mounts a FUSE filesystem (daemon.py, fusefs.py) serving a backing directory
through the durability model (model.py); `power_loss()` puts the backing directory back into
its durable state. `fuse_available()` says whether this machine can mount it, and
`unmount_leftovers()` removes mounts that a killed process left behind.

Importing this package does not import mfusepy (only the daemon process does)."""

from .control import UnsyncedError
from .mount import UnsyncedMount, fuse_available, is_mounted, mounted_paths, unmount, unmount_leftovers

__all__ = ["UnsyncedError", "UnsyncedMount", "fuse_available", "is_mounted", "mounted_paths", "unmount",
           "unmount_leftovers"]
