#!/usr/bin/env python3
"""Bring-up of the six-node cluster lab against its raw floor; prints figures (not a pass/fail test).

Interleaved, --runs times each (seconds; median / min / max):
(a) `lab --port-base 7700 up cluster` as a user runs it (subprocess wall time), then its removal
    (timed separately as teardown);
(b) the raw floor on the same rendered files (port base 7720): `docker compose up -d`, PING from
    all six nodes, `redis-cli --cluster create` in the first container, then polling every 10 ms
    until `not_yet_formed` is None (cluster_state:ok everywhere, one slot map, replicas linked);
(c) the tool's own functions in-process (port base 7740), phase by phase: image + pre-flight,
    render, compose up, nodes ready, cluster create, formed (the tool polls every 50 ms), teardown.

Usage: .venv/bin/python bench/bench_cluster.py --runs 5
Needs Docker and the image (`lab image build`). Uses host ports 7700-7705, 7720-7725, 7740-7745.

Every run removes what it made, also on failure or Ctrl-C. It never runs `lab down cluster`,
which removes every container labelled with the cluster lab, other runs' scenario labs included;
(a) is removed by its compose project (lab-cluster) instead, the same Docker calls scoped to it.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from orchestrator.engine import nodes as redis_nodes
from orchestrator.engine.nodes import is_ready
from orchestrator.engine.poll import wait_until
from orchestrator.errors import EXIT_INTERRUPTED, LabError
from orchestrator.image import resolve_image
from orchestrator.kinds import derive_topology, kind_of
from orchestrator.kinds.cluster import members, not_yet_formed
from orchestrator.spec import load_lab
from orchestrator.engine.lifecycle import (check_port_free, preflight, prepare, shielded_from_interrupts,
                                    sigterm_as_interrupt, teardown)
from orchestrator.engine.docker import Engine
from orchestrator.engine.render import render_project
from orchestrator.engine.topology import REDIS_PORT, project_name
from orchestrator.spec.paths import state_dir

LAB = [str(Path(sys.executable).with_name("lab"))]   # the venv's console script, as a user runs it
MODE = "aof-everysec"
TIMEOUT_S = 30.0
PROJECT_LABEL = "com.docker.compose.project"


def sh(argv, **kw) -> subprocess.CompletedProcess:
    """Run `argv`; if it fails, raise with its last line of output."""
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    if done.returncode:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"`{' '.join(argv[:5])} ...` exited {done.returncode}: {said[-1] if said else ''}")
    return done


def timed(argv) -> float:
    """Wall time of `argv`. It runs in a session of its own, so on Ctrl-C it gets exactly one SIGINT,
    from us, and we wait while it cleans up after itself (as `lab up` does) instead of killing it."""
    started = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = child.communicate()
    except KeyboardInterrupt:
        with shielded_from_interrupts():
            child.send_signal(signal.SIGINT)
            child.communicate(timeout=120)
        raise
    if child.returncode:
        said = err.strip().splitlines()
        raise RuntimeError(f"`{' '.join(argv)}` exited {child.returncode}: {said[-1] if said else ''}")
    return time.monotonic() - started


def detached(argv) -> subprocess.CompletedProcess:
    """For cleanup: in a session of its own, so a Ctrl-C at the terminal cannot cut it short."""
    return sh(argv, start_new_session=True)


def resources(label: str) -> dict[str, list[str]]:
    """IDs of the containers, networks and volumes carrying `label` ("key=value")."""
    return {kind: detached(["docker", *cmd, "--filter", f"label={label}"]).stdout.split()
            for kind, cmd in (("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"]),
                              ("volume", ["volume", "ls", "-q"]))}


def remove_project(project: str, timeout_s: float = 60) -> None:
    """What `lab down` does (rm -f, network rm, volume rm), scoped to one compose project. Tries
    again while Docker is still busy removing (e.g. after an interrupted `lab up` removed its own)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = resources(f"{PROJECT_LABEL}={project}")
        failed = [kind for kind, rm in (("container", ["rm", "-f", "-v"]), ("network", ["network", "rm"]),
                                        ("volume", ["volume", "rm"]))
                  if found[kind] and subprocess.run(["docker", *rm, *found[kind]], capture_output=True,
                                                    start_new_session=True).returncode]
        if not failed:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not remove the {' and '.join(failed)}s of compose project {project}")
        time.sleep(0.2)


