"""The consumer processes of the `messages` workload: start, SIGKILL, SIGSTOP/SIGCONT, stop,
and read what each recorded. Each consumer runs `_consumer.py` as an OS process of its own.

They never outlive a run: each is the leader of a new session (Ctrl-C in the terminal reaches
only the tool, which stops them itself) and every signal goes to its whole process group;
`terminate_all` (called by the workload's stop, which the runner calls on every path, Ctrl-C
included) sends SIGCONT, SIGTERM, then SIGKILL to whatever is left; and the program itself
asks the kernel for SIGKILL when the tool's process ends (PR_SET_PDEATHSIG) and exits when
its parent changes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ScenarioAborted
from ._delivery import ConsumerEvent, Delivery

PROGRAM = Path(__file__).with_name("_consumer.py")
TERM_GRACE_S = 2.0        # after SIGTERM, before SIGKILL
POLL_S = 0.01


@dataclass
class Life:
    """One process of one consumer (a restart is a new life, with a file of its own)."""

    name: str
    number: int
    process: subprocess.Popen
    out: Path
    err: Path
    started_at: float
    ended_by: str | None = None     # "kill_consumer" or "stop": ended by the tool; None: still running or on its own
    paused: bool = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        """`sig` to the process's group (it leads its own session); nothing if it is gone."""
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            text = self.err.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class ConsumerPool:
    """The consumers of one run. `argv(name, out)` is the program's command line for a
    consumer; `env` the environment it gets (where the lab is); files go to `directory`."""

    def __init__(self, directory: Path, argv: Callable[[str, Path], list[str]], env: Callable[[], dict],
                 clock: Callable[[], float] = time.monotonic):
        self.directory = directory
        self._argv = argv
        self._env = env
        self._clock = clock
        self.lives: list[Life] = []

    def current(self, name: str) -> Life | None:
        mine = [life for life in self.lives if life.name == name]
        return mine[-1] if mine else None

    def start(self, name: str) -> Life:
        """Start consumer `name` (again). Raises ScenarioAborted if it is running already."""
        current = self.current(name)
        if current is not None and current.alive:
            raise ScenarioAborted(f"consumer {name} is already running (pid {current.process.pid})",
                                  "kill_consumer it before start_consumer")
        number = sum(1 for life in self.lives if life.name == name) + 1
        out = self.directory / f"{name}-{number}.jsonl"
        err = self.directory / f"{name}-{number}.stderr"
        with open(err, "wb") as stderr:
            process = subprocess.Popen(self._argv(name, out), env={**os.environ, **self._env()},
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                       start_new_session=True)
        life = Life(name=name, number=number, process=process, out=out, err=err, started_at=self._clock())
        self.lives.append(life)
        return life

    def _running(self, name: str, doing: str) -> Life:
        life = self.current(name)
        if life is None or not life.alive:
            raise ScenarioAborted(f"cannot {doing} consumer {name}: it is not running")
        return life

    def kill(self, name: str) -> Life:
        """SIGKILL consumer `name` and wait until it is gone."""
        life = self._running(name, "kill")
        life.ended_by = "kill_consumer"
        life.signal(signal.SIGKILL)
        life.process.wait()
        return life

    def wait_mid_batch(self, name: str, work_s: float, timeout_s: float) -> float:
        """Wait until consumer `name` has recorded a batch less than `work_s`/2 ago: it is then
        working on it and has not acknowledged it (it XACKs only after `work_s`). Returns how
        long ago the batch was recorded; raises ScenarioAborted after `timeout_s`."""
        life = self._running(name, "find a batch of")
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            received = last_receipt(life.out)
            if received is not None and self._clock() - received < work_s / 2:
                return self._clock() - received
            time.sleep(0.002)
        raise ScenarioAborted(f"consumer {name} received no batch within {timeout_s:g} s",
                              "is the producer publishing? a mid-batch kill needs messages flowing")

    def pause(self, name: str) -> Life:
        life = self._running(name, "pause")
        life.signal(signal.SIGSTOP)
        life.paused = True
        return life

    def resume(self, name: str) -> Life | None:
        """SIGCONT consumer `name` if it is paused; None if it is not (already resumed, or gone)."""
        life = self.current(name)
        if life is None or not life.paused:
            return None
        life.signal(signal.SIGCONT)
        life.paused = False
        return life

    def resume_all(self) -> None:
        for life in self.lives:
            if life.paused:
                life.signal(signal.SIGCONT)
                life.paused = False

    def wait_connected(self, names: list[str], timeout_s: float) -> None:
        """Until each named consumer has recorded its first connection (subscribed, or joined
        the group). Raises ScenarioAborted naming the ones that did not, or that exited."""
        deadline = self._clock() + timeout_s
        waiting = set(names)
        while waiting:
            for name in sorted(waiting):
                life = self.current(name)
                if any(e.what == "connected" for e in read_log(life)[1]):
                    waiting.discard(name)
                elif not life.alive:
                    raise ScenarioAborted(f"consumer {name} exited at its start (code {life.process.returncode})",
                                          life.stderr_tail() or "it wrote nothing on stderr")
            if waiting and self._clock() > deadline:
                name = sorted(waiting)[0]
                started = any(e.what == "start" for e in read_log(self.current(name))[1])
                raise ScenarioAborted(f"consumer {', '.join(sorted(waiting))} did not connect to the master within "
                                      f"{timeout_s:g} s ({name} {'was running' if started else 'had not even started'})",
                                      self.current(name).stderr_tail() or "it wrote nothing on stderr")
            if waiting:
                time.sleep(POLL_S)

    def exited_on_their_own(self) -> list[Life]:
        """Lives that ended without the tool ending them (a crash of the consumer program)."""
        return [life for life in self.lives if life.ended_by is None and not life.alive]

    def terminate_all(self) -> None:
        """Stop every consumer still running: SIGCONT (a paused one cannot act on SIGTERM),
        SIGTERM, and SIGKILL for any still there after TERM_GRACE_S. Never raises."""
        running = [life for life in self.lives if life.alive]
        for life in running:
            life.ended_by = "stop"
            life.signal(signal.SIGCONT)
            life.paused = False
            life.signal(signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        for life in running:
            try:
                life.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                life.signal(signal.SIGKILL)
                life.process.wait()

    def kill_all(self) -> None:
        """SIGKILL every consumer still running (the last resort). Never raises."""
        for life in self.lives:
            if life.alive:
                life.ended_by = life.ended_by or "stop"
                life.signal(signal.SIGKILL)
                try:
                    life.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass

    def records(self) -> tuple[list[Delivery], list[ConsumerEvent]]:
        """Every delivery and event every life recorded, in the order of the lives."""
        deliveries, events = [], []
        for life in self.lives:
            found = read_log(life)
            deliveries += found[0]
            events += found[1]
        return deliveries, events

    def sizes(self) -> tuple[int, ...]:
        """The sizes of the output files (to tell when the consumers have gone quiet)."""
        return tuple(life.out.stat().st_size if life.out.exists() else 0 for life in self.lives)


def read_log(life: Life) -> tuple[list[Delivery], list[ConsumerEvent]]:
    """What one life recorded: its deliveries and its events. A last line still being
    written (no newline yet) is left out."""
    try:
        text = life.out.read_text()
    except FileNotFoundError:
        return [], []
    deliveries, events = [], []
    for line in text.split("\n")[:-1]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "n" in record:
            deliveries.append(Delivery(life.name, int(record["n"]), float(record["t"]), record.get("id", ""),
                                       bool(record.get("claimed"))))
        elif "ev" in record:
            detail = {k: v for k, v in record.items() if k not in ("ev", "t")}
            events.append(ConsumerEvent(life.name, float(record["t"]), record["ev"], detail))
    return deliveries, events


def last_receipt(path: Path, tail_bytes: int = 8192) -> float | None:
    """The receipt time of the last message line of a consumer's file (None if its last whole
    line is an event, or there is none)."""
    try:
        with open(path, "rb") as out:
            out.seek(0, os.SEEK_END)
            out.seek(max(0, out.tell() - tail_bytes))
            lines = out.read().split(b"\n")[:-1]
    except OSError:
        return None
    if not lines:
        return None
    try:
        record = json.loads(lines[-1])
    except ValueError:
        return None
    return float(record["t"]) if "n" in record else None


def program_argv(name: str, out: Path, transport: str, key: str, group: str, min_idle_ms: int, batch: int,
                 work_ms: float) -> list[str]:
    """The command line of one consumer: `-I -S`, isolated from the user's environment and
    site-packages (it needs the standard library only, and starts faster without them)."""
    return [sys.executable, "-I", "-S", str(PROGRAM), "--name", name, "--transport", transport, "--key", key,
            "--group", group, "--out", str(out), "--parent", str(os.getpid()), "--min-idle-ms", str(min_idle_ms),
            "--batch", str(batch), "--work-ms", f"{work_ms:g}"]
