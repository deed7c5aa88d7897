"""The `external` workload: any program writes to the lab and reports every attempt as one JSON
line on its standard output; the tool reads every key back and computes the same metrics as
for its own probe (the history is a writes.WriteHistory, read back by writes.read_back).

The program learns where the lab is from its environment: the kind's `client_env` (LAB_KIND,
LAB_NODES, LAB_MASTER, LAB_ADDRESS_MAP; Sentinel: LAB_SENTINELS, LAB_MASTER_NAME; cluster:
LAB_CLUSTER_SEEDS) plus LAB_KEY_PREFIX (every key it writes starts with it; unique per run) and
LAB_RUN_SECONDS (it is stopped before then; a program may end itself at that bound).

What it prints, one JSON object per line (times are seconds on CLOCK_MONOTONIC, the clock of
Python's time.monotonic(), Node's process.hrtime, PHP's hrtime(), clock_gettime(CLOCK_MONOTONIC),
system-wide on Linux and so the tool's own):

    {"client": "ioredis", "version": "6.0.0"}                       first line, optional
    {"key": "<prefix>17", "value": "17", "invoke": 8123.401, "complete": 8123.402,
     "outcome": "ok", "error": ""}                                  one per attempt
    {"note": "+switch-master received", "at": 8125.9}              optional: what the library said

`outcome` is `ok` (acknowledged), `fail` (certainly not applied: an error reply, a refused
connection) or `info` (unknown: a timeout, a reset, a library that may have retried). `value`
is optional (without it any value counts as present); `server` ("127.0.0.1:7101"), optional,
says where the write went. Each attempt writes a key of its own.

The tool stops the program with SIGTERM at `probe: stop` (after waiting up to `await_recovery`
for its first acknowledged write after the fault), gives it TERM_GRACE_S to flush and exit, then
SIGKILLs its process group. The program runs in a session of its own (Ctrl-C at the terminal
reaches only the tool, which stops it as above) and is SIGKILLed by the kernel if the tool dies
(PR_SET_PDEATHSIG). A line that is not such an object, an exit before the stop, no attempt at
all, or a time off the clock (before the program started, after the line was read, complete
before invoke) makes `failure` say which: the run is an ERROR.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Callable

from ..errors import ScenarioAborted
from ..events import Event
from ..spec import Param, parse_duration
from ..spec.registry import register_workload
from .base import Workload
from .writes import (FAIL, FINAL_WINDOW_S, INFO, OK, Attempt, Range, ReadBack, WriteHistory, Writes, client_events,
                     range_gaps, range_rows, read_back, timeline, unavailable_span)

OUTCOMES = (OK, FAIL, INFO)
CLOCK_SLACK_S = 0.002         # printed times are rounded; a time this close to a bound is on the clock
MAX_LINE_BYTES = 64 * 1024
FIRST_ATTEMPT_WAIT_S = 15.0   # start() waits this long for the program's first attempt (runtime start, connect)
TERM_GRACE_S = 2.0            # after SIGTERM, before SIGKILL
RECOVERY_POLL_S = 0.05
STDERR_LINES = 8
SEQUENCE = "errors until the first ack after the fault: "   # the timeline line compare_clients reads


class ProtocolError(ValueError):
    """A line the program printed breaks the protocol; the message says which line and why."""


@dataclass(frozen=True)
class Hello:
    client: str
    version: str


@dataclass(frozen=True)
class Reported:
    """One attempt as the program reported it (monotonic seconds)."""

    key: str
    value: str | None
    invoked: float
    completed: float
    outcome: str
    error: str
    server: str | None = None


@dataclass(frozen=True)
class Note:
    at: float
    text: str


# ------------------------------------------------------------------ one line

def _text_field(obj: dict, name: str, where: str, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"{where}: `{name}` is missing")
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: `{name}` must be a string, not {json.dumps(value)[:40]}")
    return value


def _time_field(obj: dict, name: str, where: str, started_at: float, now: float) -> float:
    value = obj.get(name)
    if value is None:
        raise ProtocolError(f"{where}: `{name}` is missing (seconds on CLOCK_MONOTONIC)")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ProtocolError(f"{where}: `{name}` must be a number of seconds, not {json.dumps(value)[:40]}")
    if value < started_at - CLOCK_SLACK_S:
        raise ProtocolError(f"{where}: `{name}` {value:.6f} is before the program was started ({started_at:.6f}): "
                            f"times must be seconds on CLOCK_MONOTONIC (time.monotonic(), process.hrtime, hrtime(), "
                            f"clock_gettime(CLOCK_MONOTONIC)), not wall-clock time or a clock of the program's own")
    if value > now + CLOCK_SLACK_S:
        raise ProtocolError(f"{where}: `{name}` {value:.6f} is after the line was read ({now:.6f}): times must be "
                            f"seconds on CLOCK_MONOTONIC, not wall-clock time, milliseconds or nanoseconds")
    return float(value)


def parse_line(text: str, line_no: int, started_at: float, now: float, prefix: str) -> Hello | Reported | Note:
    """One line of the program's output as a Hello, a Reported attempt or a Note. `started_at`
    is when the program was started and `now` when the line was read (monotonic seconds); every
    key must start with `prefix`. Raises ProtocolError naming the line and the problem."""
    where = f"line {line_no}"
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"{where} is not JSON ({exc.msg}): {text.strip()[:80]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where} is JSON but not an object: {text.strip()[:80]!r}")
    if "key" in obj:
        key = _text_field(obj, "key", where, required=True)
        if not key.startswith(prefix):
            raise ProtocolError(f"{where}: key {key[:60]!r} does not start with LAB_KEY_PREFIX ({prefix!r})")
        outcome = obj.get("outcome")
        if outcome not in OUTCOMES:
            raise ProtocolError(f"{where}: `outcome` must be one of {', '.join(OUTCOMES)}, not "
                                f"{json.dumps(outcome)[:40]}")
        invoked = _time_field(obj, "invoke", where, started_at, now)
        completed = _time_field(obj, "complete", where, started_at, now)
        if completed < invoked:
            raise ProtocolError(f"{where}: `complete` {completed:.6f} is before `invoke` {invoked:.6f}")
        error = _text_field(obj, "error", where) or ""
        return Reported(key=key, value=_text_field(obj, "value", where), invoked=invoked, completed=completed,
                        outcome=outcome, error=error if outcome != OK else "", server=_text_field(obj, "server", where))
    if "note" in obj:
        return Note(at=_time_field(obj, "at", where, started_at, now), text=_text_field(obj, "note", where, True))
    if "client" in obj:
        return Hello(client=_text_field(obj, "client", where, True), version=str(obj.get("version", "?")))
    raise ProtocolError(f"{where} has none of `key` (an attempt), `client` (the first line) or `note`: "
                        f"{text.strip()[:80]!r}")


# ------------------------------------------------------------------ the transcript

class Transcript:
    """What the program printed, checked line by line as it arrives. After the first problem it
    keeps nothing more (the run is an ERROR); `problem` says what it was."""

    def __init__(self, started_at: float, prefix: str, clock: Callable[[], float] = time.monotonic):
        self.started_at, self.prefix, self._clock = started_at, prefix, clock
        self.hello: Hello | None = None
        self.attempts: list[Reported] = []
        self.notes: list[Note] = []
        self.problem: str | None = None
        self.lines = 0
        self.acked = 0
        self._lines_of_keys: dict[str, int] = {}

    def feed(self, raw: str) -> None:
        self.lines += 1
        if self.problem is not None or not raw.strip():
            return
        try:
            item = parse_line(raw, self.lines, self.started_at, self._clock(), self.prefix)
            self._keep(item)
        except ProtocolError as exc:
            self.problem = str(exc)

    def refuse(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem

    def _keep(self, item) -> None:
        if isinstance(item, Hello):
            if self.attempts or self.notes or self.hello is not None:
                raise ProtocolError(f"line {self.lines}: the `client` line must be the first line, and only one")
            self.hello = item
        elif isinstance(item, Note):
            self.notes.append(item)
        else:
            first = self._lines_of_keys.setdefault(item.key, self.lines)
            if first != self.lines:
                raise ProtocolError(f"line {self.lines}: key {item.key!r} was already reported on line {first}: "
                                    f"each attempt writes a key of its own")
            self.attempts.append(item)
            self.acked += item.outcome == OK


# ------------------------------------------------------------------ the history

@dataclass(frozen=True)
class ExternalHistory:
    """The reported attempts as a WriteHistory (seq = position by invoke time, from 1) and the
    key and value each seq wrote, for the read-back and the timeline."""

    history: WriteHistory
    keys: dict[int, str]
    values: dict[int, str | None]
    texts: dict[int, str]          # the error text the program reported


def error_kind(text: str) -> str:
    """A short kind for an error text a program reported: the Redis error code it carries
    (READONLY, LOADING, CLUSTERDOWN, ...), a connection failure by its usual words, or the
    text itself, shortened."""
    code = re.search(r"\b(READONLY|LOADING|CLUSTERDOWN|NOREPLICAS|MASTERDOWN|MOVED|ASK|TRYAGAIN|BUSY|OOM|"
                     r"NOAUTH|WRONGPASS|NOPERM|EXECABORT|CROSSSLOT)\b", text)
    if code:
        return code.group(1)
    lowered = text.lower()
    for needles, label in ((("econnrefused", "refused"), "connection refused"),
                           (("econnreset", "reset by peer", "connection reset"), "connection reset"),
                           (("etimedout", "timeout", "timed out"), "timeout"),
                           (("ehostunreach", "enetunreach", "unreachable"), "unreachable"),
                           (("epipe", "broken pipe", "closed", "connection lost", "went away", "disconnect",
                            "error while reading", "error while writing", "socket"), "connection closed"),
                           (("sentinel", "no master", "master not found", "masternotfound"), "no master"),
                           (("maxretriesperrequest", "max retries", "retries"), "retries exhausted")):
        if any(needle in lowered for needle in needles):
            return label
    message = re.sub(r"^[\w.\\]+(?: \w+)?: ", "", text.strip())     # "Namespace\\Class CODE: message" -> message
    if re.match(r"ERR\b", message):
        return "ERR"
    short = " ".join(message.split())[:48]
    return short or "unspecified"


def build_history(transcript: Transcript, ranges, stopped_at: float | None) -> ExternalHistory:
    """The transcript's attempts in invoke order as a WriteHistory (with an empty read-back);
    `ranges` are the kind's key ranges at the start (cluster shards), placed by their keys."""
    reported = sorted(transcript.attempts, key=lambda r: (r.invoked, r.completed))
    attempts, keys, values, texts, range_of = [], {}, {}, {}, {}
    for seq, r in enumerate(reported, start=1):
        attempts.append(Attempt(seq, r.invoked, r.completed, r.outcome,
                                "" if r.outcome == OK else error_kind(r.error)))
        keys[seq], values[seq], texts[seq] = r.key, r.value, r.error
        if ranges:
            index = next((i for i, kr in enumerate(ranges) if kr.holds(r.key)), None)
            if index is not None:
                range_of[seq] = index
    history = WriteHistory(attempts=attempts, readback=ReadBack(),
                           ranges=tuple(Range(r.label, r.master, r.replicas, r.slots) for r in ranges),
                           range_of=range_of, stopped_at=stopped_at)
    return ExternalHistory(history, keys, values, texts)


