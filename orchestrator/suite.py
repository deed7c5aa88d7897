"""Run many scenarios: `lab verify` (every scenario and mode of some labs) and `lab compare`
(related scenarios side by side).

Every run ends as a result, whatever happens to it: a run that could not measure (its lab
did not start, a worker process died) is an ERROR result and the others go on, so verify and
compare always write their table, JSON and JUnit. Only Ctrl-C or SIGTERM stops the suite.

With jobs > 1 the runs go to worker processes, each on its own range of host ports (and so its
own lab subnet), so several labs run at once. Each worker runs a scenario exactly as `lab run`
does, cleanup and Ctrl-C handling included, and reports its phases back for the progress line.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import multiprocessing
import os
import queue
import signal
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable

from .engine.docker import Engine
from .engine.lifecycle import RunSettings, shielded_from_interrupts, sigterm_as_interrupt
from .engine.poll import wait_until
from .engine.topology import LABEL_RUN
from .errors import LabError
from .kinds import kind_of
from .measure.result import Result
from .scenario import error_result, new_run_id, run_scenario
from .spec import Lab, load_lab

PORT_STRIDE = 20      # host ports per worker: a lab uses at most 8 from its base
Run = tuple[Lab, str, str]
OnProgress = Callable[[int, str, "int | None"], None]    # (run index, phase, acknowledged so far)


def plan(labs: Iterable[Lab]) -> list[Run]:
    """(lab, scenario, mode) for every scenario of every lab, in every mode it declares."""
    return [(lab, name, mode) for lab in labs for name, scenario in lab.scenarios.items() for mode in scenario.modes]


def run_plan(runs: list[Run], settings: RunSettings, on_result: Callable[[Result], None] = lambda r: None,
             jobs: int = 1, on_progress: OnProgress = lambda index, phase, acked: None) -> list[Result]:
    """Run every (lab, scenario, mode); results in the order of `runs`. `on_result` is called as
    each finishes, `on_progress(index, phase)` as each enters a phase."""
    if jobs <= 1 or len(runs) <= 1:
        engine = Engine()
        results = []
        for index, (lab, scenario, mode) in enumerate(runs):
            results.append(run_guarded(lab, scenario, mode, settings, engine,
                                       progress=lambda phase, acked, i=index: on_progress(i, phase, acked)))
            on_result(results[-1])
        return results
    return _Parallel(runs, settings, on_result, on_progress, jobs).run()


def run_guarded(lab: Lab, scenario: str, mode: str, settings: RunSettings, engine: Engine | None = None,
                run_id: str | None = None, progress=lambda phase, acked: None) -> Result:
    """run_scenario, with a problem that stops the run before it measures turned into an ERROR
    result (a port taken meanwhile, a Docker error): the suite goes on."""
    started = time.monotonic()
    try:
        return run_scenario(lab, scenario, mode, settings, engine=engine, run_id=run_id, progress=progress)
    except LabError as exc:
        return error_result(lab, scenario, mode, settings.image, str(exc), time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001 - one run's bug must not stop the suite
        traceback.print_exc(file=sys.stderr)
        return error_result(lab, scenario, mode, settings.image,
                            f"unexpected {type(exc).__name__} (a bug in redis-ha-lab): {exc}",
                            time.monotonic() - started)


class _Parallel:
    """The runs in worker processes. A worker that dies takes its run with it (an ERROR result,
    its containers removed by the run ID chosen here); the runs not yet started go to a new pool."""

    def __init__(self, runs: list[Run], settings: RunSettings, on_result, on_progress: OnProgress, jobs: int):
        self.runs, self.settings, self.on_result, self.on_progress, self.jobs = runs, settings, on_result, on_progress, jobs
        self.run_ids = [new_run_id() for _ in runs]   # chosen here, so this process can clean up after a dead worker
        self.results: dict[int, Result] = {}
        context = multiprocessing.get_context("spawn")
        self.context = context
        self.stop, self.pids, self.phases = context.Event(), context.Queue(), context.Queue()

    def run(self) -> list[Result]:
        # Bigger topologies (longer runs) first, so the last runs to finish are short ones.
        todo = sorted(range(len(self.runs)), key=self._weight)
        with sigterm_as_interrupt():
            while todo:
                todo = self._pool(todo)
        return [self.results[i] for i in range(len(self.runs))]

    def _weight(self, i: int) -> float:
        lab, scenario, _ = self.runs[i]
        chosen = lab.scenarios[scenario]
        return -len(chosen.steps) - 10 * kind_of(lab).node_count(lab.topology.params, chosen.uses)

    def _pool(self, todo: list[int]) -> list[int]:
        """Run `todo` in one pool; returns the runs still to do if a worker died."""
        slots = self.context.Queue()
        for slot in range(self.jobs):
            slots.put(slot)
        started: set[int] = set()
        pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=self.context, initializer=_start_worker,
                                   initargs=(slots, self.stop, self.pids, self.phases))
        try:
            pending = {pool.submit(_run_in_worker, str(self.runs[i][0].path), self.runs[i][1], self.runs[i][2],
                                   self.settings, self.run_ids[i], i): i for i in todo}
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                started |= self._drain_phases()
                for future in done:
                    index = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise
                    except Exception as exc:  # noqa: BLE001 - an exception that could not come back whole
                        result = error_result(*self.runs[index], self.settings.image,
                                              f"the worker process failed: {exc}")
                    if result is not None:      # None: skipped after an interruption
                        self._finish(index, result)
        except BrokenProcessPool:
            started |= self._drain_phases()
            lost = [i for i in todo if i in started and i not in self.results]
            with shielded_from_interrupts():
                _remove_runs([self.run_ids[i] for i in lost])
            for index in lost:
                self._finish(index, error_result(*self.runs[index], self.settings.image,
                                                 "the worker process running it died; what it had started was "
                                                 "removed"))
            pool.shutdown(wait=False, cancel_futures=True)
            return [i for i in todo if i not in self.results]
        except BaseException:
            self.stop.set()      # runs already handed to a worker are skipped, not started
            with shielded_from_interrupts():
                _stop_workers(pool, self.pids)
                _remove_runs([self.run_ids[i] for i in todo if i not in self.results])
            raise
        pool.shutdown(wait=True)
        return []

    def _finish(self, index: int, result: Result) -> None:
        self.results[index] = result
        self.on_result(result)

    def _drain_phases(self) -> set[int]:
        """Pass the workers' phase reports on; the indexes of runs that have started."""
        seen = set()
        while True:
            try:
                index, phase, acked = self.phases.get_nowait()
            except queue.Empty:
                return seen
            seen.add(index)
            self.on_progress(index, phase, acked)


