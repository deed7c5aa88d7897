"""The durability model of the lose-unsynced-writes filesystem, on its own: no FUSE, no Docker.
Each test changes a backing directory through the model, then checks what a power loss leaves
in it."""

from __future__ import annotations

import errno
import os

import pytest

from orchestrator.engine.unsynced.model import GRAVEYARD, RENAME_NOREPLACE, DurabilityModel


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def backing(tmp_path):
    root = tmp_path / "backing"
    root.mkdir()
    return root


@pytest.fixture
def model(backing, clock):
    m = DurabilityModel(backing, dirty_expire_s=30.0, clock=clock)
    yield m
    m.close()


def new_file(model, path, data=b"", fsync=False):
    h = model.create(path, os.O_WRONLY | os.O_CREAT, 0o644)
    if data:
        model.write(h, data, 0)
    if fsync:
        model.fsync(h)
    return h


def seen(model, path):
    """The content of `path` as processes see it (through the model)."""
    h = model.open(path, os.O_RDONLY)
    try:
        return model.read(h, 1 << 20, 0)
    finally:
        model.release(h)


def test_unsynced_append_is_cut_at_power_loss(model, backing):
    h = new_file(model, "/f", b"durable-", fsync=True)
    model.write(h, b"volatile", 8)
    assert seen(model, "/f") == b"durable-volatile"  # processes see everything

    report = model.power_loss()

    assert (backing / "f").read_bytes() == b"durable-"
    assert report["bytes_cut"] == 8
    assert report["files"]["/f"]["bytes_written"] == 8


def test_fsynced_write_survives(model, backing):
    h = new_file(model, "/f", b"hello")
    model.fsync(h, datasync=True)
    model.release(h)

    report = model.power_loss()

    assert (backing / "f").read_bytes() == b"hello"
    assert report["bytes_cut"] == 0 and report["namespace_ops_undone"] == []


def test_file_created_and_written_without_any_fsync_disappears(model, backing):
    new_file(model, "/f", b"data")

    report = model.power_loss()

    assert not (backing / "f").exists()
    assert report["namespace_ops_undone"] == ["create /f"]


def test_partial_overwrite_of_durable_data_reverts(model, backing):
    h = new_file(model, "/f", b"0123456789", fsync=True)
    model.write(h, b"AB", 2)
    model.write(h, b"XYZ", 3)     # overlaps the first overwrite: the durable byte is kept once
    model.write(h, b"tail", 10)   # and an append past the durable end
    assert seen(model, "/f") == b"01AXYZ6789tail"

    report = model.power_loss()

    assert (backing / "f").read_bytes() == b"0123456789"
    assert report["bytes_reverted"] == 4   # bytes 2..5
    assert report["bytes_cut"] == 4


def test_overwrite_after_fsync_is_durable_and_later_one_reverts(model, backing):
    h = new_file(model, "/f", b"aaaa", fsync=True)
    model.write(h, b"bb", 0)
    model.fsync(h)
    model.write(h, b"cc", 2)

    model.power_loss()

    assert (backing / "f").read_bytes() == b"bbaa"


def test_pre_existing_content_counts_as_durable(backing, clock):
    (backing / "old").write_bytes(b"from before the mount")
    model = DurabilityModel(backing, clock=clock)
    h = model.open("/old", os.O_WRONLY | os.O_APPEND)
    model.write(h, b"!", 21)
    model.write(h, b"F", 0)

    model.power_loss()

    assert (backing / "old").read_bytes() == b"from before the mount"
    model.close()


@pytest.mark.parametrize("fsync_before", [True, False])
def test_truncate_down_is_undone_unless_fsynced(model, backing, fsync_before):
    h = new_file(model, "/f", b"0123456789", fsync=True)
    model.truncate(None, 4, handle=h)
    if fsync_before:
        model.fsync(h)

    model.power_loss()

    assert (backing / "f").read_bytes() == (b"0123" if fsync_before else b"0123456789")


