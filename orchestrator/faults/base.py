"""What several faults share: a fault that lasts is an inject/heal pair, and heal always runs.

Targets are roles or node names (`redis-1`, `sentinel-2`), resolved when the step runs
(`ctx.resolve`): `master` is the master at that moment, `replica` one of its replicas,
`old-master` the node that was master when the first fault struck.
"""

from __future__ import annotations

from ..engine.poll import first_value
from ..spec import Param

TARGET = Param("target", "target")
EXIT_WAIT_S = 5.0     # a SIGKILLed container is reported exited within milliseconds


def took_effect_at_death(ctx, nodes) -> None:
    """A SIGKILL takes effect when the first of `nodes` dies: its container's exit as Docker
    recorded it (State.FinishedAt), not when `docker kill` returned, which on a busy host is up
    to a second later. Left to the step's return when Docker does not say within EXIT_WAIT_S."""
    exits = [first_value(lambda node=node: ctx.runtime.exited_at(node), EXIT_WAIT_S) for node in nodes]
    exits = [t for t in exits if t is not None]
    if exits:
        ctx.took_effect = ctx.from_wall_clock(min(exits))


def inject(ctx, node, fault, undo) -> None:
    """Apply a fault that lasts, and register how to undo it: the runner heals whatever the
    scenario left in place, so a kept lab is whole."""
    ctx.note_fault_target(node)
    fault(node)
    ctx.heals[node.name] = lambda: undo(node)


def undo(ctx, node, action) -> None:
    action(node)
    ctx.heals.pop(node.name, None)
