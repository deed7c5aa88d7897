"""How long `lab --help` takes against importing the three libraries it cannot do without.

Prints the median and range of N runs of each, interleaved (a noisy machine slows both alike),
and their ratio: `lab --help`, `lab list` and `lab validate` must not import what runs labs
(python-on-whales, pydantic, redis-py), so --help should cost at most about twice the floor.

    .venv/bin/python bench/bench_cli_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
COMMANDS = {
    "lab --help": [str(VENV_BIN / "lab"), "--help"],
    "lab list": [str(VENV_BIN / "lab"), "list"],
    "python -c 'import click, yaml, tabulate'": [sys.executable, "-c", "import click, yaml, tabulate"],
}


def once(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    for argv in COMMANDS.values():
        once(argv)                      # warm the page cache and .pyc files
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(once(argv))
    floor = statistics.median(times["python -c 'import click, yaml, tabulate'"])
    print(f"{runs} runs each, interleaved; wall seconds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<42} median {median:.3f}  (min {min(values):.3f}, max {max(values):.3f})  "
              f"x{median / floor:.2f} of the import floor")


if __name__ == "__main__":
    main()