def test_truncate_down_then_up_then_write_restores_durable_bytes(model, backing):
    h = new_file(model, "/f", b"0123456789", fsync=True)
    model.truncate(None, 3, handle=h)
    model.truncate("/f", 12)           # by path, as truncate(2) does: a hole of zeros
    model.write(h, b"Z", 5)
    assert seen(model, "/f") == b"012\0\0Z\0\0\0\0\0\0"

    report = model.power_loss()

    assert (backing / "f").read_bytes() == b"0123456789"
    assert report["bytes_cut"] == 2


def test_truncate_up_is_cut_unless_fsynced(model, backing):
    h = new_file(model, "/f", b"abc", fsync=True)
    model.truncate(None, 100, handle=h)
    model.power_loss()
    assert (backing / "f").read_bytes() == b"abc"


def test_open_with_o_trunc_reverts_to_durable_content(model, backing):
    new_file(model, "/f", b"durable", fsync=True)
    h = model.open("/f", os.O_WRONLY | os.O_TRUNC)
    model.write(h, b"new", 0)
    assert seen(model, "/f") == b"new"

    model.power_loss()

    assert (backing / "f").read_bytes() == b"durable"


def test_unlink_without_a_commit_comes_back_with_its_content(model, backing):
    new_file(model, "/f", b"keep", fsync=True)
    model.unlink("/f")
    assert not (backing / "f").exists()
    assert (backing / GRAVEYARD).is_dir()        # kept until the unlink is durable
    assert GRAVEYARD not in model.listdir("/")

    model.power_loss()

    assert (backing / "f").read_bytes() == b"keep"
    assert not (backing / GRAVEYARD).exists()


def test_unlink_made_durable_by_directory_fsync_stays(model, backing):
    new_file(model, "/f", b"gone", fsync=True)
    model.unlink("/f")
    d = model.opendir("/")
    model.fsync(d)                                 # a directory handle: a directory fsync

    model.power_loss()

    assert not (backing / "f").exists()
    assert not (backing / GRAVEYARD).exists()
    assert model.stats()["dir_fsync_calls"] == 1


def test_rename_over_a_file_reverts_without_a_commit(model, backing):
    new_file(model, "/manifest", b"old", fsync=True)
    new_file(model, "/tmp-manifest", b"new", fsync=True)
    model.rename("/tmp-manifest", "/manifest")
    assert seen(model, "/manifest") == b"new"

    report = model.power_loss()

    assert (backing / "manifest").read_bytes() == b"old"
    assert (backing / "tmp-manifest").read_bytes() == b"new"
    assert report["namespace_ops_undone"] == ["rename /tmp-manifest -> /manifest (replacing a file)"]


def test_redis_manifest_sequence_survives(model, backing):
    """write temp, fdatasync, rename over, fsync the directory: Redis' writeAofManifestFile."""
    model.mkdir("/appendonlydir", 0o755)
    new_file(model, "/appendonlydir/m", b"v1", fsync=True)
    h = new_file(model, "/appendonlydir/tmp", b"v2")
    model.fsync(h, datasync=True)
    model.rename("/appendonlydir/tmp", "/appendonlydir/m")
    model.fsync_dir("/appendonlydir")

    model.power_loss()

    assert (backing / "appendonlydir" / "m").read_bytes() == b"v2"
    assert not (backing / "appendonlydir" / "tmp").exists()


def test_any_file_fsync_commits_every_earlier_namespace_operation(model, backing):
    model.mkdir("/dir", 0o755)           # Redis never fsyncs the parent of appendonlydir/
    new_file(model, "/dir/a", b"a", fsync=True)

    model.power_loss()

    assert (backing / "dir" / "a").read_bytes() == b"a"