def clean_up(project: str, own_teardown=None) -> float:
    """Remove what one measurement made, ignoring Ctrl-C meanwhile: `own_teardown` if given, else
    remove_project (timed, returned); then remove_project once more as a safety net (not timed)."""
    with shielded_from_interrupts():
        started = time.monotonic()
        try:
            (own_teardown or (lambda: remove_project(project)))()
            return time.monotonic() - started
        finally:
            remove_project(project)


def check_clear(ports: list[int], projects: list[str]) -> None:
    """Refuse to start over anything this benchmark did not make."""
    for port in ports:
        check_port_free(port)
    for project in projects:
        if resources(f"{PROJECT_LABEL}={project}")["container"]:
            sys.exit(f"compose project {project} is running; remove it first (it was not made by this run)")


def wait_for(condition, what, interval_s: float) -> None:
    """Poll `condition` every `interval_s`; on timeout raise, saying `what` (a string, or a callable
    giving the reason) did not happen."""
    if not wait_until(condition, TIMEOUT_S, interval_s=interval_s):
        raise TimeoutError(f"{what() if callable(what) else what} (after {TIMEOUT_S:g} s)")


def pong(port: int) -> bool:
    client = redis.Redis(port=port, socket_connect_timeout=0.1, socket_timeout=0.5)
    try:
        return client.ping()
    except redis.RedisError:
        return False
    finally:
        client.close()


def bench_cli(lab_args) -> dict[str, float]:
    """(a): `lab up cluster` end to end, then removal of its project (timed apart)."""
    project = project_name("cluster")
    check_clear([], [project])
    result = {"startup": timed([*lab_args, "--version"])}

    def down():
        try:
            remove_project(project)
        finally:
            shutil.rmtree(state_dir() / project, ignore_errors=True)

    try:
        result["wall"] = timed([*lab_args, "up", "cluster"])
    finally:
        result["teardown"] = clean_up(project, down)
    return result


def bench_raw(image: str, port_base: int) -> dict[str, float]:
    """(b): docker compose + redis-cli on the rendered files, nothing of the tool in the timed part."""
    topo = derive_topology(load_lab("cluster"), MODE, run_id="benchraw", image=image, port_base=port_base)
    nodes = members(topo)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        compose = ["docker", "compose", "-f", str(render_project(topo, Path(tmp)))]
        try:
            t0 = time.monotonic()
            sh([*compose, "up", "-d"])
            t1 = time.monotonic()
            for node in nodes:
                wait_for(lambda: pong(node.host_port), f"PONG from {node.name}", 0.01)
            t2 = time.monotonic()
            sh(["docker", "exec", nodes[0].container, "redis-cli", "--cluster", "create",
                *[f"{n.ip}:{REDIS_PORT}" for n in nodes], "--cluster-replicas", "1", "--cluster-yes"])
            t3 = time.monotonic()
            wait_for(lambda: not_yet_formed(redis_nodes, topo, nodes) is None,
                     lambda: f"not formed: {not_yet_formed(redis_nodes, topo, nodes)}", 0.01)
            t4 = time.monotonic()
        finally:
            teardown_s = clean_up(topo.project, lambda: detached([*compose, "down", "-v", "-t", "0"]))
    return {"up": t1 - t0, "pong": t2 - t1, "create": t3 - t2, "formed": t4 - t3, "join": t4 - t2, "total": t4 - t0,
            "teardown": teardown_s}