def _stop_workers(pool: ProcessPoolExecutor, pids, grace_s: float = 60.0) -> None:
    """Pass the interruption on to the workers (Ctrl-C in a terminal reaches them already; a
    signal sent to this process alone does not); each removes its lab and exits. A worker
    still there after `grace_s` is killed."""
    workers = []
    while True:
        try:
            workers.append(pids.get_nowait())
        except queue.Empty:
            break
    for pid in workers:
        _signal(pid, signal.SIGINT)
    pool.shutdown(wait=False, cancel_futures=True)
    if not wait_until(lambda: not any(_alive(pid) for pid in workers), grace_s, interval_s=0.1):
        for pid in workers:
            _signal(pid, signal.SIGKILL)


def _remove_runs(run_ids: list[str]) -> None:
    """Remove what runs left behind (a killed worker cannot clean up after itself)."""
    if not run_ids:
        return
    engine = Engine()
    for run_id in run_ids:
        engine.remove_labelled(f"{LABEL_RUN}={run_id}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


_SLOT = 0
_STOP = None
_PHASES = None


def _start_worker(slots, stop, pids, phases) -> None:
    global _SLOT, _STOP, _PHASES
    faulthandler.enable()   # a worker that crashes says where
    _SLOT, _STOP, _PHASES = slots.get(), stop, phases
    pids.put(os.getpid())


def _run_in_worker(lab_path: str, scenario: str, mode: str, settings: RunSettings, run_id: str,
                   index: int) -> Result | None:
    if _STOP.is_set():
        return None
    _PHASES.put((index, "starting", None))
    mine = dataclasses.replace(settings, port_base=settings.port_base + _SLOT * PORT_STRIDE)
    try:
        return run_guarded(load_lab(lab_path), scenario, mode, mine, run_id=run_id,
                           progress=lambda phase, acked: _PHASES.put((index, phase, acked)))
    except BaseException:
        _STOP.set()          # an interruption (the lab is already removed): start nothing more
        raise