def test_namespace_operations_after_the_last_commit_are_undone_newest_first(model, backing):
    model.mkdir("/d", 0o755)
    new_file(model, "/d/x", b"x", fsync=True)    # commits mkdir and create
    model.rename("/d/x", "/d/y")
    model.mkdir("/d/sub", 0o700)
    new_file(model, "/d/sub/z", b"z")
    model.rename("/d/sub", "/e")

    report = model.power_loss()

    assert sorted(os.listdir(backing / "d")) == ["x"]
    assert not (backing / "e").exists()
    assert report["namespace_ops_undone"] == ["rename /d/sub -> /e", "create /d/sub/z", "mkdir /d/sub",
                                              "rename /d/x -> /d/y"]


def test_rmdir_reverts_and_symlink_and_link_disappear(model, backing):
    model.mkdir("/empty", 0o755)
    new_file(model, "/f", b"f", fsync=True)
    model.rmdir("/empty")
    model.symlink("/s", "f")
    model.link("/hard", "/f")
    assert os.readlink(backing / "s") == "f"

    model.power_loss()

    assert (backing / "empty").is_dir()
    assert not os.path.lexists(backing / "s") and not (backing / "hard").exists()


def test_rename_errors_match_rename_2(model, backing):
    new_file(model, "/a", b"a", fsync=True)
    new_file(model, "/b", b"b", fsync=True)
    model.mkdir("/d", 0o755)
    new_file(model, "/d/inside", fsync=True)
    with pytest.raises(OSError) as exc:
        model.rename("/a", "/b", RENAME_NOREPLACE)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(OSError) as exc:
        model.rename("/a", "/d")
    assert exc.value.errno == errno.EISDIR
    with pytest.raises(OSError) as exc:
        model.rmdir("/d")
    assert exc.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as exc:
        model.getattr("/" + GRAVEYARD)
    assert exc.value.errno == errno.ENOENT
    assert (backing / "b").read_bytes() == b"b"


def test_writeback_makes_files_durable_after_the_expire_age(model, backing, clock):
    old = new_file(model, "/old", b"written at t0")
    clock.now += 20
    young = new_file(model, "/young", b"written at t20")
    model.write(old, b"+", 13)                   # does not reset the old file's age
    clock.now += 10

    tick = model.writeback()                     # /old is 30 s dirty, /young 10 s

    assert tick == {"namespace_ops_committed": 2, "files": 1, "bytes": 14, "frozen": False}
    model.write(young, b"!", 14)
    model.power_loss()
    assert (backing / "old").read_bytes() == b"written at t0+"
    assert (backing / "young").read_bytes() == b""   # its creation was committed, its data was not


def test_writeback_disabled_keeps_data_volatile(backing, clock):
    model = DurabilityModel(backing, dirty_expire_s=None, clock=clock)
    new_file(model, "/f", b"data")
    clock.now += 1000
    assert model.writeback()["files"] == 0
    model.power_loss()
    assert (backing / "f").read_bytes() == b""
    model.close()


def test_frozen_writeback_writes_nothing_back_until_the_power_loss(model, backing, clock):
    h = new_file(model, "/f", b"old data")
    clock.now += 60
    model.freeze_writeback()                     # the power goes out now
    assert model.writeback()["files"] == 0       # a tick before power_loss() came
    model.fsync(h)                               # a still running process may fsync
    model.write(h, b"!", 8)
    model.power_loss()
    assert (backing / "f").read_bytes() == b"old data"
    assert model.stats()["writeback_frozen"] is False   # the next run has writeback again


def test_handles_opened_before_power_loss_fail_with_eio(model):
    h = new_file(model, "/f", b"x", fsync=True)
    model.power_loss()
    with pytest.raises(OSError) as exc:
        model.write(h, b"y", 1)
    assert exc.value.errno == errno.EIO
    model.release(h)


def test_sync_makes_everything_durable(model, backing):
    h = new_file(model, "/f", b"abc")
    model.unlink("/f")
    model.sync()
    model.write(h, b"d", 3)    # an unlinked but open file stays writable
    model.power_loss()
    assert os.listdir(backing) == []


