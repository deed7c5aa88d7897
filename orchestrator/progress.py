"""Live progress on a terminal while runs go on, plain lines elsewhere.

On a terminal one line is rewritten in place: for a single run its phase (up, the current step,
read-back, teardown), the elapsed time and the writes acknowledged so far; for a suite, runs done
of the total, an estimate of the time left, and what the runs in flight are doing. When the
output is not a terminal (CI logs), only plain lines are printed, one per phase at most, so a
log shows where a run was without a line every tenth of a second.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import Callable, TextIO

import click

REFRESH_S = 0.25
VERDICT_COLOURS = {"PASS": "green", "FAIL": "red", "ERROR": "yellow", "SKIP": "cyan"}


def colour_wanted(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def verdict_text(verdict: str, stream: TextIO = sys.stdout) -> str:
    return click.style(verdict, fg=VERDICT_COLOURS.get(verdict), bold=True) if colour_wanted(stream) else verdict


class Progress:
    """The progress of one run or of a suite of runs, written to `stream` (stderr by default)."""

    def __init__(self, total: int = 1, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.total = total
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.run_times: list[float] = []
        self.phases: dict[int, tuple[str, float]] = {}     # run index -> (phase, since)
        self.names: dict[int, str] = {}
        self.acked: dict[int, int | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._shown = ""

    # ------------------------------------------------------------ what the runs report

    def phase(self, index: int, name: str, phase: str, acked: int | None = None) -> None:
        """Run `index` (called `name`) is in `phase` (reported again now and then with a fresh
        count of acknowledged writes)."""
        with self._lock:
            before = self.phases.get(index, ("", 0.0))
            self.names[index] = name
            self.acked[index] = acked
            if phase != before[0]:
                self.phases[index] = (phase, self.clock())
        if not self.live:
            if phase.split()[0] != before[0].split(" ")[0]:       # up, step, read-back, teardown: once each
                self._line(f"{name}: {phase.split(':')[0] if phase.startswith('step') else phase}"
                           + (f" ({acked} acknowledged)" if acked else ""))
            return
        self._start_ticker()

    def finished(self, index: int, duration_s: float) -> None:
        with self._lock:
            self.done += 1
            self.run_times.append(duration_s)
            self.phases.pop(index, None)
            self.acked.pop(index, None)

    def echo(self, text: str, err: bool = False) -> None:
        """Print a line (a run's verdict) above the live line, to standard output (or error)."""
        with self._lock:
            self._clear()
            click.echo(text, err=err, color=colour_wanted(sys.stderr if err else sys.stdout) or None)
            self._shown = ""

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            self._clear()

    # ------------------------------------------------------------ the line

    def status(self) -> str:
        elapsed = self.clock() - self.started
        running = [f"{self.names[i]}: {phase} ({self.clock() - since:.0f} s)" for i, (phase, since) in
                   sorted(self.phases.items())]
        if self.total == 1:
            acked = next(iter(self.acked.values()), None)
            text = (running[0] if running else "starting") + f" · {elapsed:.1f} s"
            return text + (f" · {acked} acknowledged" if acked is not None else "")
        left = self.estimate_left()
        eta = f" · about {left:.0f} s left" if left is not None else ""
        return f"{self.done}/{self.total} runs done · {elapsed:.0f} s{eta} · " + "; ".join(running)

    def estimate_left(self) -> float | None:
        """Runs left times the mean run so far, divided by the runs going at once."""
        if not self.run_times:
            return None
        at_once = max(1, len(self.phases))
        return (self.total - self.done) * (sum(self.run_times) / len(self.run_times)) / at_once

    def _start_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            with self._lock:
                width = shutil.get_terminal_size((100, 20)).columns - 1
                text = self.status()[:width]
                self._clear()
                self.stream.write(text)
                self.stream.flush()
                self._shown = text

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * len(self._shown) + "\r")
            self.stream.flush()

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()
