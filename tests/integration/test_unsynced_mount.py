"""The lose-unsynced-writes filesystem on a real FUSE mount: plain file operations, power
loss, teardown in every way a run can end, and Redis in a container writing its AOF on it.

Skips when FUSE is not available here, except with CI=true, where that is a failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.engine.unsynced import (UnsyncedError, UnsyncedMount, fuse_available, mounted_paths,
                                          unmount_leftovers)

IMAGE = os.environ.get("LAB_IMAGE", "redis-ha-lab/redis:local")
LABEL = "redis-ha-lab.lab=unsynced-test"
REDIS_PORTS = iter(range(7820, 7830))   # this file uses 7820-7829, one per Redis test
REDIS_UID = 999     # the user the Redis images run as
# An interpreter another user may run (the venv's may live under /root).
PLAIN_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture(scope="module", autouse=True)
def fuse_here(tmp_path_factory):
    ok, reason = fuse_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but FUSE is not available: {reason}")
        pytest.skip(f"FUSE is not available: {reason}")
    base = str(tmp_path_factory.getbasetemp())
    yield
    left = [p for p in mounted_paths() if p.startswith(base)]
    unmount_leftovers(base)
    assert not left, f"tests left mounts behind: {left}"


def our_mounts(prefix: Path) -> list[str]:
    return [p for p in mounted_paths() if p == str(prefix) or p.startswith(f"{prefix}/")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes (its parent has not reaped it yet)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---------------------------------------------------------------- files through the mount

def test_fsynced_data_survives_power_loss_and_the_rest_is_discarded(tmp_path):
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    with UnsyncedMount(backing, mnt, writeback_interval_s=0) as mount:
        with open(mnt / "kept", "wb") as f:
            f.write(b"durable\n")
            f.flush()
            os.fsync(f.fileno())
            f.write(b"appended, never fsynced\n")
        with open(mnt / "lost", "wb") as f:
            f.write(b"no fsync at all\n")
        (mnt / "dir").mkdir()
        with open(mnt / "kept", "r+b") as f:
            f.write(b"DUR")              # an overwrite of durable bytes, not fsynced
        assert (mnt / "kept").read_bytes() == b"DURable\nappended, never fsynced\n"

        report = mount.power_loss()

        assert (backing / "kept").read_bytes() == b"durable\n"
        assert not (backing / "lost").exists() and not (backing / "dir").exists()
        assert (mnt / "kept").read_bytes() == b"durable\n"     # the mount shows the same at once
        assert report["discarded"]["bytes_cut"] == len(b"appended, never fsynced\n") + len(b"no fsync at all\n")
        assert report["discarded"]["bytes_reverted"] == 3
        assert report["stats"]["fsync_calls"] == 1
        assert report["stats"]["fsync_calls_by_file"] == {"/kept": 1}
    assert not our_mounts(mnt)


def test_rename_is_kept_once_the_directory_is_fsynced(tmp_path):
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    with UnsyncedMount(backing, mnt, writeback_interval_s=0) as mount:
        for name, content in (("current", b"v1"), ("next", b"v2")):
            with open(mnt / name, "wb", buffering=0) as f:
                f.write(content)
                os.fsync(f.fileno())
        os.rename(mnt / "next", mnt / "current")
        mount.power_loss()
        assert (backing / "current").read_bytes() == b"v1"     # the rename was not durable
        assert (backing / "next").read_bytes() == b"v2"

        os.rename(mnt / "next", mnt / "current")
        dir_fd = os.open(mnt, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        mount.power_loss()
        assert (backing / "current").read_bytes() == b"v2"
        assert sorted(os.listdir(backing)) == ["current"]


def test_modelled_writeback_makes_old_dirty_data_durable(tmp_path):
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    with UnsyncedMount(backing, mnt, dirty_expire_s=0.5, writeback_interval_s=0.2) as mount:
        with open(mnt / "old", "wb") as f:
            f.write(b"old enough")
        assert wait_for(lambda: mount.stats()["files_written_back"] >= 1, timeout_s=5)
        with open(mnt / "young", "wb") as f:
            f.write(b"too young")
        mount.power_loss()
        assert (backing / "old").read_bytes() == b"old enough"
        assert not (backing / "young").exists() or (backing / "young").read_bytes() == b""


def test_a_non_root_user_can_create_write_fsync_rename_and_read(tmp_path):
    """Redis runs as uid 999: the mount (allow_other, default_permissions) must let it work in
    the directory it owns, and files it creates must be its own."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    # Relative paths: the process starts in the mount (chdir happens before it drops root).
    script = textwrap.dedent("""
        import os
        os.mkdir("appendonlydir")
        fd = os.open("appendonlydir/temp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"manifest")
        os.fdatasync(fd)
        os.close(fd)
        os.rename("appendonlydir/temp", "appendonlydir/manifest")
        dfd = os.open("appendonlydir", os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        print(open("appendonlydir/manifest").read(), os.stat("appendonlydir/manifest").st_uid)
    """)
    with UnsyncedMount(backing, mnt, owner=(REDIS_UID, REDIS_UID)) as mount:
        result = subprocess.run([PLAIN_PYTHON, "-c", script], capture_output=True, text=True, timeout=30,
                                cwd=mnt, user=REDIS_UID, group=REDIS_UID, extra_groups=[])
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["manifest", str(REDIS_UID)]
        denied = subprocess.run([PLAIN_PYTHON, "-c", "open('x', 'w')"], capture_output=True, text=True,
                                timeout=30, cwd=mnt, user=1234, group=1234, extra_groups=[])
        assert "PermissionError" in denied.stderr   # the kernel checks modes as on a local disk
        mount.power_loss()
    assert (backing / "appendonlydir" / "manifest").read_bytes() == b"manifest"
    assert (backing / "appendonlydir" / "manifest").stat().st_uid == REDIS_UID