def test_counters(model, clock):
    h = new_file(model, "/aof", b"12345")
    model.fsync(h, datasync=True)
    model.write(h, b"678", 5)
    model.fsync(h)
    model.write(h, b"9", 8)
    model.fsync_dir("/")
    other = new_file(model, "/other", b"xy")
    clock.now += 31
    model.writeback()
    model.write(other, b"zz", 2)
    model.power_loss()

    s = model.stats()
    assert s["fsync_calls"] == 2 and s["fdatasync_calls"] == 1
    assert s["fsync_calls_by_file"] == {"/aof": 2}
    assert s["dir_fsync_calls"] == 1
    assert s["bytes_written"] == 13
    assert s["bytes_made_durable"] == 8
    assert s["bytes_made_durable_by_writeback"] == 3
    assert s["files_written_back"] == 2
    assert s["bytes_discarded"] == 2 and s["bytes_cut"] == 2
    assert s["power_losses"] == 1
    assert s["volatile_bytes"] == 0 and s["namespace_ops_pending"] == 0


def test_appends_wait_in_memory_until_something_needs_them(model, backing):
    h = new_file(model, "/aof", b"base", fsync=True)
    model.write(h, b"+1", 4)
    model.write(h, b"+2", 6)
    assert (backing / "aof").read_bytes() == b"base"          # appended bytes are held back
    assert model.stats()["buffered_bytes"] == 4
    assert model.getattr("/aof").st_size == 8                 # a stat writes them out first
    assert (backing / "aof").read_bytes() == b"base+1+2"
    model.write(h, b"+3", 8)
    model.fsync(h)                                            # and so does an fsync
    assert (backing / "aof").read_bytes() == b"base+1+2+3"


def test_a_large_append_is_written_out_without_becoming_durable(model, backing):
    from orchestrator.engine.unsynced.model import PENDING_LIMIT
    h = new_file(model, "/big", fsync=True)
    model.write(h, b"x" * PENDING_LIMIT, 0)
    assert (backing / "big").stat().st_size == PENDING_LIMIT
    model.power_loss()
    assert (backing / "big").read_bytes() == b""


def test_a_clean_close_keeps_everything_processes_saw(backing, clock):
    model = DurabilityModel(backing, clock=clock)
    new_file(model, "/f", b"never fsynced")
    new_file(model, "/gone", b"unlinked", fsync=True)
    model.unlink("/gone")
    model.close()
    assert (backing / "f").read_bytes() == b"never fsynced"
    assert sorted(os.listdir(backing)) == ["f"]     # the unlinked file is gone for good


def test_power_loss_reaches_a_file_first_opened_read_only(model, backing):
    new_file(model, "/f", b"durable", fsync=True)
    reader = model.open("/f", os.O_RDONLY)      # the model's own descriptor must still be writable
    writer = model.open("/f", os.O_WRONLY)
    model.write(writer, b"DUR", 0)
    model.write(writer, b"+tail", 7)

    model.power_loss()

    assert (backing / "f").read_bytes() == b"durable"
    model.release(reader)
    model.release(writer)


# ---------------------------------------------------------------- host-side helpers (no FUSE needed)

def test_fuse_available_names_what_is_missing(monkeypatch):
    from orchestrator.engine.unsynced import mount
    monkeypatch.setattr(mount.shutil, "which", lambda name: None)
    ok, reason = mount.fuse_available()
    assert not ok
    assert "fuse3" in reason or "/dev/fuse" in reason


def test_mount_table_paths_are_unescaped(monkeypatch, tmp_path):
    from orchestrator.engine.unsynced import mount
    table = tmp_path / "mounts"
    table.write_text("unsynced:/tmp/unsynced-x /runs/a\\040b fuse.unsynced rw 0 0\n"
                     "other /elsewhere fuse.sshfs rw 0 0\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(table if path == "/proc/mounts" else path, *a, **k))
    assert mount.mounted_paths() == ["/runs/a b"]
