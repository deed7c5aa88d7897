"""Which Redis image a run uses, and building one offline from a local redis-server.

With a registry the official `redis` image is the default. Without one, `lab image build`
makes an image FROM scratch holding this machine's redis-server, redis-cli and the shared
libraries `ldd` lists; the tool falls back to it and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EnvironmentProblem
from .spec.paths import TEMPLATES_DIR

if TYPE_CHECKING:   # the engine is handed in: importing this module must not load python-on-whales
    from .engine.docker import Engine

OFFICIAL_IMAGE = "redis:7.2"
LOCAL_IMAGE = "redis-ha-lab/redis:local"
IMAGE_ENV = "LAB_IMAGE"
# Binaries the image needs: the server (also run as redis-check-aof / redis-check-rdb, which
# are the same multi-call binary), the CLI, and coreutils' truncate for the torn-AOF scenarios.
SERVER_NAMES = ("redis-server", "redis-check-aof", "redis-check-rdb")
TOOLS = ("redis-cli", "truncate")


@dataclass(frozen=True)
class ImageChoice:
    name: str
    note: str = ""   # said to the user when the choice is not the obvious one


def resolve_image(engine: Engine, requested: str | None = None) -> ImageChoice:
    """The image a run will use. An explicit request (--image or $LAB_IMAGE) must exist or be
    pullable. Otherwise: the official image if present or pullable, else the local build."""
    requested = requested or os.environ.get(IMAGE_ENV) or None
    if requested:
        if engine.image_exists(requested) or engine.pull(requested):
            return ImageChoice(requested)
        raise EnvironmentProblem(f"image {requested!r} is not present and cannot be pulled",
                                 f"pull it, or build the offline image with `lab image build` and use --image {LOCAL_IMAGE}")
    if engine.image_exists(OFFICIAL_IMAGE) or engine.pull(OFFICIAL_IMAGE):
        return ImageChoice(OFFICIAL_IMAGE)
    if engine.image_exists(LOCAL_IMAGE):
        return ImageChoice(LOCAL_IMAGE, f"{OFFICIAL_IMAGE} is absent and cannot be pulled, so the image "
                                        f"built by `lab image build` is used")
    raise EnvironmentProblem(f"no Redis image: {OFFICIAL_IMAGE} is absent and cannot be pulled, "
                             f"and {LOCAL_IMAGE} has not been built",
                             "run `lab image build` (needs redis-server on this machine: `apt-get install redis-server`)")


def find_binary(*names: str) -> Path:
    """The first of `names` found on PATH or in /usr/bin, /usr/local/bin."""
    for name in names:
        found = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}")
                                            if os.path.exists(p)), None)
        if found:
            return Path(found)
    raise EnvironmentProblem(f"{names[0]} is not installed on this machine",
                             "install it (Debian: `apt-get install redis-tools`), then run `lab image build` again")


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries (and the loader) `ldd` lists for a binary, symlinks resolved."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if "not found" in line:
            raise EnvironmentProblem(f"{binary} needs {line.split()[0]}, which ldd cannot find",
                                     "install the package that provides it, then run `lab image build` again")
        match = re.search(r"(/\S+)", line.split("=>")[-1])
        if match:
            found.append(Path(match.group(1)))
    return found


def server_version(binary: Path) -> str:
    """The Redis version of the multi-call binary, asked as redis-server whatever its file name."""
    out = subprocess.run(["redis-server", "--version"], executable=str(binary), capture_output=True, text=True).stdout
    match = re.search(r"v=(\S+)", out)
    return match.group(1) if match else "unknown"


def build_context(directory: Path) -> str:
    """Lay out the FROM-scratch build context in `directory`; returns the Redis version."""
    # Debian's redis-tools ships the multi-call binary as redis-check-rdb; named redis-server
    # it runs the server. Taking it from there avoids installing (and starting) a host service.
    server = find_binary("redis-server", "redis-check-rdb")
    binaries = {name: server for name in SERVER_NAMES}
    binaries.update({name: find_binary(name) for name in TOOLS})
    root = directory / "rootfs"
    for name, source in binaries.items():
        _copy(source.resolve(), root / "usr/local/bin" / name)
    for binary in {b.resolve() for b in binaries.values()}:
        for library in shared_libraries(binary):
            _copy(library.resolve(), root / str(library).lstrip("/"))
    (directory / "data").mkdir()
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("redis:x:999:999:redis:/data:/nonexistent\n")
    (root / "etc/group").write_text("redis:x:999:\n")
    shutil.copy(TEMPLATES_DIR / "image" / "Dockerfile", directory / "Dockerfile")
    return server_version(server)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def build_local_image(engine: Engine, tag: str = LOCAL_IMAGE) -> str:
    """Build the offline image; returns the Redis version it holds."""
    engine.version()
    with tempfile.TemporaryDirectory(prefix="lab-image-") as tmp:
        version = build_context(Path(tmp))
        engine.build_image(Path(tmp), tag, labels={"redis-ha-lab.image": "local", "redis-ha-lab.redis-version": version})
    return version
