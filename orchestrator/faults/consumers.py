"""Faults on the consumers of the `messages` workload: OS processes the tool started, not
nodes. A consumer is named c1, c2, ... (the workload's `consumers` option); the workload
checks the names when the lab file is loaded. A pause lasts until `resume_consumer`, and the
runner resumes whatever the scenario left paused (an inject/heal pair)."""

from __future__ import annotations

from ..errors import ScenarioAborted
from ..spec import Param
from ..spec.registry import FAULT, action

CONSUMER = Param("consumer", "word")
MESSAGES = ("messages",)


def _workload(ctx):
    workload = ctx.workload
    if workload is None or not workload.running:
        raise ScenarioAborted("the messages workload is not running: a consumer step goes after `probe: start` and "
                              "before `probe: stop`")
    return workload


def heal_name(consumer: str) -> str:
    """The key of a paused consumer among the faults to heal (`healed consumer c1` on the timeline)."""
    return f"consumer {consumer}"


@action("kill_consumer", "SIGKILL a consumer process of the messages workload (a crash: what it read and had not "
                         "acknowledged stays pending in a stream; a subscriber's buffered messages are gone); "
                         "mid_batch: true waits until it is working on a batch it has recorded and not yet "
                         "acknowledged (the workload's `work`), so it dies between receipt and XACK",
        params=(CONSUMER, Param("mid_batch", "bool", default=False)), mark=FAULT, workloads=MESSAGES)
def kill_consumer(ctx, consumer, mid_batch=False):
    _workload(ctx).kill_consumer(consumer, mid_batch)


@action("start_consumer", "start a killed consumer again: a new process under the same name (a stream consumer "
                          "claims what is pending with XAUTOCLAIM first)",
        params=(CONSUMER,), workloads=MESSAGES)
def start_consumer(ctx, consumer):
    _workload(ctx).start_consumer(consumer)


@action("pause_consumer", "SIGSTOP a consumer process (a stalled consumer: it reads nothing until resume_consumer)",
        params=(CONSUMER,), mark=FAULT, workloads=MESSAGES)
def pause_consumer(ctx, consumer):
    workload = _workload(ctx)
    workload.pause_consumer(consumer)
    ctx.heals[heal_name(consumer)] = lambda: workload.resume_consumer(consumer)


@action("resume_consumer", "SIGCONT a paused consumer process", params=(CONSUMER,), workloads=MESSAGES)
def resume_consumer(ctx, consumer):
    _workload(ctx).resume_consumer(consumer)
    ctx.heals.pop(heal_name(consumer), None)
