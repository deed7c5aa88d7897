"""The interface of a workload: what runs against a lab while faults happen.

A workload is registered under a name (a lab file's `workload:`; `writes` by default). It
declares the options `probe: start` may give it and checks that they apply to the lab, and the
invariants every run of it must show to count as measured. While a run goes on it records its
own history; afterwards `observe` turns that history (and, for writes, a read-back) into the
object its metrics read. A history need not be keys written: the messaging workload's is
messages produced and consumed; an external program's is the attempts it reports.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, ClassVar, Mapping

from ..events import Event
from ..spec import Bound, Param


def death_report(what: str, exc: BaseException) -> str:
    """`what` died with `exc`: the exception and the line of code that raised it, for a
    workload thread's failure (which makes the run an ERROR)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{what}: {type(exc).__name__}: {exc}{where}"


def close_quietly(writer) -> None:
    """Close a writer whose connection may be broken: it is dropped either way."""
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close
        pass


class AttemptLoop:
    """A thread that makes attempts through `connect()`'s writer and records each one (the write
    probe, the message producer): started and stopped once, with a failure if it died or never
    tried. `classify(exc, connecting)` gives the outcome and kind of an attempt that raised.
    A subclass gives `_loop` and its words for what it is and what it counts."""

    what: ClassVar[str]           # "probe": its thread's name, and the subject of its failures
    died: ClassVar[str]           # "the probe's write loop died at attempt" (followed by the number)

    def __init__(self, connect: Callable[[], object], classify: Callable[[BaseException, bool], tuple[str, str]],
                 clock: Callable[[], float] = time.monotonic):
        self._connect, self._classify, self._clock = connect, classify, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._records: list[tuple] = []
        self.connections: list[tuple[float, int]] = []   # (monotonic time, port) of each connect
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.failure: str | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.what} already started")
        self.started_at = self._clock()
        self._thread = threading.Thread(target=self._run, name=self.what, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None or self.stopped_at is not None:
            return
        self.stopped_at = self._clock()
        self._stop.set()
        self._thread.join()
        if self.failure is None and not self._records:
            self.failure = f"the {self.what} made no attempt at all"

    @property
    def endpoint(self) -> int | None:
        """The host port of the last connection made."""
        return self.connections[-1][1] if self.connections else None

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - whatever ends the thread makes the run an ERROR
            self.failure = death_report(f"{self.died} {len(self._records) + 1}", exc)

    def _loop(self) -> None:
        raise NotImplementedError


class Workload:
    name: ClassVar[str]
    summary: ClassVar[str]
    history: ClassVar[str]           # what observe() returns, which the metrics read ("writes", "messages")
    options: ClassVar[tuple[Param, ...]] = ()
    invariants: ClassVar[dict[str, Bound]] = {}    # checked in every run besides the lab file's expectations

    @classmethod
    def check_options(cls, options: Mapping[str, Any], kind, params: Mapping[str, Any]) -> tuple[str, str] | None:
        """(option, problem) for an option that does not apply to this lab, or None."""
        return None

    @classmethod
    def check_step(cls, action: str, args: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[str, str] | None:
        """(argument, problem) for a step acting on this workload that names something it does
        not have, or None."""
        return None

    def __init__(self, ctx, options: Mapping[str, Any]):
        self.ctx = ctx
        self.given = dict(options)

    # ------------------------------------------------------------ while the run goes on

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    @property
    def failure(self) -> str | None:
        """Why the workload stopped measuring before it was told to (its thread died, its
        program exited), or None. A run with a failure is an ERROR."""
        return None

    @property
    def window(self) -> tuple[float, float | None] | None:
        """When it started and stopped (monotonic)."""
        return None

    @property
    def endpoint(self) -> int | None:
        """The host port it last connected to (a restart of that node is one it feels), or None."""
        return None

    @property
    def acked_so_far(self) -> int | None:
        """How many writes or messages the servers acknowledged so far (for the progress line)."""
        return None

    def describe_start(self) -> str:
        return f"{self.name} workload starts"

    def describe_stop(self) -> str:
        return f"{self.name} workload stopped"

    # ------------------------------------------------------------ afterwards

    def observe(self) -> Any:
        """The history its metrics read (after recovery: reads back what it must)."""
        raise NotImplementedError

    def keys_acked_before_fault(self, history: Any) -> list[str]:
        """Keys the servers acknowledged before the fault took effect (the kind counts how many
        each node still holds); [] for a workload that writes no keys."""
        return []

    def client_events(self, history: Any) -> list[Event]:
        """What the client saw around the fault, for the timeline."""
        return []

    def report_fields(self, history: Any) -> dict:
        """Extra fields of the result: error_kinds, mislabelled, shards, timeline."""
        return {}