def error_sequence(history: WriteHistory, marks: dict) -> list[tuple[str, int, float]]:
    """The client's errors during the outage `unavailable_s` measures (from its last ack before
    the fault to its first ack after it; in a cluster the slowest shard's, and only that shard's
    writes), as runs of one kind: (kind, attempts, seconds from the first to the last completion
    of the run). Without a recovery: from the last ack before the fault to the end."""
    effective = marks["fault"][1]
    span = unavailable_span(history, marks)
    shard = None
    if span is None:
        before = [a.completed for a in history.oks() if a.completed <= effective]
        span = (before[-1] if before else float("-inf"), float("inf"))
    elif history.ranges:
        gaps = range_gaps(history, effective)
        shard = next((i for i, gap in gaps.items() if gap == span), None)
    start, end = span
    runs: list[list] = []
    for a in history.attempts:
        if a.outcome == OK or not start <= a.completed <= end:
            continue
        if shard is not None and history.range_of.get(a.seq) != shard:
            continue
        if runs and runs[-1][0] == a.error:
            runs[-1][1] += 1
            runs[-1][3] = a.completed
        else:
            runs.append([a.error, 1, a.completed, a.completed])
    return [(kind, count, round(last - first, 3)) for kind, count, first, last in runs]


def describe_sequence(runs: list[tuple[str, int, float]], recovered: bool) -> str:
    """`connection refused x31 (2.94 s), READONLY x2 (0.01 s), then ok` (the timeline's words)."""
    parts = [f"{kind} x{count} ({span:.2f} s)" for kind, count, span in runs] or ["none"]
    return ", ".join(parts) + (", then ok" if recovered else ", no ack by the end")


