"""What several faults share: a fault that lasts is an inject/heal pair, and heal always runs.

Targets are roles or node names (`redis-1`, `sentinel-2`), resolved when the step runs
(`ctx.resolve`): `master` is the master at that moment, `replica` one of its replicas,
`old-master` the node that was master when the first fault struck.
"""

from __future__ import annotations

from ..spec import Param

TARGET = Param("target", "target")


def inject(ctx, node, fault, undo) -> None:
    """Apply a fault that lasts, and register how to undo it: the runner heals whatever the
    scenario left in place, so a kept lab is whole."""
    ctx.note_fault_target(node)
    fault(node)
    ctx.heals[node.name] = lambda: undo(node)


def undo(ctx, node, action) -> None:
    action(node)
    ctx.heals.pop(node.name, None)