# ---------------------------------------------------------------- teardown, however a run ends

def test_unmounted_when_the_body_raises(tmp_path):
    mount = UnsyncedMount(tmp_path / "b", tmp_path / "m")
    with pytest.raises(RuntimeError, match="boom"):
        with mount:
            pid = mount.pid
            raise RuntimeError("boom")
    assert not our_mounts(tmp_path) and not alive(pid)


def test_unmounted_on_keyboard_interrupt_in_the_body(tmp_path):
    mount = UnsyncedMount(tmp_path / "b", tmp_path / "m")
    with pytest.raises(KeyboardInterrupt):
        with mount:
            pid = mount.pid
            raise KeyboardInterrupt
    assert not our_mounts(tmp_path) and not alive(pid)


def test_unmounted_when_the_daemon_was_killed(tmp_path):
    mount = UnsyncedMount(tmp_path / "b", tmp_path / "m")
    with mount:
        os.kill(mount.pid, signal.SIGKILL)
        assert wait_for(lambda: not alive(mount.pid))
        assert our_mounts(tmp_path)                      # a dead mount stays until unmounted
        with pytest.raises(UnsyncedError):
            mount.stats()
    assert not our_mounts(tmp_path)


def test_a_busy_mount_is_detached_lazily(tmp_path):
    mnt = tmp_path / "m"
    with UnsyncedMount(tmp_path / "b", mnt):
        holder = subprocess.Popen(["sleep", "60"], cwd=mnt)
    try:
        assert not our_mounts(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_unmount_leftovers_removes_the_mount_of_a_killed_process(tmp_path):
    owner = start_owner(tmp_path)
    owner_pid, daemon_pid = owner.pid, owner.daemon_pid
    os.kill(daemon_pid, signal.SIGKILL)
    os.kill(owner_pid, signal.SIGKILL)
    owner.wait()
    assert wait_for(lambda: not alive(daemon_pid))
    assert our_mounts(tmp_path)
    control_dir = next(line.split()[0].partition(":")[2] for line in open("/proc/mounts")
                       if line.split()[1] == str(tmp_path / "m"))
    assert Path(control_dir).is_dir()                    # the killed daemon could not remove it

    assert unmount_leftovers(tmp_path) == 1
    assert not our_mounts(tmp_path)
    assert not Path(control_dir).exists()


def test_the_daemon_unmounts_when_its_owner_is_killed(tmp_path):
    owner = start_owner(tmp_path)
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    assert wait_for(lambda: not our_mounts(tmp_path) and not alive(owner.daemon_pid), timeout_s=10)


def test_twenty_mount_cycles_leave_nothing_mounted(tmp_path):
    """20 runs ending every way: normally, by an exception, by KeyboardInterrupt, by Ctrl-C
    (SIGINT) to the owning process, with the daemon or the owner killed (-9), busy."""
    endings = ["clean", "exception", "keyboard-interrupt", "daemon-killed", "busy",
               "sigint-to-owner", "owner-killed", "owner-and-daemon-killed"]
    daemons = []
    for cycle in range(20):
        ending = endings[cycle % len(endings)]
        root = tmp_path / f"cycle-{cycle:02d}"
        daemons.append(run_cycle(root, ending))
        assert wait_for(lambda: not our_mounts(root), timeout_s=10), f"cycle {cycle} ({ending}) left a mount"
    assert unmount_leftovers(tmp_path) == 0
    assert not our_mounts(tmp_path)
    assert wait_for(lambda: not any(alive(pid) for pid in daemons))


def run_cycle(root: Path, ending: str) -> int:
    """One mount/unmount ending as `ending`; returns the daemon's pid."""
    backing, mnt = root / "b", root / "m"
    if ending in ("sigint-to-owner", "owner-killed", "owner-and-daemon-killed"):
        owner = start_owner(root)
        if ending == "sigint-to-owner":
            os.kill(owner.pid, signal.SIGINT)
            assert owner.wait(timeout=30) != 0
        else:
            if ending == "owner-and-daemon-killed":
                os.kill(owner.daemon_pid, signal.SIGKILL)
            os.kill(owner.pid, signal.SIGKILL)
            owner.wait()
            if ending == "owner-and-daemon-killed":
                assert wait_for(lambda: not alive(owner.daemon_pid))
                assert unmount_leftovers(root) == 1
        return owner.daemon_pid
    mount = UnsyncedMount(backing, mnt)
    holder = None
    try:
        with mount:
            pid = mount.pid
            (mnt / "file").write_bytes(b"x" * 1000)
            if ending == "exception":
                raise ValueError("body failed")
            if ending == "keyboard-interrupt":
                raise KeyboardInterrupt
            if ending == "daemon-killed":
                os.kill(pid, signal.SIGKILL)
            if ending == "busy":
                holder = subprocess.Popen(["sleep", "60"], cwd=mnt)
    except (ValueError, KeyboardInterrupt):
        pass
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    return pid


class Owner(subprocess.Popen):
    daemon_pid: int


OWNER_SCRIPT = """
import json, sys, time
from pathlib import Path
from orchestrator.engine.unsynced import UnsyncedMount
root = Path(sys.argv[1])
with UnsyncedMount(root / "b", root / "m") as mount:
    (root / "m" / "file").write_bytes(b"owned")
    print(json.dumps({"daemon_pid": mount.pid}), flush=True)
    time.sleep(120)
"""


def start_owner(root: Path) -> Owner:
    """A separate process that mounts under `root` and waits; its daemon's pid is known."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(root)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[2])
    line = owner.stdout.readline()
    assert line, "the owning process did not mount"
    owner.daemon_pid = json.loads(line)["daemon_pid"]
    assert our_mounts(root)
    return owner


# ---------------------------------------------------------------- Redis on the mount

def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def redis_image():
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Docker is not usable")
        pytest.skip("Docker is not usable here")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the image {IMAGE} is missing")
        pytest.skip(f"the image {IMAGE} is missing (lab image build)")
    return IMAGE


class RedisOnMount:
    """One Redis container with /data on the mount; writes SET k:<n> in a thread and records
    when each was acknowledged."""

    def __init__(self, mnt: Path, port: int, redis_args: list[str]):
        self.name = f"unsynced-test-{uuid.uuid4().hex[:8]}"
        self.port = port
        docker("run", "-d", "--name", self.name, "--label", LABEL, "-p", f"127.0.0.1:{port}:6379",
               "-v", f"{mnt}:/data", IMAGE, "redis-server", "--protected-mode", "no", *redis_args)
        self.acked: dict[int, float] = {}
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write, daemon=True)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def wait_ready(self) -> redis.Redis:
        client = self.client()
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.ping():
                    return client
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready: {docker('logs', '--tail', '20', self.name)}")
                time.sleep(0.05)

    def start_writing(self) -> None:
        self.wait_ready()
        self._writer.start()

    def _write(self) -> None:
        client = self.client()
        n = 0
        while not self._stop.is_set():
            try:
                client.set(f"k:{n}", n)
            except redis.RedisError:
                return
            self.acked[n] = time.monotonic()
            n += 1

    def kill(self) -> None:
        """SIGKILL, and wait until the container has stopped (no write can reach the mount after)."""
        docker("kill", self.name)
        docker("wait", self.name)
        self._stop.set()
        self._writer.join(timeout=10)

    def restart_and_find_lost(self) -> list[int]:
        docker("start", self.name)
        client = self.wait_ready()
        keys = sorted(self.acked)
        present = []
        for i in range(0, len(keys), 1000):
            present += client.mget([f"k:{n}" for n in keys[i:i + 1000]])
        return [n for n, value in zip(keys, present) if value is None]

    def remove(self) -> None:
        self._stop.set()
        docker("rm", "-f", "-v", self.name, check=False)


def run_power_loss(tmp_path: Path, redis_args: list[str], min_acked: int = 3000, min_s: float = 1.5,
                   **mount_options) -> tuple[RedisOnMount, list[int], dict]:
    """Write under load, SIGKILL the container, power_loss, start it again: (server, lost keys, report)."""
    mnt = tmp_path / "mnt"
    with UnsyncedMount(tmp_path / "backing", mnt, owner=(REDIS_UID, REDIS_UID), **mount_options) as mount:
        server = RedisOnMount(mnt, next(REDIS_PORTS), redis_args)
        try:
            server.start_writing()
            started = time.monotonic()
            assert wait_for(lambda: len(server.acked) >= min_acked and time.monotonic() - started >= min_s,
                            timeout_s=60), f"only {len(server.acked)} writes acknowledged in 60 s"
            mount.freeze_writeback()
            server.kill()
            report = mount.power_loss()
            lost = server.restart_and_find_lost()
        finally:
            server.remove()
    return server, lost, report


def lost_window_s(server: RedisOnMount, lost: list[int]) -> float:
    """From the acknowledgement of the first lost write to that of the last acknowledged one."""
    return max(server.acked.values()) - server.acked[min(lost)] if lost else 0.0


def test_redis_aof_always_loses_no_acknowledged_write(tmp_path, redis_image):
    server, lost, report = run_power_loss(tmp_path, ["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
    assert len(server.acked) >= 3000
    assert lost == []
    stats = report["stats"]
    incr = [path for path in stats["fsync_calls_by_file"] if path.endswith(".incr.aof")]
    assert incr and stats["fsync_calls_by_file"][incr[0]] >= len(server.acked)   # one fdatasync per write


def test_redis_aof_everysec_loses_about_the_last_second(tmp_path, redis_image):
    server, lost, report = run_power_loss(tmp_path, ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""])
    assert lost, "a power loss under load lost nothing with appendfsync everysec"
    assert lost == sorted(server.acked)[-len(lost):], "what is lost is the tail of the acknowledged writes"
    assert lost_window_s(server, lost) <= 2.5
    assert report["discarded"]["bytes_cut"] > 0


def test_redis_aof_no_loses_everything_the_writeback_had_not_flushed(tmp_path, redis_image):
    server, lost, _ = run_power_loss(tmp_path, ["--appendonly", "yes", "--appendfsync", "no", "--save", ""])
    assert len(lost) == len(server.acked)     # well under the 30 s dirty-expire age: nothing flushed


def test_redis_aof_no_keeps_what_the_writeback_flushed(tmp_path, redis_image):
    server, lost, report = run_power_loss(tmp_path, ["--appendonly", "yes", "--appendfsync", "no", "--save", ""],
                                          min_s=3.0, dirty_expire_s=1.0, writeback_interval_s=0.5)
    assert 0 < len(lost) < len(server.acked)
    assert lost == sorted(server.acked)[-len(lost):]
    assert lost_window_s(server, lost) <= 2.5     # expire age + one writeback interval, plus slack
    assert report["stats"]["fsync_calls_by_file"].get("/appendonlydir/appendonly.aof.1.incr.aof", 0) == 0


def test_redis_rdb_keeps_its_last_snapshot(tmp_path, redis_image):
    """dump.rdb is written to a temp file, fsynced, renamed and its directory fsynced: durable."""
    server, lost, report = run_power_loss(tmp_path, ["--appendonly", "no", "--save", "1 1"], min_s=3.0)
    assert 0 < len(lost) < len(server.acked)
    assert report["stats"]["dir_fsync_calls"] >= 1