# ------------------------------------------------------------------ the program

_LIVE: set[subprocess.Popen] = set()
_PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the thread that started it dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)     # its own session: the group id is its pid
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _kill_leftovers() -> None:
    """Whatever path the tool takes out (an exception nobody caught), no program outlives it."""
    for process in list(_LIVE):
        _kill_group(process, signal.SIGKILL)


class Program:
    """A client program running as a child of the tool, its output read by two threads."""

    def __init__(self, argv: list[str], env: dict[str, str], transcript: Transcript):
        self.argv, self.env, self.transcript = argv, env, transcript
        self.process: subprocess.Popen | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        self.stopping = False
        self.exit_code: int | None = None
        self.exited_by_itself = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=self.env, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        _LIVE.add(self.process)
        for target, name in ((self._read_stdout, "client-stdout"), (self._read_stderr, "client-stderr")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_stdout(self) -> None:
        stream = self.process.stdout
        while True:
            raw = stream.readline(MAX_LINE_BYTES)
            if not raw:
                break
            if not raw.endswith(b"\n") and len(raw) >= MAX_LINE_BYTES:
                self.transcript.refuse(f"line {self.transcript.lines + 1} is longer than {MAX_LINE_BYTES} bytes")
                while raw and not raw.endswith(b"\n"):
                    raw = stream.readline(MAX_LINE_BYTES)
                continue
            self.transcript.feed(raw.decode("utf-8", "replace"))
        code = self.process.wait()
        if not self.stopping:
            self.exited_by_itself, self.exit_code = True, code

    def _read_stderr(self) -> None:
        for raw in self.process.stderr:
            text = raw.decode("utf-8", "replace").rstrip()
            if text:
                self.stderr_tail.append(text[:300])

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, up to TERM_GRACE_S to flush and exit, then SIGKILL to the whole group."""
        if self.process is None:
            return
        self.stopping = True
        try:
            if self.process.poll() is None:
                _kill_group(self.process, signal.SIGTERM)
                try:
                    self.process.wait(TERM_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            _kill_group(self.process, signal.SIGKILL)     # the program if it lingers, and anything it started
            self.process.wait()
            _LIVE.discard(self.process)
            for thread in self._threads:
                thread.join(TERM_GRACE_S)
            if self.exit_code is None:
                self.exit_code = self.process.returncode

    def stderr_text(self) -> str:
        return " | ".join(self.stderr_tail) or "nothing on standard error"


# ------------------------------------------------------------------ the workload

@register_workload
class External(Workload):
    name = "external"
    history = "writes"                  # observe() returns a WriteHistory: every writes metric applies
    summary = ("any program writes and reports each attempt as a JSON line on stdout (see README); the tool reads "
               "every key back")
    options = (Param("command", "word"), Param("await_recovery", "duration", default="30s"),
               Param("run_limit", "duration", default="10m"))
    invariants = Writes.invariants      # still writing at the end; no `fail` write landed

    @classmethod
    def check_options(cls, options, kind, params):
        try:
            argv = shlex.split(options["command"])
        except ValueError as exc:
            return ("command", f"cannot be split into words like a shell would: {exc}")
        if not argv:
            return ("command", "names no program")
        if parse_duration(options["run_limit"]) < 1:
            return ("run_limit", "must be at least 1s (LAB_RUN_SECONDS is a whole number of seconds)")
        return None

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.command = options["command"]
        self.await_recovery_s = parse_duration(options.get("await_recovery", "30s"))
        self.run_limit_s = parse_duration(options.get("run_limit", "10m"))
        self.transcript: Transcript | None = None
        self.program: Program | None = None
        self.ranges: list = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._stopped = False
        self._failure: str | None = None
        self.extra: ExternalHistory | None = None

    # ------------------------------------------------------------ while the run goes on

    def environment(self) -> dict[str, str]:
        """What the program is given: this process's environment, where the lab is, how long
        it may run and the prefix of its keys."""
        ctx = self.ctx
        return {**os.environ, **ctx.kind.client_env(ctx), "LAB_RUN_SECONDS": str(math.ceil(self.run_limit_s)),
                "LAB_KEY_PREFIX": f"ext:{ctx.topo.run_id}:"}

    def start(self) -> None:
        argv = shlex.split(self.command)
        if shutil.which(argv[0]) is None:
            raise ScenarioAborted(f"the client program {argv[0]!r} was not found or is not executable",
                                  "give the path of an executable or a command on PATH")
        env = self.environment()
        self.ranges = self.ctx.kind.key_ranges(self.ctx)
        clock = self.ctx.clock
        self.started_at = clock()
        self.transcript = Transcript(self.started_at, env["LAB_KEY_PREFIX"], clock)
        self.program = Program(argv, env, self.transcript)
        self.program.start()
        limit = clock() + FIRST_ATTEMPT_WAIT_S
        while (not self.transcript.attempts and self.transcript.problem is None and self.program.alive
               and clock() < limit):
            time.sleep(0.01)

    def stop(self) -> None:
        if self._stopped or self.program is None:
            return
        self._stopped = True
        try:
            self._await_recovery()
        finally:
            self.stopped_at = self.ctx.clock()
            self.program.stop()
        self._failure = self._judge()

    def _await_recovery(self) -> None:
        """If the fault struck and the program has not had a write acknowledged since, let it
        go on for up to await_recovery: a client that recovers slowly is measured, not cut off."""
        if "fault" not in self.ctx.marks or self.transcript.problem is not None:
            return
        effective = self.ctx.marks["fault"][1]
        limit = self.ctx.clock() + self.await_recovery_s
        waited = False
        while self.program.alive and self.ctx.clock() < limit and self.transcript.problem is None:
            if any(r.outcome == OK and r.invoked >= effective for r in self.transcript.attempts[-200:]):
                if waited:
                    time.sleep(FINAL_WINDOW_S)    # a second of writing after recovery: final_writes_per_s
                return
            waited = True
            time.sleep(RECOVERY_POLL_S)

    def _judge(self) -> str | None:
        transcript, program = self.transcript, self.program
        if transcript.problem is not None:
            return f"the client program broke the protocol: {transcript.problem}"
        if program.exited_by_itself:
            return (f"the client program exited on its own (exit code {program.exit_code}) after "
                    f"{len(transcript.attempts)} attempts, before the workload was stopped; standard error: "
                    f"{program.stderr_text()}")
        if not transcript.attempts:
            said = f"{transcript.lines} lines, none an attempt" if transcript.lines else "nothing on standard output"
            return f"the client program reported no attempt ({said}); standard error: {program.stderr_text()}"
        return None

    @property
    def running(self) -> bool:
        return self.program is not None and not self._stopped

    @property
    def failure(self) -> str | None:
        if self._failure is not None:
            return self._failure
        if self.transcript is not None and self.transcript.problem is not None:
            return f"the client program broke the protocol: {self.transcript.problem}"
        if self.program is not None and self.program.exited_by_itself:
            return f"the client program exited on its own (exit code {self.program.exit_code})"
        return None

    @property
    def window(self):
        if self.transcript is None:
            return None
        first = min((r.invoked for r in self.transcript.attempts), default=self.started_at)
        return (first, self.stopped_at)

    @property
    def endpoint(self) -> int | None:
        servers = [r.server for r in self.transcript.attempts[-1:] if r.server] if self.transcript else []
        return _port(servers[0]) if servers else None

    @property
    def acked_so_far(self) -> int | None:
        return None if self.transcript is None else self.transcript.acked

    @property
    def client(self) -> Hello:
        return (self.transcript.hello if self.transcript is not None and self.transcript.hello
                else Hello(client=os.path.basename(shlex.split(self.command)[0]), version="?"))

    def describe_start(self) -> str:
        return f"client {self.client.client} {self.client.version} starts writing ({self.command})"

    def describe_stop(self) -> str:
        count = len(self.transcript.attempts) if self.transcript else 0
        return f"client stopped after {count} attempts (exit code {self.program.exit_code})"

    # ------------------------------------------------------------ afterwards

    def observe(self) -> WriteHistory:
        """Read every key the program reported back from the data as it stands after recovery."""
        extra = build_history(self.transcript, self.ranges, self.stopped_at)
        reader = self.ctx.kind.reader(self.ctx)
        try:
            readback = read_back(extra.history.attempts, reader, extra.keys.__getitem__, extra.values.__getitem__)
        finally:
            reader.close()
        self.extra = replace(extra, history=replace(extra.history, readback=readback))
        return self.extra.history

    def keys_acked_before_fault(self, history: WriteHistory) -> list[str]:
        if "fault" not in self.ctx.marks:
            return []
        effective = self.ctx.marks["fault"][1]
        return [self.extra.keys[a.seq] for a in history.oks() if a.completed <= effective]

    def connections(self) -> list[tuple[float, int | None]]:
        """(time, port) of each attempt whose `server` differs from the one before."""
        found, last = [], None
        for r in self.transcript.attempts:
            if r.server and r.server != last:
                found.append((r.invoked, _port(r.server)))
                last = r.server
        return found

    def client_events(self, history: WriteHistory) -> list[Event]:
        ctx = self.ctx
        found = [Event(self.started_at - ctx.t0, f"client {self.client.client} {self.client.version}", "client")]
        found += client_events(ctx, history, self.connections(), key_of=self.extra.keys.__getitem__)
        found += [Event(n.at - ctx.t0, f"client note: {n.text}", "client") for n in self.transcript.notes]
        if "fault" in ctx.marks:
            effective = ctx.marks["fault"][1]
            runs = error_sequence(history, ctx.marks)
            recovered = any(a.invoked >= effective for a in history.oks())
            failed = [a for a in history.attempts if a.outcome != OK and a.completed >= effective]
            at = (failed[0].completed if failed else effective) - ctx.t0
            found.append(Event(at, SEQUENCE + describe_sequence(runs, recovered), "client"))
        return found

    def report_fields(self, history: WriteHistory) -> dict:
        landed = set(history.readback.fail_landed)
        return {"error_kinds": dict(Counter(a.error for a in history.attempts if a.outcome != OK)),
                "mislabelled": dict(Counter(a.error for a in history.attempts if a.seq in landed)),
                "shards": range_rows(history, self.ctx.marks),
                "timeline": timeline(history, self.ctx.marks, self.ctx.t0, self.ctx.events),
                "client": {"name": self.client.client, "version": self.client.version, "command": self.command}}


def _port(server: str) -> int | None:
    host, _, port = server.rpartition(":")
    return int(port) if port.isdigit() else None

