"""Run many scenarios: `lab verify` (every scenario and mode of some labs) and
`lab compare persistence` (the persistence scenarios across every mode).

With jobs > 1 the runs go to worker processes, each on its own range of host ports
(and so its own lab subnet), so several labs run at once. Each worker runs a scenario
exactly as `lab run` does, cleanup and Ctrl-C handling included.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable

from .errors import ScenarioAborted
from .labs import Lab, load_lab
from .lifecycle import RunSettings, sigterm_as_interrupt
from .runtime import Engine
from .scenario import Result, run_scenario

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


def run_guarded(lab: Lab, scenario: str, mode: str, settings: RunSettings, engine: Engine | None = None) -> Result:
    started = time.monotonic()
    try:
        return run_scenario(lab, scenario, mode, settings, engine=engine)
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
    context = multiprocessing.get_context("spawn")
    slots, stop, pids = context.Queue(), context.Event(), context.Queue()
    for slot in range(jobs):
        slots.put(slot)
    results: dict[int, Result] = {}
    with sigterm_as_interrupt():
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                                   initargs=(slots, stop, pids))
        try:
            pending = {pool.submit(_run_in_worker, str(runs[i][0].path), runs[i][1], runs[i][2], settings): i
                       for i in order}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    results[index] = future.result()
                    on_result(results[index])
        except BaseException:
            stop.set()      # runs already handed to a worker are skipped, not started
            _interrupt_workers(pids)
            raise
        finally:
            # On Ctrl-C every worker gets the signal too and removes its own lab; wait for that.
            pool.shutdown(wait=True, cancel_futures=True)
    return [results[i] for i in range(len(runs))]


_SLOT = 0
_STOP = None


def _start_worker(slots, stop, pids) -> None:
    global _SLOT, _STOP
    _SLOT, _STOP = slots.get(), stop
    pids.put(os.getpid())


def _interrupt_workers(pids) -> None:
    """Pass an interruption on to the workers (Ctrl-C in a terminal reaches them already; a
    signal sent to this process alone does not): each removes its lab and stops. A second
    signal is harmless, since cleanup ignores signals."""
    while True:
        try:
            pid = pids.get_nowait()
        except queue.Empty:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def _run_in_worker(lab_path: str, scenario: str, mode: str, settings: RunSettings) -> Result | None:
    if _STOP.is_set():
        return None
    mine = dataclasses.replace(settings, port_base=settings.port_base + _SLOT * PORT_STRIDE)
    try:
        return run_guarded(load_lab(lab_path), scenario, mode, mine)
    except BaseException:
        _STOP.set()          # interrupted (the lab is already removed): start nothing more
        raise
