"""The FUSE side of the lose-unsynced-writes filesystem: libfuse3's high-level API through
mfusepy (ctypes), every request handed to the durability model.

Mount options and why:
- `-s` (one thread): the model is serialised anyway, and libfuse's multi-threaded loop cost
  more (measured with Redis everysec: about 100 us of daemon CPU per request against 60, and
  one 3-second stall). The control and writeback threads take the model's lock in between.
- No writeback_cache: with it the kernel keeps its own file sizes and would not see what a
  power loss cuts (it trusts its cached i_size for regular files), so every write(2) is one
  request here.
- attr_timeout, entry_timeout, negative_timeout 0: a power loss changes files behind the
  kernel's back, so the kernel must not answer lookups or sizes from its cache afterwards.
  No request on the write path depends on them.
- nopath: read, write, fsync and release come with the handle only; libfuse does not build
  a path string for them.
- hard_remove: unlink of an open file really unlinks (no .fuse_hidden renames to model).
- allow_other, default_permissions: other users (Redis as uid 999 in a container) use it and
  the kernel checks permissions as on a local filesystem; new files belong to their creator.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import mfusepy

from .control import FSNAME
from .model import DurabilityModel

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

MOUNT_OPTIONS = dict(
    foreground=True, nothreads=True, allow_other=True, default_permissions=True,
    subtype=FSNAME, attr_timeout=0, entry_timeout=0, negative_timeout=0,
    hard_remove=True, nopath=True,
)


def _fh(fip) -> int | None:
    return fip.contents.fh if fip else None


class _Fuse(mfusepy.FUSE):
    """mfusepy's glue, with the file handle passed on where mfusepy drops it (ftruncate,
    fchmod, fchown, futimens on an open file have no path under nopath), renameat2's flags,
    and UTIME_NOW/UTIME_OMIT."""

    def _path(self, path: bytes | None) -> str | None:
        return None if path is None else path.decode(self.encoding, self.errors)

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(self._path(old), self._path(new), flags)

    def truncate_fuse_3(self, path, length: int, fip) -> int:
        return self.operations.truncate(self._path(path), length, _fh(fip))

    def chmod_fuse_3(self, path, mode: int, fip) -> int:
        return self.operations.chmod(self._path(path), mode, _fh(fip))

    def chown_fuse_3(self, path, uid: int, gid: int, fip) -> int:
        unchanged = (1 << 32) - 1  # (uid_t)-1
        return self.operations.chown(self._path(path), -1 if uid == unchanged else uid,
                                     -1 if gid == unchanged else gid, _fh(fip))

    def utimens_fuse_3(self, path, buf, fip) -> int:
        times = None
        if buf:
            stamps = (buf.contents.actime, buf.contents.modtime)
            times = tuple(ts.tv_nsec if ts.tv_nsec in (UTIME_NOW, UTIME_OMIT) else ts.tv_sec * 10**9 + ts.tv_nsec
                          for ts in stamps)
        return self.operations.utimens(self._path(path), times, _fh(fip))


class UnsyncedOperations(mfusepy.Operations):
    """Requests to model calls. `op_counts` counts the requests of each kind (FUSE round trips)."""

    use_ns = True
    flag_nopath = True
    flag_nullpath_ok = True

    def __init__(self, model: DurabilityModel):
        self.model = model
        self.op_counts: Counter = Counter()

    @staticmethod
    def _caller() -> tuple[int, int]:
        uid, gid, _pid = mfusepy.fuse_get_context()
        return uid, gid

    def getattr(self, path, fh=None):
        self.op_counts["getattr"] += 1
        st = self.model.getattr(path, fh)
        return {
            "st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink,
            "st_uid": st.st_uid, "st_gid": st.st_gid, "st_size": st.st_size,
            "st_blocks": st.st_blocks, "st_blksize": st.st_blksize, "st_rdev": st.st_rdev,
            "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
        }

    def opendir(self, path):
        self.op_counts["opendir"] += 1
        return self.model.opendir(path)

    def readdir(self, path, fh):
        self.op_counts["readdir"] += 1
        return [".", ".."] + self.model.listdir(self.model.handle_path(fh))

    def releasedir(self, path, fh):
        self.op_counts["releasedir"] += 1
        self.model.release(fh)

    def fsyncdir(self, path, datasync, fh):
        self.op_counts["fsyncdir"] += 1
        self.model.fsync_dir(None, handle=fh)

    def readlink(self, path):
        self.op_counts["readlink"] += 1
        return self.model.readlink(path)

    def statfs(self, path):
        self.op_counts["statfs"] += 1
        sv = os.statvfs(self.model.backing)
        return {key: getattr(sv, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
            "f_files", "f_ffree", "f_favail", "f_flag", "f_namemax")}

    def open(self, path, flags):
        self.op_counts["open"] += 1
        return self.model.open(path, flags)

    def create(self, path, mode, flags):
        self.op_counts["create"] += 1
        return self.model.create(path, flags, mode, owner=self._caller())

    def read(self, path, size, offset, fh):
        self.op_counts["read"] += 1
        return self.model.read(fh, size, offset)

    def write(self, path, data, offset, fh):
        self.op_counts["write"] += 1
        return self.model.write(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self.op_counts["truncate"] += 1
        self.model.truncate(path, length, handle=fh)

    def fsync(self, path, datasync, fh):
        self.op_counts["fsync"] += 1
        self.model.fsync(fh, bool(datasync))

    def release(self, path, fh):
        self.op_counts["release"] += 1
        self.model.release(fh)

    def mkdir(self, path, mode):
        self.op_counts["mkdir"] += 1
        self.model.mkdir(path, mode, owner=self._caller())

    def rmdir(self, path):
        self.op_counts["rmdir"] += 1
        self.model.rmdir(path)

    def unlink(self, path):
        self.op_counts["unlink"] += 1
        self.model.unlink(path)

    def rename(self, old, new, flags=0):
        self.op_counts["rename"] += 1
        self.model.rename(old, new, flags)

    def symlink(self, target, source):
        self.op_counts["symlink"] += 1
        self.model.symlink(target, source, owner=self._caller())

    def link(self, target, source):
        self.op_counts["link"] += 1
        self.model.link(target, source)

    def chmod(self, path, mode, fh=None):
        self.op_counts["chmod"] += 1
        self.model.chmod(path, mode, handle=fh)

    def chown(self, path, uid, gid, fh=None):
        self.op_counts["chown"] += 1
        self.model.chown(path, uid, gid, handle=fh)

    def utimens(self, path, times=None, fh=None):
        self.op_counts["utimens"] += 1
        if times is not None and any(t in (UTIME_NOW, UTIME_OMIT) for t in times):
            current = self.model.getattr(path, fh)
            now = time.time_ns()
            old = (current.st_atime_ns, current.st_mtime_ns)
            times = tuple(now if t == UTIME_NOW else old[i] if t == UTIME_OMIT else t for i, t in enumerate(times))
        self.model.utimens(path, times, handle=fh)


def run_fuse(operations: UnsyncedOperations, mountpoint: str, runtime_dir: str) -> None:
    """Mount and serve until unmounted or signalled (SIGINT, SIGTERM, SIGHUP: libfuse then
    unmounts). `runtime_dir` (no commas) goes into the source column of /proc/mounts.
    Raises RuntimeError if libfuse fails."""
    fsname = FSNAME if "," in runtime_dir else f"{FSNAME}:{runtime_dir}"  # a comma would split the options
    _Fuse(operations, mountpoint, fsname=fsname, **MOUNT_OPTIONS)
