"""Faults on a node's process: kill, stop, start, freeze; and losing its container and volume."""

from __future__ import annotations

from ..engine.topology import ALL_DOWN
from ..spec import Param, whole_seconds
from ..spec.registry import FAULT, RESTART, action
from .base import TARGET, inject, took_effect_at_death, undo


@action("kill", "SIGKILL a node's redis-server (a crash: no shutdown, no save)", params=(TARGET,), mark=FAULT)
def kill(ctx, target):
    node = ctx.resolve(target)
    ctx.note_fault_target(node)
    ctx.runtime.kill(node)
    ctx.down.add(node.name)
    took_effect_at_death(ctx, [node])


@action("stop", "graceful shutdown: SIGTERM, Redis saves per its config and exits (SIGKILL after `timeout`, "
                "whole seconds)", params=(TARGET, Param("timeout", "seconds", default="60s")), mark=FAULT)
def stop(ctx, target, timeout="60s"):
    node = ctx.resolve(target)
    if not node.is_sentinel:
        ctx.note_fault_target(node)
    ctx.runtime.stop(node, whole_seconds(timeout))
    ctx.down.add(node.name)


@action("pause", "freeze a node (docker pause): its sockets stay open but it answers nothing", params=(TARGET,),
        mark=FAULT)
def pause(ctx, target):
    inject(ctx, ctx.resolve(target), ctx.runtime.pause, ctx.runtime.unpause)


@action("unpause", "let a paused node run again", params=(TARGET,))
def unpause(ctx, target):
    undo(ctx, ctx.resolve(target), ctx.runtime.unpause)


@action("wipe_volume", "remove a stopped node's container and its data volume (a replaced host)", params=(TARGET,))
def wipe_volume(ctx, target):
    ctx.runtime.remove(ctx.resolve(target))


@action("start", "start a node again (recreated from the compose file if it was removed); `start: down` "
                 "starts every node the scenario left down",
        params=(Param("target", "target", choices=(ALL_DOWN,)),), mark=RESTART)
def start(ctx, target):
    nodes = [ctx.topo.node(name) for name in sorted(ctx.down)] if target == ALL_DOWN else [ctx.resolve(target)]
    for node in nodes:
        ctx.last_resolved = node
        ctx.runtime.start(node)
        ctx.down.discard(node.name)
    if target == ALL_DOWN:
        ctx.event(f"started {', '.join(n.name for n in nodes) or 'nothing (no node was down)'}")
