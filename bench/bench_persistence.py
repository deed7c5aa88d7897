#!/usr/bin/env python3
"""Benchmarks for the persistence lab; prints figures side by side (not a pass/fail test).

(a) `lab up persistence` until ready  vs  `docker compose up -d` of the same rendered file + PING
(b) probe writes/s  vs  `redis-benchmark -c 1 -t set` through the same published port
(c) `lab run persistence kill-restart` wall time  vs  the waits inherent to the scenario

Usage: .venv/bin/python bench/bench_persistence.py [--rounds 3] [--port-base 7600]
Needs Docker, the image (`lab image build`) and redis-benchmark (`apt-get install redis-tools`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from orchestrator.engine.nodes import classify, direct_writer
from orchestrator.engine.poll import wait_until
from orchestrator.kinds import derive_topology
from orchestrator.spec import load_lab
from orchestrator.workloads.writes import OK, Probe

LAB = [sys.executable, "-m", "orchestrator.cli"]


def sh(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def timed(argv) -> float:
    started = time.monotonic()
    sh(argv)
    return time.monotonic() - started


def wait_for_pong(port: int, timeout_s: float = 30) -> None:
    """Poll PING every 10 ms (the raw floor: no INFO, unlike the tool's readiness check)."""
    client = redis.Redis(port=port, socket_connect_timeout=0.1, socket_timeout=0.5)

    def pong() -> bool:
        try:
            return client.ping()
        except redis.RedisError:
            return False

    if not wait_until(pong, timeout_s, interval_s=0.01):
        raise TimeoutError(f"no PONG on port {port} within {timeout_s} s")


def bench_up(lab_args, port: int, rounds: int) -> tuple[list[float], list[float]]:
    ours, raw = [], []
    for _ in range(rounds):
        ours.append(timed([*lab_args, "up", "persistence"]))
        sh([*lab_args, "down", "persistence"])
        with tempfile.TemporaryDirectory() as tmp:
            sh([*lab_args, "render", "persistence", "-o", tmp])
            compose = ["docker", "compose", "-f", f"{tmp}/compose.yaml"]
            started = time.monotonic()
            sh([*compose, "up", "-d"])
            wait_for_pong(port)
            raw.append(time.monotonic() - started)
            sh([*compose, "down", "-v", "-t", "1"])
    return ours, raw


def probe_rate(port: int, seconds: float) -> float:
    node = derive_topology(load_lab("persistence"), "aof-everysec", "bench", "x", port_base=port).nodes[0]
    probe = Probe(lambda: direct_writer(node), classify, run_id="bench")
    probe.start()
    time.sleep(seconds)
    probe.stop()
    oks = [a for a in probe.attempts if a.outcome == OK]
    return len(oks) / (oks[-1].completed - oks[0].invoked)


def benchmark_rate(port: int, requests: int, *extra: str) -> float:
    out = sh(["redis-benchmark", "-p", str(port), "-c", "1", "-t", "set", "-n", str(requests), "-q", *extra]).stdout
    return float(re.findall(r"([0-9.]+) requests per second", out)[-1])


# redis-benchmark's SET overwrites one key with a 3-byte value; the probe adds a new key per
# write with a ~12-byte value. -r/-d give redis-benchmark the probe's work, for a second view.
SAME_WORK = ("-r", "100000000", "-d", "12")


def bench_rates(lab_args, port: int, rounds: int) -> tuple[list[float], list[float], list[float]]:
    sh([*lab_args, "up", "persistence"])
    try:
        probe, benchmark, same_work = [], [], []
        for _ in range(rounds):  # interleaved, so drift on the machine hits all alike
            benchmark.append(benchmark_rate(port, 15000))
            probe.append(probe_rate(port, 2.5))
            same_work.append(benchmark_rate(port, 15000, *SAME_WORK))
        return probe, benchmark, same_work
    finally:
        sh([*lab_args, "down", "persistence"])


def bench_run(lab_args, rounds: int) -> list[dict]:
    runs = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            sh([*lab_args, "run", "persistence", "kill-restart", "--json", f"{tmp}/r.json"])
            wall = time.monotonic() - started
            result = json.loads(Path(tmp, "r.json").read_text())
        runs.append({"wall": wall, **result["phases_s"], "waited": result["waited_s"],
                     "outage": result["metrics"]["unavailable_s"]})
    return runs


def med(values) -> str:
    return f"{statistics.median(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--port-base", type=int, default=7600)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is missing: apt-get install redis-tools")
    lab_args = [*LAB, "--port-base", str(args.port_base)]
    port = args.port_base

    ours, raw = bench_up(lab_args, port, args.rounds)
    print(f"(a) bring-up, median of {args.rounds} (seconds)")
    print(f"    lab up persistence (CLI start, image check, render, compose up, ready): {med(ours)}  {[round(x, 3) for x in ours]}")
    print(f"    docker compose up -d + first PONG (same rendered file):                 {med(raw)}  {[round(x, 3) for x in raw]}")

    probe, benchmark, same_work = bench_rates(lab_args, port, args.rounds)
    print(f"(b) write rate through 127.0.0.1:{port} (docker-proxy), mode aof-everysec, median of {args.rounds} (SET/s)")
    print(f"    probe (one redis-py connection, every attempt recorded): {statistics.median(probe):8.0f}  {[round(x) for x in probe]}")
    print(f"    redis-benchmark -c 1 -t set -n 15000:                     {statistics.median(benchmark):8.0f}  {[round(x) for x in benchmark]}")
    print(f"    redis-benchmark ... {' '.join(SAME_WORK)} (the probe's work): {statistics.median(same_work):5.0f}  {[round(x) for x in same_work]}")
    print(f"    probe / redis-benchmark = {statistics.median(probe) / statistics.median(benchmark):.0%} (target >= 90%); "
          f"probe / same-work benchmark = {statistics.median(probe) / statistics.median(same_work):.0%}")

    runs = bench_run(lab_args, args.rounds)
    print(f"(c) lab run persistence kill-restart, median of {args.rounds} (seconds)")
    for key, label in (("wall", "wall time of the command"), ("up", "  bring-up until ready"),
                       ("steps", "  scenario steps"), ("read_back", "  read-back of acked keys"),
                       ("teardown", "  teardown (rm -f by label)"), ("waited", "inherent: `wait` steps"),
                       ("outage", "inherent: restart outage (unavailable_s)")):
        print(f"    {label:45s} {med([r[key] for r in runs])}")
    inherent = statistics.median([r["waited"] + r["outage"] for r in runs])
    print(f"    overhead beyond the inherent waits: {statistics.median([r['wall'] for r in runs]) - inherent:.3f}")


if __name__ == "__main__":
    main()
