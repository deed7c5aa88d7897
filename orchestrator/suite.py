"""Run many scenarios: `lab verify` (every scenario and mode of some labs) and
`lab compare persistence` (the persistence scenarios across every mode).

With jobs > 1 the runs go to worker processes, each on its own range of host ports
(and so its own lab subnet), so several labs run at once. Each worker runs a scenario
exactly as `lab run` does, cleanup and Ctrl-C handling included.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import multiprocessing
import os
import queue
import signal
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable

from .clients import wait_until
from .errors import LabError, RuntimeFailure, ScenarioAborted
from .labs import Lab, load_lab
from .lifecycle import RunSettings, shielded_from_interrupts, sigterm_as_interrupt
from .runtime import Engine
from .scenario import Result, new_run_id, run_scenario
from .topology import LABEL_RUN

PORT_STRIDE = 20      # host ports per worker: a lab uses at most 7 from its base


def plan(labs: Iterable[Lab]) -> list[tuple[Lab, str, str]]:
    """(lab, scenario, mode) for every scenario of every lab, in every mode it declares."""
    return [(lab, name, mode) for lab in labs for name, scenario in lab.scenarios.items() for mode in scenario.modes]


def run_plan(runs: list[tuple[Lab, str, str]], settings: RunSettings,
             on_result: Callable[[Result], None] = lambda r: None, jobs: int = 1) -> list[Result]:
    """Run every (lab, scenario, mode); results in the order of `runs`. `on_result` is called
    as each finishes. A scenario whose step could not complete counts as failed; the rest run."""
    if jobs <= 1 or len(runs) <= 1:
        engine = Engine()
        results = []
        for lab, scenario, mode in runs:
            results.append(run_guarded(lab, scenario, mode, settings, engine))
            on_result(results[-1])
        return results
    return _run_parallel(runs, settings, on_result, jobs)


def run_guarded(lab: Lab, scenario: str, mode: str, settings: RunSettings, engine: Engine | None = None,
                run_id: str | None = None) -> Result:
    started = time.monotonic()
    try:
        return run_scenario(lab, scenario, mode, settings, engine=engine, run_id=run_id)
    except ScenarioAborted as exc:
        # A step that never completed (no failover, a node that never came back) is a
        # deviation like a failed expectation.
        chosen = lab.scenario(scenario)
        return Result(lab=lab.name, scenario=scenario, mode=mode, image=settings.image, summary=chosen.summary,
                      explain=chosen.explain, passed=False, duration_s=time.monotonic() - started,
                      metrics={}, checks=[], events=[], error=str(exc))


def _run_parallel(runs, settings: RunSettings, on_result, jobs: int) -> list[Result]:
    # Bigger topologies (longer runs) first, so the last runs to finish are short ones.
    order = sorted(range(len(runs)), key=lambda i: -len(runs[i][0].scenarios[runs[i][1]].steps)
                   - 10 * (runs[i][0].topology.replicas + runs[i][0].topology.sentinels))
    run_ids = [new_run_id() for _ in runs]   # chosen here, so this process can clean up after a dead worker
    context = multiprocessing.get_context("spawn")
    slots, stop, pids = context.Queue(), context.Event(), context.Queue()
    for slot in range(jobs):
        slots.put(slot)
    results: dict[int, Result] = {}
    with sigterm_as_interrupt():
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                                   initargs=(slots, stop, pids))
        started: list[int] = []
        try:
            pending = {pool.submit(_run_in_worker, str(runs[i][0].path), runs[i][1], runs[i][2], settings,
                                   run_ids[i]): i for i in order}
            started = list(order)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    results[index] = future.result()
                    on_result(results[index])
        except BaseException as exc:
            stop.set()      # runs already handed to a worker are skipped, not started
            with shielded_from_interrupts():
                _stop_workers(pool, pids)
                _remove_runs([run_ids[i] for i in started if i not in results])
            if isinstance(exc, BrokenProcessPool):
                raise RuntimeFailure("a worker process of `lab verify` died unexpectedly; what its run had "
                                     "started was removed", "run again, or with --jobs 1") from None
            raise
        pool.shutdown(wait=True)
    return [results[i] for i in range(len(runs))]


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


def _start_worker(slots, stop, pids) -> None:
    global _SLOT, _STOP
    faulthandler.enable()   # a worker that crashes says where
    _SLOT, _STOP = slots.get(), stop
    pids.put(os.getpid())


def _run_in_worker(lab_path: str, scenario: str, mode: str, settings: RunSettings, run_id: str) -> Result | None:
    if _STOP.is_set():
        return None
    mine = dataclasses.replace(settings, port_base=settings.port_base + _SLOT * PORT_STRIDE)
    try:
        return run_guarded(load_lab(lab_path), scenario, mode, mine, run_id=run_id)
    except BaseException as exc:
        _STOP.set()          # error or interruption (the lab is already removed): start nothing more
        if isinstance(exc, Exception) and not isinstance(exc, LabError):
            # Exceptions of other libraries may not survive the way back to the main process
            # (pickling); send the traceback as text instead.
            raise WorkerCrash(f"{type(exc).__name__} in {scenario} [{mode}]: {exc}\n{traceback.format_exc()}") from None
        raise


class WorkerCrash(Exception):
    """An unexpected exception in a worker, carried back as text."""
