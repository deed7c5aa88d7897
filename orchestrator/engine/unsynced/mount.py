"""The host side: start the filesystem daemon, wait for its mount, ask it for a power loss,
and always unmount and stop it again.

    with UnsyncedMount(backing, mountpoint, owner=(999, 999)) as mount:
        ...                          # bind-mount `mountpoint` into a container at /data
        mount.freeze_writeback()     # the power goes out now: no more modelled writeback
        ...                          # `docker kill` and `docker wait` the container
        report = mount.power_loss()  # what was not durable is gone; start the container again

Unmounting is `fusermount3 -u`, then `fusermount3 -uz` (lazy: detached now, gone once the
last user lets go) when the mount is busy, then `umount -l` as a last resort for root.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from .control import FSNAME, RUNTIME_PREFIX, UnsyncedError, request

FSTYPE = f"fuse.{FSNAME}"
POLL_INTERVAL_S = 0.05
PROJECT_ROOT = Path(__file__).resolve().parents[3]   # the directory holding orchestrator/


def fuse_available() -> tuple[bool, str]:
    """Whether this machine can mount the filesystem; when not, the reason and the fix."""
    dev = Path("/dev/fuse")
    if not dev.exists():
        return False, "/dev/fuse does not exist (no FUSE in this kernel or container; load the fuse module)"
    if not dev.is_char_device() or not os.access(dev, os.R_OK | os.W_OK):
        return False, "/dev/fuse is not a character device this user can read and write"
    if not shutil.which("fusermount3"):
        return False, "fusermount3 is missing (Debian: apt-get install fuse3)"
    if not ctypes.util.find_library("fuse3"):
        return False, "libfuse3 is missing (Debian: apt-get install fuse3, which brings libfuse3-3)"
    if importlib.util.find_spec("mfusepy") is None:
        return False, "the Python package mfusepy is not installed (pip install mfusepy)"
    if os.geteuid() != 0 and not _user_allow_other():
        return False, "allow_other needs root or `user_allow_other` in /etc/fuse.conf"
    return True, ""


def mounted_paths(fstype: str = FSTYPE) -> list[str]:
    """Mountpoints of filesystems of type `fstype` in /proc/mounts (octal escapes decoded)."""
    return [mountpoint for _source, mountpoint in _mounts(fstype)]


def _mounts(fstype: str = FSTYPE) -> list[tuple[str, str]]:
    """(source, mountpoint) of each mount of type `fstype` in /proc/mounts."""
    found = []
    with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == fstype:
                found.append((_unescape(fields[0]), _unescape(fields[1])))
    return found


def is_mounted(mountpoint: str | os.PathLike) -> bool:
    return os.path.abspath(mountpoint) in mounted_paths()


def unmount(mountpoint: str | os.PathLike) -> bool:
    """Unmount one of our mounts, lazily if it is busy. Returns whether it had to be lazy;
    UnsyncedError if it stays mounted."""
    path = os.path.abspath(mountpoint)
    attempts = [["fusermount3", "-u", path], ["fusermount3", "-uz", path]]
    if os.geteuid() == 0:
        attempts.append(["umount", "-l", path])
    errors = []
    for command in attempts:
        if not is_mounted(path):
            return bool(errors)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{' '.join(command)}: {exc}")
            continue
        if result.returncode != 0:
            errors.append(f"{' '.join(command)}: {result.stderr.strip() or result.returncode}")
    if is_mounted(path):
        raise UnsyncedError(f"could not unmount {path}: {'; '.join(errors)}")
    return bool(errors)


def unmount_leftovers(prefix: str | os.PathLike) -> int:
    """Unmount every mount of ours at or under `prefix` (left by a process that was killed);
    live daemons then exit by themselves. The control directory of a daemon that was killed
    too is removed. Returns how many mounts were unmounted."""
    root = os.path.abspath(prefix)
    count = 0
    for source, path in _mounts():
        if path == root or path.startswith(root.rstrip("/") + "/"):
            unmount(path)
            count += 1
            _remove_runtime_dir(source.partition(":")[2])
    return count


def _remove_runtime_dir(path: str) -> None:
    """Remove a daemon's control directory if it is one: a temp directory named unsynced-*
    holding nothing but the socket and the log (a live daemon removes its socket itself)."""
    directory = Path(path)
    if (directory.parent == Path(tempfile.gettempdir()) and directory.name.startswith(RUNTIME_PREFIX)
            and directory.is_dir() and {p.name for p in directory.iterdir()} <= {"control.sock", "daemon.log"}):
        shutil.rmtree(directory, ignore_errors=True)


class UnsyncedMount:
    """One lose-unsynced-writes filesystem serving `backing` at `mountpoint`, for the length of
    a `with` block. Leaving the block (normally, by an exception or by Ctrl-C) unmounts it
    and stops the daemon; so does `stop()`. `owner` (uid, gid), if given, becomes the owner
    of the backing directory (the root of the mount), e.g. (999, 999) for the Redis image.
    Writeback: a volatile change becomes durable once `dirty_expire_s` old, checked every
    `writeback_interval_s` (0: no modelled writeback)."""

    def __init__(self, backing: Path, mountpoint: Path, dirty_expire_s: float = 30.0,
                 writeback_interval_s: float = 5.0, owner: tuple[int, int] | None = None,
                 start_timeout_s: float = 15.0, stop_timeout_s: float = 3.0):
        self.backing = Path(os.path.abspath(backing))
        self.mountpoint = Path(os.path.abspath(mountpoint))
        self.dirty_expire_s = dirty_expire_s
        self.writeback_interval_s = writeback_interval_s
        self.owner = owner
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._runtime_dir: Path | None = None
        self._process: subprocess.Popen | None = None

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> UnsyncedMount:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()

    @property
    def control_socket(self) -> Path:
        if self._runtime_dir is None:
            raise UnsyncedError("the filesystem is not started")
        return self._runtime_dir / "control.sock"

    @property
    def log_path(self) -> Path | None:
        """The daemon's stderr (kept until stop)."""
        return None if self._runtime_dir is None else self._runtime_dir / "daemon.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the daemon and wait until the mount answers. UnsyncedError (with the daemon's
        log) if it does not within start_timeout_s; nothing is left mounted then."""
        if self._process is not None:
            raise UnsyncedError(f"{self.mountpoint} is already started")
        if is_mounted(self.mountpoint):
            raise UnsyncedError(f"{self.mountpoint} is already mounted (a leftover? see unmount_leftovers)")
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:
            os.chown(self.backing, *self.owner)
        # A short path: Unix socket paths are limited to 107 bytes.
        self._runtime_dir = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX))
        try:
            with self._signals_deferred():
                self._spawn()
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Unmount (lazily if busy) and stop the daemon; safe to call more than once. A second
        Ctrl-C while this runs is held back until it is done. UnsyncedError if the mount
        cannot be removed."""
        with self._signals_deferred():
            lazy = False
            try:
                if is_mounted(self.mountpoint):
                    lazy = unmount(self.mountpoint)
            finally:
                self._stop_process(wait_s=0.0 if lazy else self.stop_timeout_s)
                if is_mounted(self.mountpoint):   # a daemon that died leaves a dead mount
                    unmount(self.mountpoint)
                if self._runtime_dir is not None:
                    shutil.rmtree(self._runtime_dir, ignore_errors=True)
                    self._runtime_dir = None

    # ------------------------------------------------------------------ commands
    def stats(self) -> dict:
        """Counters (fsync calls, bytes written, made durable, discarded, FUSE requests, ...)."""
        return request(self.control_socket, "stats")

    def freeze_writeback(self) -> dict:
        """Stop the modelled writeback until the next power loss (the moment the power goes out).
        Call it just before killing the writers; returns the counters."""
        return request(self.control_socket, "freeze_writeback")

    def power_loss(self) -> dict:
        """Discard everything that is not durable. Call it after the processes writing here are
        dead (after freeze_writeback(), so that writeback in between saves nothing). Returns
        {"discarded": {...}, "stats": {...}}."""
        return request(self.control_socket, "power_loss", timeout_s=120)

    def sync(self) -> dict:
        """Make everything durable (sync(2)); returns the counters."""
        return request(self.control_socket, "sync", timeout_s=120)

    # ------------------------------------------------------------------ internals
    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "orchestrator.engine.unsynced.daemon",
                   "--backing", str(self.backing), "--mountpoint", str(self.mountpoint),
                   "--control", str(self.control_socket),
                   "--dirty-expire-s", str(self.dirty_expire_s),
                   "--writeback-interval-s", str(self.writeback_interval_s), "--exit-with-parent",
                   "--orphan-cleanup", str(self._runtime_dir)]
        with open(self.log_path, "wb") as log:
            # Its own session: a Ctrl-C at the terminal reaches this process, which unmounts in
            # order, and not the daemon directly.
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=env, start_new_session=True)

    def _wait_until_serving(self) -> None:
        def serving() -> bool:
            if self._process.poll() is not None:
                raise UnsyncedError(f"the filesystem daemon exited with code {self._process.returncode} "
                                    f"before mounting {self.mountpoint}: {self._log_tail()}")
            if not is_mounted(self.mountpoint) or not self.control_socket.exists():
                return False
            try:
                os.stat(self.mountpoint)   # answers once libfuse has completed INIT
            except OSError:
                return False
            return True

        retrying = Retrying(stop=stop_after_delay(self.start_timeout_s), wait=wait_fixed(POLL_INTERVAL_S),
                            retry=retry_if_result(lambda ok: not ok), reraise=True)
        try:
            retrying(serving)
        except RetryError:
            raise UnsyncedError(f"{self.mountpoint} was not mounted within {self.start_timeout_s} s: "
                                f"{self._log_tail()}") from None
        request(self.control_socket, "stats", timeout_s=self.start_timeout_s)

    def _stop_process(self, wait_s: float) -> None:
        process = self._process
        if process is None:
            return
        # After an unmount the daemon ends by itself; after a lazy one it would serve on until the
        # last user lets go, so it gets SIGTERM (libfuse then exits), and SIGKILL if it hangs.
        for sig, wait_s in ((None, wait_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            if process.poll() is not None:
                break
            if sig is not None:
                process.send_signal(sig)
            try:
                process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        self._process = None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except (OSError, AttributeError):
            return "(no daemon log)"
        return " | ".join(text[-lines:]) or "(the daemon log is empty)"

    @staticmethod
    @contextmanager
    def _signals_deferred():
        """Hold SIGINT back while the body runs (main thread only), then raise
        KeyboardInterrupt if one came: a second Ctrl-C must not cut a teardown short."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        received = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def _user_allow_other() -> bool:
    try:
        with open("/etc/fuse.conf", encoding="utf-8") as conf:
            return any(line.strip() == "user_allow_other" for line in conf)
    except OSError:
        return False


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