def bench_inproc(port_base: int) -> dict[str, float]:
    """(c): what `lab up` runs, called in-process and timed phase by phase (as lifecycle.wait_ready)."""
    engine = Engine()
    t0 = time.monotonic()
    image = resolve_image(engine).name
    topo = derive_topology(load_lab("cluster"), MODE, run_id="benchlib", image=image, port_base=port_base)
    preflight(topo, engine)
    t1 = time.monotonic()
    kind = kind_of(load_lab("cluster"))
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        handle = prepare(topo, Path(tmp))
        runtime = handle.runtime
        t2 = time.monotonic()
        try:
            runtime.up()
            t3 = time.monotonic()
            for node in topo.nodes:
                wait_for(lambda: is_ready(node), f"{node.name} ready", 0.05)
            t4 = time.monotonic()
            kind.form(handle)
            t5 = time.monotonic()
            wait_for(lambda: kind.not_settled(handle) is None, lambda: f"not formed: {kind.not_settled(handle)}", 0.05)
            t6 = time.monotonic()
        finally:
            # the tool's teardown removes by its run label (benchlib); its docker commands share our
            # process group, so a Ctrl-C can cut them short: clean_up's safety net catches that
            teardown_s = clean_up(topo.project, lambda: teardown(handle))
    return {"preflight": t1 - t0, "render": t2 - t1, "up": t3 - t2, "ready": t4 - t3, "create": t5 - t4,
            "formed": t6 - t5, "join": t6 - t4, "total": t6 - t0, "teardown": teardown_s}


ROWS = (  # (measurement, key, label)
    ("a", "wall", "(a) lab up cluster, wall time"),
    ("a", "startup", "    of which CLI start-up (lab --version)"),
    ("b", "total", "(b) raw floor, total"),
    ("b", "up", "    docker compose up -d"),
    ("b", "pong", "    PING from all six (10 ms polls)"),
    ("b", "create", "    redis-cli --cluster create"),
    ("b", "formed", "    until formed (10 ms polls)"),
    ("b", "join", "    create + formed"),
    ("c", "total", "(c) in-process lifecycle, total"),
    ("c", "preflight", "    image + pre-flight"),
    ("c", "render", "    render (prepare)"),
    ("c", "up", "    runtime.up (compose up)"),
    ("c", "ready", "    nodes ready (50 ms polls)"),
    ("c", "create", "    kind.form (redis-cli --cluster create)"),
    ("c", "formed", "    until formed (50 ms polls)"),
    ("c", "join", "    create + formed"),
    ("a", "teardown", "teardown (a) rm -f/network rm/volume rm"),
    ("b", "teardown", "teardown (b) compose down -v -t 0"),
    ("c", "teardown", "teardown (c) lifecycle.teardown"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port-base", type=int, default=7700, help="(a) uses it, (b) +20, (c) +40")
    args = parser.parse_args()
    bases = {"a": args.port_base, "b": args.port_base + 20, "c": args.port_base + 40}
    lab_args = [*LAB, "--port-base", str(bases["a"])]
    image = sh([*lab_args, "image", "which"]).stdout.strip()
    results = {"a": [], "b": [], "c": []}
    try:
        check_clear([b + i for b in bases.values() for i in range(6)],
                    [project_name("cluster", run) for run in ("benchraw", "benchlib")])
        with sigterm_as_interrupt():
            for run in range(args.runs):   # interleaved, so drift on the machine hits all alike
                print(f"run {run + 1}/{args.runs}", file=sys.stderr)
                results["a"].append(bench_cli(lab_args))
                results["b"].append(bench_raw(image, bases["b"]))
                results["c"].append(bench_inproc(bases["c"]))
    except KeyboardInterrupt:
        print("interrupted: what the benchmark had started was removed", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except (LabError, RuntimeError, TimeoutError) as exc:
        sys.exit(f"error: {exc} (what the benchmark had started was removed)")

    def values(which, key):
        return [r[key] for r in results[which]]

    print(f"cluster lab bring-up, mode {MODE}, image {image}, {args.runs} runs (seconds)")
    print(f"    {'':40s} {'median':>7s} {'min':>7s} {'max':>7s}")
    for which, key, label in ROWS:
        v = values(which, key)
        print(f"    {label:40s} {statistics.median(v):7.3f} {min(v):7.3f} {max(v):7.3f}")
    med = {(w, k): statistics.median(values(w, k)) for w, k, _ in ROWS}
    overhead = med["a", "wall"] - med["b", "total"]
    rest = overhead - med["a", "startup"] - med["c", "preflight"]
    print(f"(a) - (b) = {overhead:.3f} s: Python start-up and imports of the CLI {med['a', 'startup']:.3f}, image "
          f"+ pre-flight {med['c', 'preflight']:.3f}, the other {rest:.3f}: render, 50 ms polls, output, noise")
    print("    (redis-cli --cluster create waits for the join in 1 s sleeps, so create and formed trade time: "
          "compare create + formed)")


if __name__ == "__main__":
    main()
