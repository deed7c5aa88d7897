"""Steps that touch no node: start and stop the workload, let time pass, wait for a condition."""

from __future__ import annotations

from ..engine.poll import wait_until
from ..errors import ScenarioAborted
from ..spec import Param, parse_duration
from ..spec.registry import CONDITIONS, action


@action("probe", "start or stop the workload (the probe that writes acknowledged keys); options of `start` go "
                 "to the workload (writes: wait_replicas: a write counts only once WAIT says that many replicas "
                 "have it; wait_timeout)",
        params=(Param("command", "choice", choices=("start", "stop")),), open_options=True)
def probe(ctx, command, **options):
    if command == "start":
        ctx.start_workload(options)
    else:
        ctx.stop_workload()


@action("wait", "let time pass (the probe keeps writing)", params=(Param("duration", "duration"),))
def wait(ctx, duration):
    ctx.sleep(parse_duration(duration))


@action("wait_for", "poll until a node is ready (answers PING, dataset loaded) or has exited; or until a condition "
                    "of the topology holds: a node other than the old master is master (new_master), every data "
                    "node the scenario has not left down replicates the master with its link up (replicas_synced), "
                    "every cluster node that is up says cluster_state:ok and all agree on the slot map (cluster_ok)",
        params=(Param("condition", "choice", choices=CONDITIONS), Param("target", "target", default="master"),
                Param("timeout", "duration", default="30s")))
def wait_for(ctx, condition, target="master", timeout="30s"):
    limit = parse_duration(timeout)
    if condition in ("ready", "exited"):
        node = ctx.resolve(target)
        if condition == "ready":
            check = lambda: ctx.nodes.is_ready(node)  # noqa: E731
        else:
            check = lambda: ctx.runtime.state(node)[0] in ("exited", "dead")  # noqa: E731
        if not wait_until(check, limit):
            state, code = ctx.runtime.state(node)
            logs = ctx.runtime.logs(node, tail=5).strip().replace("\n", " | ")
            raise ScenarioAborted(f"{node.name} was not {condition} within {limit:g} s (container {state}, "
                                  f"exit code {code})", f"last log lines: {logs}")
        ctx.event(f"{node.name} {condition}")
        return
    check, missing, done = ctx.kind.condition(ctx, condition)
    if not wait_until(check, limit):
        raise ScenarioAborted(f"no {condition.replace('_', ' ')} within {limit:g} s", missing())
    ctx.event(done())
