"""What a disk would still hold if the power went out now: the durability model behind the
lose-unsynced-writes filesystem. Pure Python over a backing directory; no FUSE here.

The backing directory holds what running processes see: writes, truncations and namespace
changes go through to it at once (appended bytes may wait in memory, see below). The model
remembers what is needed to put the backing directory back into its *durable* state, and
`power_loss()` does exactly that. "Durable" is a state of the model: the backing files
themselves are never fsynced (the host does not lose power), so fsync costs no disk flush.

File data (per inode):
- A write or truncation is volatile until the file is fsync'ed or fdatasync'ed (either one
  makes the whole file durable: its data and its size), or until the modelled kernel
  writeback: at each `writeback()` tick, a file whose oldest volatile change is at least
  `dirty_expire_s` old becomes durable as a whole, as Linux's flusher writes back inodes
  dirtied more than dirty_expire_centisecs ago (default 30 s, checked every
  dirty_writeback_centisecs, default 5 s). `freeze_writeback()` stops that at the moment the
  power goes out, until `power_loss()`.
- At power loss a file goes back to its durable size (un-fsynced appends are cut, extensions
  removed, truncations undone) and every byte range overwritten since its last durable point
  gets its durable content back.

Namespace (create, mkdir, symlink, link, unlink, rmdir, rename): one ordered journal, as
ext4 (data=ordered) and XFS keep. An operation is volatile until the next journal commit,
which happens on any fsync or fdatasync of a file (on ext4 that forces a commit of the
running transaction, which holds every earlier metadata change), on any directory fsync, at
a writeback tick (ext4 commits every 5 s) and on `sync()`. A commit makes every earlier
namespace operation durable, in order; never a later one without the earlier ones. At power
loss the uncommitted operations are undone newest first: created names disappear, removed
names come back with their content, renames go back, and a file a rename replaced returns.
A name that is removed or replaced is kept until its removal is durable, in a hidden
directory of the backing directory (GRAVEYARD) that the mount does not show.

Appends are the hot path (an AOF grows by one write per command). Volatile data appended at
the end of a file is kept in memory and written to the backing file in one piece when the
file becomes durable, when anything else touches the file (a read, an overwrite, a
truncation, a stat), or once PENDING_LIMIT bytes have gathered; at power loss it is dropped.
So while mounted, the backing directory may lag behind what processes see by those bytes.

Not modelled: mode, owner and timestamps (durable at once), torn or reordered writes inside a
file, writeback triggered by memory pressure (dirty_background_ratio), per-directory
durability (a strict POSIX reading where only an fsync of the parent makes a name durable),
and fdatasync skipping the journal for pure overwrites.
"""

from __future__ import annotations

import bisect
import errno
import os
import shutil
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

GRAVEYARD = ".unsynced-removed"
PENDING_LIMIT = 1 << 20  # bytes of appended data kept in memory per file before writing them out
RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCHANGE = 2


def _error(code: int, path: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), path)


@dataclass(eq=False)
class _FileState:
    """One inode that is open or has volatile changes."""
    key: tuple[int, int]           # (st_dev, st_ino) on the backing filesystem
    name: str                      # the path it was last opened under: for reports only
    fd: int                        # own read-write descriptor: finds the inode wherever its names went
    size: int                      # current size as processes see it, pending bytes included
    durable_size: int
    # Durable content of ranges overwritten or truncated away since the last durable point:
    # (offset, bytes), sorted by offset, disjoint, all below durable_size.
    saved: list[tuple[int, bytes]] = field(default_factory=list)
    dirty_since: float | None = None   # clock time of the oldest volatile change
    volatile_bytes: int = 0            # bytes written since the last durable point
    handles: int = 0
    pending: bytearray = field(default_factory=bytearray)  # appended, not yet in the backing file
    pending_at: int = 0                # the file offset of pending[0]


@dataclass(eq=False)
class _Handle:
    fd: int
    file: _FileState | None            # None for a directory
    path: str
    generation: int


@dataclass
class _NamespaceOp:
    change: str                        # create, mkdir, link, unlink, rmdir, rename
    path: str                          # the name created or removed; a rename's new name
    old_path: str | None = None        # a rename's old name
    buried: str | None = None          # GRAVEYARD entry holding what was removed or replaced

    def describe(self) -> str:
        if self.change == "rename":
            replaced = " (replacing a file)" if self.buried else ""
            return f"rename {self.old_path} -> {self.path}{replaced}"
        return f"{self.change} {self.path}"


