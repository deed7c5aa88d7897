"""Choosing the Redis image, and the offline image's build context, with a fake engine."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import orchestrator.image as image
from orchestrator.errors import EnvironmentProblem
from orchestrator.image import LOCAL_IMAGE, OFFICIAL_IMAGE, ImageChoice, resolve_image, shared_libraries

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd3a5f2000)
\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f2b1c3a0000)
\tlibcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007f2b1be00000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2b1bc1f000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2b1c4a9000)
"""


@pytest.fixture
def fake_ldd(monkeypatch):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return SimpleNamespace(stdout=LDD_OUTPUT, stderr="", returncode=0)

    monkeypatch.setattr(image.subprocess, "run", run)
    return calls


def test_shared_libraries_from_ldd(fake_ldd):
    libraries = shared_libraries(Path("/usr/bin/redis-server"))
    assert libraries == [Path("/lib/x86_64-linux-gnu/libssl.so.3"),
                         Path("/lib/x86_64-linux-gnu/libcrypto.so.3"),
                         Path("/lib/x86_64-linux-gnu/libc.so.6"),
                         Path("/lib64/ld-linux-x86-64.so.2")]
    assert fake_ldd == [["ldd", "/usr/bin/redis-server"]]


def test_shared_libraries_ldd_failure_propagates(monkeypatch):
    def run(command, **kwargs):
        raise subprocess.CalledProcessError(1, command, "", "not a dynamic executable")

    monkeypatch.setattr(image.subprocess, "run", run)
    with pytest.raises(subprocess.CalledProcessError):
        shared_libraries(Path("/bin/static"))


class FakeEngine:
    """image_exists / pull answered from sets; records what was pulled."""

    def __init__(self, present=(), pullable=()):
        self.present = set(present)
        self.pullable = set(pullable)
        self.pulled = []

    def image_exists(self, name: str) -> bool:
        return name in self.present

    def pull(self, name: str) -> bool:
        self.pulled.append(name)
        if name in self.pullable:
            self.present.add(name)
            return True
        return False


def test_explicit_image_present_is_used_without_pulling():
    engine = FakeEngine(present={"my/redis:7"})
    assert resolve_image(engine, "my/redis:7") == ImageChoice("my/redis:7")
    assert engine.pulled == []


def test_explicit_image_is_pulled_when_absent():
    engine = FakeEngine(pullable={"my/redis:7"})
    assert resolve_image(engine, "my/redis:7") == ImageChoice("my/redis:7")
    assert engine.pulled == ["my/redis:7"]


def test_explicit_image_missing_is_an_environment_problem():
    engine = FakeEngine(present={OFFICIAL_IMAGE, LOCAL_IMAGE})
    with pytest.raises(EnvironmentProblem) as caught:
        resolve_image(engine, "my/redis:7")
    assert "'my/redis:7' is not present and cannot be pulled" in str(caught.value)
    assert "lab image build" in caught.value.hint       # no silent fallback to another image


def test_image_from_the_environment(monkeypatch):
    monkeypatch.setenv("LAB_IMAGE", "env/redis:7")
    engine = FakeEngine(present={"env/redis:7", OFFICIAL_IMAGE})
    assert resolve_image(engine).name == "env/redis:7"


def test_default_is_the_official_image_when_present():
    engine = FakeEngine(present={OFFICIAL_IMAGE, LOCAL_IMAGE})
    assert resolve_image(engine) == ImageChoice(OFFICIAL_IMAGE)
    assert engine.pulled == []


def test_official_image_is_pulled_when_absent():
    engine = FakeEngine(pullable={OFFICIAL_IMAGE}, present={LOCAL_IMAGE})
    assert resolve_image(engine) == ImageChoice(OFFICIAL_IMAGE)
    assert engine.pulled == [OFFICIAL_IMAGE]


def test_local_image_when_the_official_one_cannot_be_had():
    engine = FakeEngine(present={LOCAL_IMAGE})
    choice = resolve_image(engine)
    assert choice.name == LOCAL_IMAGE
    assert OFFICIAL_IMAGE in choice.note
    assert "lab image build" in choice.note


def test_no_image_at_all():
    with pytest.raises(EnvironmentProblem) as caught:
        resolve_image(FakeEngine())
    assert OFFICIAL_IMAGE in str(caught.value)
    assert LOCAL_IMAGE in str(caught.value)
    assert "run `lab image build`" in str(caught.value)


def test_build_context_lays_out_binaries_and_libraries(tmp_path, monkeypatch):
    host = tmp_path / "host"
    for rel in ("usr/bin/redis-server", "usr/bin/redis-cli", "usr/bin/truncate", "lib/libc.so.6", "lib64/ld.so"):
        (host / rel).parent.mkdir(parents=True, exist_ok=True)
        (host / rel).write_text(rel)
    asked = []
    monkeypatch.setattr(image, "find_binary", lambda *names: asked.append(names) or host / "usr/bin" / names[0])
    monkeypatch.setattr(image, "shared_libraries", lambda binary: [host / "lib/libc.so.6", host / "lib64/ld.so"])
    monkeypatch.setattr(image, "server_version", lambda binary: "7.2.4")

    context = tmp_path / "context"
    context.mkdir()
    assert image.build_context(context) == "7.2.4"

    bin_dir = context / "rootfs/usr/local/bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == ["redis-check-aof", "redis-check-rdb", "redis-cli",
                                                         "redis-server", "truncate"]
    assert (bin_dir / "redis-check-aof").read_text() == "usr/bin/redis-server"   # one multi-call binary
    assert (context / "rootfs" / str(host / "lib/libc.so.6").lstrip("/")).is_file()
    assert (context / "rootfs/etc/passwd").read_text().startswith("redis:x:999:999:")
    assert (context / "Dockerfile").is_file()
    assert (context / "data").is_dir()
    assert asked[0] == ("redis-server", "redis-check-rdb")    # Debian's redis-tools name as a fallback


def test_find_binary_falls_back_to_the_next_name(monkeypatch):
    monkeypatch.setattr(image.shutil, "which", lambda name: "/usr/bin/redis-check-rdb" if name == "redis-check-rdb" else None)
    monkeypatch.setattr(image.os.path, "exists", lambda path: False)
    assert image.find_binary("redis-server", "redis-check-rdb") == Path("/usr/bin/redis-check-rdb")


def test_find_binary_names_the_first_when_none_is_found(monkeypatch):
    monkeypatch.setattr(image.shutil, "which", lambda name: None)
    monkeypatch.setattr(image.os.path, "exists", lambda path: False)
    with pytest.raises(EnvironmentProblem, match="redis-server is not installed"):
        image.find_binary("redis-server", "redis-check-rdb")
