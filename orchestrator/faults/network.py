"""Faults on the lab network: cut a node off its peers (a partition) and heal it."""

from __future__ import annotations

from ..errors import ScenarioAborted
from ..spec.registry import FAULT, action
from .base import TARGET, inject, undo

NETWORK = frozenset({"network"})


@action("partition", "cut a node off the lab network (its peers and the Sentinels); the probe still reaches it",
        params=(TARGET,), mark=FAULT, requires=NETWORK)
def partition(ctx, target):
    if not ctx.topo.partitionable:
        raise ScenarioAborted(f"lab {ctx.topo.lab} has no separate lab network to cut (a topology derived without "
                              f"the scenario)")
    inject(ctx, ctx.resolve(target), ctx.runtime.disconnect, ctx.runtime.connect)


@action("heal", "reconnect a partitioned node to the lab network", params=(TARGET,), requires=NETWORK)
def heal(ctx, target):
    undo(ctx, ctx.resolve(target), ctx.runtime.connect)