@dataclass
class _Counters:
    fsync_calls: int = 0               # fsync and fdatasync on files
    fdatasync_calls: int = 0           # of which fdatasync
    dir_fsync_calls: int = 0
    fsync_calls_by_file: Counter = field(default_factory=Counter)
    dir_fsync_calls_by_dir: Counter = field(default_factory=Counter)
    bytes_written: int = 0
    bytes_made_durable: int = 0        # by fsync, fdatasync and sync
    bytes_made_durable_by_writeback: int = 0
    files_written_back: int = 0
    writeback_ticks: int = 0
    sync_calls: int = 0
    namespace_ops: int = 0
    namespace_ops_committed: int = 0
    power_losses: int = 0
    bytes_discarded: int = 0           # bytes written but not durable at power losses
    bytes_cut: int = 0                 # file length removed at power losses
    bytes_reverted: int = 0            # durable content written back at power losses
    namespace_ops_undone: int = 0


class DurabilityModel:
    """The backing directory seen through the durability model. Paths are absolute inside the
    filesystem ("/appendonlydir/x"); a handle is the int `open`, `create` or `opendir`
    returned. Errors are OSError with the errno a filesystem would give. Thread-safe."""

    def __init__(self, backing: str | os.PathLike, dirty_expire_s: float | None = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.backing = os.path.abspath(backing)
        if not os.path.isdir(self.backing):
            raise _error(errno.ENOTDIR, self.backing)
        self.dirty_expire_s = dirty_expire_s
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()  # public methods take it once; internal ones (_x) never
        self._files: dict[tuple[int, int], _FileState] = {}
        self._dirty: dict[tuple[int, int], _FileState] = {}
        self._handles: dict[int, _Handle] = {}
        self._journal: list[_NamespaceOp] = []
        self._generation = 0
        self._writeback_frozen = False
        self._buried_seq = 0
        self._counters = _Counters()

    # ------------------------------------------------------------------ paths
    def real_path(self, path: str) -> str:
        """The backing path of `path`; ENOENT for the hidden GRAVEYARD."""
        if self.is_hidden(path):
            raise _error(errno.ENOENT, path)
        return self.backing + path if path != "/" else self.backing

    @staticmethod
    def is_hidden(path: str) -> bool:
        return path == "/" + GRAVEYARD or path.startswith("/" + GRAVEYARD + "/")

    # ------------------------------------------------------------------ reading
    def getattr(self, path: str | None, handle: int | None = None) -> os.stat_result:
        with self._lock:
            if handle is not None:
                h = self._handle(handle)
                if h.file is not None and h.file.pending and h.generation == self._generation:
                    self._flush(h.file)
                return os.fstat(h.fd)
            real = self.real_path(path)
            st = os.lstat(real)
            f = self._files.get((st.st_dev, st.st_ino))
            if f is not None and f.pending:
                self._flush(f)
                st = os.lstat(real)
            return st

    def listdir(self, path: str) -> list[str]:
        names = os.listdir(self.real_path(path))
        return [n for n in names if n != GRAVEYARD] if path == "/" else names

    def readlink(self, path: str) -> str:
        return os.readlink(self.real_path(path))

    def read(self, handle: int, size: int, offset: int) -> bytes:
        with self._lock:
            h = self._live_handle(handle)
            if h.file is not None and h.file.pending:
                self._flush(h.file)
            return os.pread(h.fd, size, offset)

    # ------------------------------------------------------------------ handles
    def open(self, path: str, flags: int) -> int:
        """Open a file. Write access opens the backing file read-write (the model reads durable
        bytes before they are overwritten); O_APPEND is dropped (the kernel gives offsets)."""
        with self._lock:
            real = self.real_path(path)
            writing = flags & os.O_ACCMODE != os.O_RDONLY
            fd = os.open(real, (os.O_RDWR if writing else os.O_RDONLY) | (flags & os.O_NOFOLLOW))
            handle = self._add_handle(fd, path)
            if writing and flags & os.O_TRUNC:
                self._truncate(self._handles[handle], 0)
            return handle

    def create(self, path: str, flags: int, mode: int, owner: tuple[int, int] | None = None) -> int:
        """Create (or, as open(2) with O_CREAT, open) a file; `owner` (uid, gid) is set on a new one."""
        with self._lock:
            real = self.real_path(path)
            existed = os.path.lexists(real)
            fd = os.open(real, os.O_RDWR | os.O_CREAT | (flags & os.O_EXCL), mode)
            if not existed:
                self._set_owner(real, owner, fd=fd)
                self._log(_NamespaceOp("create", path))
            handle = self._add_handle(fd, path)
            if existed and flags & os.O_TRUNC:
                self._truncate(self._handles[handle], 0)
            return handle

    def opendir(self, path: str) -> int:
        with self._lock:
            fd = os.open(self.real_path(path), os.O_RDONLY | os.O_DIRECTORY)
            self._handles[fd] = _Handle(fd, None, path, self._generation)
            return fd

    def release(self, handle: int) -> None:
        with self._lock:
            h = self._handles.pop(handle, None)
            if h is None:
                return
            os.close(h.fd)
            if h.file is not None and h.generation == self._generation:
                h.file.handles -= 1
                self._forget_if_idle(h.file)

    def handle_path(self, handle: int) -> str:
        return self._handle(handle).path

    # ------------------------------------------------------------------ data
    def write(self, handle: int, data: bytes, offset: int) -> int:
        with self._lock:
            h = self._live_handle(handle)
            f = h.file
            if offset == f.size and offset >= f.durable_size and data:
                if not f.pending:
                    f.pending_at = offset
                f.pending += data
                written = len(data)
                if len(f.pending) >= PENDING_LIMIT:
                    self._flush(f)
            else:
                if f.pending:
                    self._flush(f)
                if offset < f.durable_size:
                    self._save_durable(f, h.fd, offset, min(offset + len(data), f.durable_size))
                written = os.pwrite(h.fd, data, offset)
            if offset + written > f.size:
                f.size = offset + written
            if f.dirty_since is None:
                self._mark_volatile(f, written)
            else:
                f.volatile_bytes += written
            self._counters.bytes_written += written
            return written

    def truncate(self, path: str | None, length: int, handle: int | None = None) -> None:
        with self._lock:
            if handle is not None:
                self._truncate(self._live_handle(handle), length)
                return
            fd = os.open(self.real_path(path), os.O_RDWR)
            f = None
            try:
                f = self._file_for(fd, path)
                self._truncate(_Handle(fd, f, path, self._generation), length)
            finally:
                os.close(fd)
                if f is not None:
                    self._forget_if_idle(f)

    def fsync(self, handle: int, datasync: bool = False) -> None:
        """fsync/fdatasync of a file: the file's data and size become durable, and the journal
        commits. A directory handle is a directory fsync."""
        with self._lock:
            h = self._live_handle(handle)
            if h.file is None:
                self._fsync_dir(h.path)
                return
            if self._journal:
                self._commit_journal()
            self._make_durable(h.file)
            c = self._counters
            c.fsync_calls += 1
            c.fdatasync_calls += bool(datasync)
            c.fsync_calls_by_file[h.path] += 1

    def fsync_dir(self, path: str | None, handle: int | None = None) -> None:
        with self._lock:
            self._fsync_dir(self._live_handle(handle).path if handle is not None else path)

    # ------------------------------------------------------------------ namespace
    def mkdir(self, path: str, mode: int, owner: tuple[int, int] | None = None) -> None:
        with self._lock:
            real = self.real_path(path)
            os.mkdir(real, mode)
            self._set_owner(real, owner)
            self._log(_NamespaceOp("mkdir", path))

    def symlink(self, path: str, target: str, owner: tuple[int, int] | None = None) -> None:
        with self._lock:
            real = self.real_path(path)
            os.symlink(target, real)
            self._set_owner(real, owner)
            self._log(_NamespaceOp("create", path))

    def link(self, path: str, existing: str) -> None:
        with self._lock:
            os.link(self.real_path(existing), self.real_path(path))
            self._log(_NamespaceOp("link", path))

    def unlink(self, path: str) -> None:
        with self._lock:
            real = self.real_path(path)
            if stat.S_ISDIR(os.lstat(real).st_mode):
                raise _error(errno.EISDIR, path)
            self._log(_NamespaceOp("unlink", path, buried=self._bury(real)))

    def rmdir(self, path: str) -> None:
        with self._lock:
            real = self.real_path(path)
            if path == "/":
                raise _error(errno.EBUSY, path)
            if not stat.S_ISDIR(os.lstat(real).st_mode):
                raise _error(errno.ENOTDIR, path)
            if os.listdir(real):
                raise _error(errno.ENOTEMPTY, path)
            self._log(_NamespaceOp("rmdir", path, buried=self._bury(real)))

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        """rename(2), and renameat2's RENAME_NOREPLACE; RENAME_EXCHANGE gives EINVAL."""
        with self._lock:
            real_old, real_new = self.real_path(old), self.real_path(new)
            if flags & RENAME_EXCHANGE or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
                raise _error(errno.EINVAL, new)
            st_old = os.lstat(real_old)
            buried = None
            try:
                st_new = os.lstat(real_new)
            except FileNotFoundError:
                st_new = None
            if st_new is not None:
                if flags & RENAME_NOREPLACE:
                    raise _error(errno.EEXIST, new)
                if (st_old.st_dev, st_old.st_ino) == (st_new.st_dev, st_new.st_ino):
                    return  # two names of one inode: rename(2) does nothing
                self._check_replace(st_old, st_new, real_new, new)
                buried = self._bury(real_new)
            try:
                os.rename(real_old, real_new)
            except OSError:
                if buried:
                    os.rename(self._buried_path(buried), real_new)
                raise
            self._log(_NamespaceOp("rename", new, old_path=old, buried=buried))
            self._renamed(old, new)

    def chmod(self, path: str | None, mode: int, handle: int | None = None) -> None:
        if handle is not None:
            os.fchmod(self._handle(handle).fd, mode)
        else:
            os.chmod(self.real_path(path), mode, follow_symlinks=False)

    def chown(self, path: str | None, uid: int, gid: int, handle: int | None = None) -> None:
        if handle is not None:
            os.fchown(self._handle(handle).fd, uid, gid)
        else:
            os.lchown(self.real_path(path), uid, gid)

    def utimens(self, path: str | None, times_ns: tuple[int, int] | None, handle: int | None = None) -> None:
        """Set (atime, mtime) in ns; None sets both to now."""
        if handle is not None:
            target, options = self._handle(handle).fd, {}
        else:
            target, options = self.real_path(path), {"follow_symlinks": False}
        if times_ns is None:
            os.utime(target, **options)
        else:
            os.utime(target, ns=times_ns, **options)

    # ------------------------------------------------------------------ durability events
    def writeback(self) -> dict:
        """One tick of the modelled kernel writeback: the journal commits, and every file whose
        oldest volatile change is at least dirty_expire_s old becomes durable. Returns what it did
        (nothing while frozen)."""
        with self._lock:
            if self._writeback_frozen:
                return {"namespace_ops_committed": 0, "files": 0, "bytes": 0, "frozen": True}
            committed = self._commit_journal()
            now, flushed, flushed_bytes = self._clock(), 0, 0
            if self.dirty_expire_s is not None:
                for f in list(self._dirty.values()):
                    if now - f.dirty_since >= self.dirty_expire_s:
                        flushed_bytes += f.volatile_bytes
                        flushed += 1
                        self._make_durable(f, by_writeback=True)
            self._counters.writeback_ticks += 1
            self._counters.files_written_back += flushed
            return {"namespace_ops_committed": committed, "files": flushed, "bytes": flushed_bytes, "frozen": False}

    def freeze_writeback(self) -> None:
        """Stop the modelled writeback until the next power loss: the power goes out *now*. Call
        it just before the writing processes are killed, so that the seconds until power_loss()
        write nothing back that a real power loss would have lost. fsync still works."""
        with self._lock:
            self._writeback_frozen = True

    def sync(self) -> None:
        """sync(2): everything becomes durable."""
        with self._lock:
            self._commit_journal()
            for f in list(self._dirty.values()):
                self._make_durable(f)
            self._counters.sync_calls += 1

    def power_loss(self) -> dict:
        """Put the backing directory back into its durable state and forget everything volatile.
        Handles opened before fail with EIO afterwards (their processes are meant to be dead).
        Returns what was discarded, per file and for the namespace."""
        with self._lock:
            files: dict[str, dict] = {}
            for f in self._dirty.values():
                f.pending.clear()
                os.ftruncate(f.fd, f.durable_size)
                for offset, data in f.saved:
                    os.pwrite(f.fd, data, offset)
                entry = files.setdefault(f.name, {"bytes_cut": 0, "bytes_reverted": 0, "bytes_written": 0})
                entry["bytes_cut"] += max(0, f.size - f.durable_size)
                entry["bytes_reverted"] += sum(len(data) for _, data in f.saved)
                entry["bytes_written"] += f.volatile_bytes
            undone = [op.describe() for op in reversed(self._journal)]
            for op in reversed(self._journal):
                self._undo(op)
            self._journal.clear()
            self._remove_graveyard()
            self._forget_all()
            self._generation += 1
            self._writeback_frozen = False
            c = self._counters
            c.power_losses += 1
            c.bytes_discarded += sum(e["bytes_written"] for e in files.values())
            c.bytes_cut += sum(e["bytes_cut"] for e in files.values())
            c.bytes_reverted += sum(e["bytes_reverted"] for e in files.values())
            c.namespace_ops_undone += len(undone)
            return {
                "bytes_written": sum(e["bytes_written"] for e in files.values()),
                "bytes_cut": sum(e["bytes_cut"] for e in files.values()),
                "bytes_reverted": sum(e["bytes_reverted"] for e in files.values()),
                "files": files,
                "namespace_ops_undone": undone,
            }

    def close(self) -> None:
        """A clean end (unmount without power loss): everything stays as processes saw it, what
        was removed is deleted for good, and every descriptor is closed."""
        with self._lock:
            self._commit_journal()
            for f in self._dirty.values():
                self._flush(f)
            self._forget_all()
            for h in self._handles.values():
                os.close(h.fd)
            self._handles.clear()
            self._generation += 1

    def stats(self) -> dict:
        """Counters since the model started, and what is volatile now. Byte counts are write(2)
        lengths: a range written twice counts twice."""
        with self._lock:
            c = self._counters
            out = {k: v for k, v in vars(c).items() if not isinstance(v, Counter)}
            out["fsync_calls_by_file"] = dict(c.fsync_calls_by_file)
            out["dir_fsync_calls_by_dir"] = dict(c.dir_fsync_calls_by_dir)
            out["uptime_s"] = round(self._clock() - self._started, 6)
            out["volatile_files"] = len(self._dirty)
            out["volatile_bytes"] = sum(f.volatile_bytes for f in self._dirty.values())
            out["buffered_bytes"] = sum(len(f.pending) for f in self._dirty.values())
            out["namespace_ops_pending"] = len(self._journal)
            out["dirty_expire_s"] = self.dirty_expire_s
            out["writeback_frozen"] = self._writeback_frozen
            return out

    # ------------------------------------------------------------------ internals
    def _handle(self, handle: int) -> _Handle:
        try:
            return self._handles[handle]
        except KeyError:
            raise _error(errno.EBADF) from None

    def _live_handle(self, handle: int) -> _Handle:
        h = self._handle(handle)
        if h.generation != self._generation:
            raise _error(errno.EIO, h.path)  # opened before a power loss
        return h

    def _add_handle(self, fd: int, path: str) -> int:
        f = self._file_for(fd, path)
        f.handles += 1
        self._handles[fd] = _Handle(fd, f, path, self._generation)
        return fd

    def _file_for(self, fd: int, path: str) -> _FileState:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        f = self._files.get(key)
        if f is None:
            # Untracked content has not changed since it was last durable.
            f = self._files[key] = _FileState(key, path, _reopen_read_write(fd), st.st_size, st.st_size)
        f.name = path
        return f

    def _forget_if_idle(self, f: _FileState) -> None:
        if f.handles == 0 and f.dirty_since is None and self._files.get(f.key) is f:
            del self._files[f.key]
            os.close(f.fd)

    def _forget_all(self) -> None:
        for f in self._files.values():
            os.close(f.fd)
        self._files.clear()
        self._dirty.clear()

    def _mark_volatile(self, f: _FileState, nbytes: int) -> None:
        if f.dirty_since is None:
            f.dirty_since = self._clock()
            self._dirty[f.key] = f
        f.volatile_bytes += nbytes

    def _flush(self, f: _FileState) -> None:
        """Write the pending appended bytes to the backing file (durability does not change)."""
        view, offset = memoryview(f.pending), f.pending_at
        while view:
            written = os.pwrite(f.fd, view, offset)
            view, offset = view[written:], offset + written
        view.release()
        f.pending.clear()

    def _make_durable(self, f: _FileState, by_writeback: bool = False) -> None:
        if f.pending:
            self._flush(f)
        if f.dirty_since is not None:
            if by_writeback:
                self._counters.bytes_made_durable_by_writeback += f.volatile_bytes
            else:
                self._counters.bytes_made_durable += f.volatile_bytes
            del self._dirty[f.key]
            f.dirty_since = None
            f.volatile_bytes = 0
        if f.saved:
            f.saved = []
        f.durable_size = f.size
        if f.handles == 0:
            self._forget_if_idle(f)

    def _truncate(self, h: _Handle, length: int) -> None:
        f = h.file
        if f is None:
            raise _error(errno.EISDIR, h.path)
        if f.pending:
            self._flush(f)
        if length < f.size and length < f.durable_size:
            self._save_durable(f, h.fd, length, min(f.size, f.durable_size))
        os.ftruncate(h.fd, length)
        f.size = length
        self._mark_volatile(f, 0)

    def _save_durable(self, f: _FileState, fd: int, lo: int, hi: int) -> None:
        """Keep the durable content of [lo, hi) before it changes (what is not kept yet)."""
        for start, end in _uncovered(f.saved, lo, hi):
            data = os.pread(fd, end - start, start)
            if len(data) != end - start:  # the model's bookkeeping and the file disagree
                raise _error(errno.EIO, f.name)
            bisect.insort(f.saved, (start, data), key=lambda item: item[0])

    def _fsync_dir(self, path: str) -> None:
        self._commit_journal()
        self._counters.dir_fsync_calls += 1
        self._counters.dir_fsync_calls_by_dir[path] += 1

    def _log(self, op: _NamespaceOp) -> None:
        self._journal.append(op)
        self._counters.namespace_ops += 1

    def _commit_journal(self) -> int:
        committed = len(self._journal)
        if not committed:
            return 0
        for op in self._journal:
            if op.buried:
                _remove_any(self._buried_path(op.buried))
        self._journal.clear()
        self._counters.namespace_ops_committed += committed
        self._remove_graveyard()
        return committed

    def _undo(self, op: _NamespaceOp) -> None:
        real = self.backing + op.path
        if op.change in ("create", "link", "mkdir"):
            _remove_any(real)
        elif op.change in ("unlink", "rmdir"):
            os.rename(self._buried_path(op.buried), real)
        elif op.change == "rename":
            os.rename(real, self.backing + op.old_path)
            if op.buried:
                os.rename(self._buried_path(op.buried), real)

    def _bury(self, real: str) -> str:
        graveyard = os.path.join(self.backing, GRAVEYARD)
        if not os.path.isdir(graveyard):
            os.mkdir(graveyard, 0o700)
        self._buried_seq += 1
        name = str(self._buried_seq)
        os.rename(real, os.path.join(graveyard, name))
        return name

    def _buried_path(self, name: str) -> str:
        return os.path.join(self.backing, GRAVEYARD, name)

    def _remove_graveyard(self) -> None:
        graveyard = os.path.join(self.backing, GRAVEYARD)
        if os.path.isdir(graveyard) and not os.listdir(graveyard):
            os.rmdir(graveyard)

    def _check_replace(self, st_old, st_new, real_new: str, new: str) -> None:
        """The checks rename(2) makes before replacing an existing name."""
        old_dir, new_dir = stat.S_ISDIR(st_old.st_mode), stat.S_ISDIR(st_new.st_mode)
        if new_dir and not old_dir:
            raise _error(errno.EISDIR, new)
        if old_dir and not new_dir:
            raise _error(errno.ENOTDIR, new)
        if new_dir and os.listdir(real_new):
            raise _error(errno.ENOTEMPTY, new)

    def _renamed(self, old: str, new: str) -> None:
        prefix = old + "/"
        for h in self._handles.values():
            if h.path == old or h.path.startswith(prefix):
                h.path = new + h.path[len(old):]
        for f in self._files.values():
            if f.name == old or f.name.startswith(prefix):
                f.name = new + f.name[len(old):]

    def _set_owner(self, real: str, owner: tuple[int, int] | None, fd: int | None = None) -> None:
        if owner is None or os.geteuid() != 0:
            return
        if fd is not None:
            os.fchown(fd, *owner)
        else:
            os.lchown(real, *owner)


def _uncovered(saved: list[tuple[int, bytes]], lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """The parts of [lo, hi) that no saved range covers."""
    pos = lo
    for start, data in saved:
        end = start + len(data)
        if end <= pos:
            continue
        if start >= hi:
            break
        if start > pos:
            yield pos, start
        pos = max(pos, end)
        if pos >= hi:
            return
    if pos < hi:
        yield pos, hi


def _reopen_read_write(fd: int) -> int:
    """A read-write descriptor of the file behind `fd` (which may be read-only, or unlinked)."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    except OSError:
        return os.dup(fd)


def _remove_any(path: str) -> None:
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
