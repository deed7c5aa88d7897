"""What the power-loss filesystem costs the probe: its write rate in aof-everysec on a named
volume (kill-restart) against the same on the power-loss filesystem (power-loss), both measured
by the tool itself (`writes_per_s`: acknowledged writes per second before the fault), runs
interleaved so a noisy machine slows both alike. Also prints the fsync rate the filesystem saw
in each mode's power-loss run when --modes asks for more modes.

    .venv/bin/python bench/bench_power_loss.py [--rounds 5] [--port-base 7600] [--modes aof-everysec,aof-always]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

LAB = [sys.executable, "-m", "orchestrator.cli"]


def measured(port_base: int, scenario: str, mode: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-power-loss-") as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run([*LAB, "--port-base", str(port_base), "run", "persistence", scenario, "--mode", mode,
                        "--json", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = json.loads(out.read_text())
    if result["status"] not in ("pass", "fail"):
        raise SystemExit(f"{scenario} [{mode}] could not measure: {result['error']}")
    return result["metrics"]


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.0f}  (min {min(values):.0f}, max {max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port-base", type=int, default=7600)
    parser.add_argument("--modes", default="aof-everysec")
    options = parser.parse_args()
    for mode in options.modes.split(","):
        volume, mounted, ratios, fsyncs = [], [], [], []
        for _ in range(options.rounds):
            a = measured(options.port_base, "kill-restart", mode)["writes_per_s"]
            b = measured(options.port_base, "power-loss", mode)
            volume.append(a)
            mounted.append(b["writes_per_s"])
            ratios.append(b["writes_per_s"] / a)
            fsyncs.append(b["fsyncs_per_s"])
        print(f"mode {mode}, {options.rounds} rounds, probe writes per second before the fault:")
        print(f"  named volume (kill-restart)           {spread(volume)}")
        print(f"  power-loss filesystem (power-loss)    {spread(mounted)}")
        print(f"  ratio, round by round                 median {statistics.median(ratios):.2f}  "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
        print(f"  fsyncs per second on the filesystem  median {statistics.median(fsyncs):.1f}")


if __name__ == "__main__":
    main()
