"""Faults on a cluster's slots: move them (reshard, rebalance) and add a node, under load."""

from __future__ import annotations

import time

from ..engine.topology import REDIS_PORT
from ..errors import ScenarioAborted
from ..kinds.cluster import majority_view, shards
from ..spec import Param
from ..spec.registry import action
from .base import TARGET

SLOTS = frozenset({"slots"})
AGREEMENT_TIMEOUT_S = 30.0


@action("reshard", "move a fraction of a master's slots to the master of the next shard, under load "
                   "(redis-cli --cluster reshard inside the lab network)",
        params=(Param("target", "target", default="master"), Param("fraction", "fraction", default=0.33)),
        requires=SLOTS)
def reshard(ctx, target="master", fraction=0.33):
    source = ctx.resolve(target)
    view = ctx.kind.view(ctx)
    layout = shards(view)
    index = next((i for i, shard in enumerate(layout) if shard.master == source.name), None)
    if index is None:
        raise ScenarioAborted(f"reshard: {source.name} is not a master serving slots")
    destination = layout[(index + 1) % len(layout)].master
    ids = {n.name: n.id for n in view}
    count = max(1, round(fraction * layout[index].slot_count))
    _move_slots(ctx, view, ["reshard", f"{source.ip}:{REDIS_PORT}", "--cluster-from", ids[source.name],
                            "--cluster-to", ids[destination], "--cluster-slots", str(count)],
                f"{count} slots from {source.name} to {destination}")


@action("add_node", "add an empty node to the cluster as a master (redis-cli --cluster add-node)", params=(TARGET,),
        requires=SLOTS)
def add_node(ctx, target):
    node = ctx.resolve(target)
    members = ctx.kind_facts.members
    if node in members:
        raise ScenarioAborted(f"add_node: {node.name} is already in the cluster")
    known = ctx.kind.up(ctx)[0]
    ctx.runtime.exec(known, ["redis-cli", "--cluster", "add-node", f"{node.ip}:{REDIS_PORT}", f"{known.ip}:{REDIS_PORT}"])
    members.append(node)
    # every node must know the new one, and the new one the slot map, before slots can move to it:
    # a formed cluster is one where every node, the new one included, agrees on who is who
    ctx.kind.wait_formed(ctx, AGREEMENT_TIMEOUT_S, f"{node.name} had not joined")
    ctx.event(f"{node.name} joined the cluster as a master with no slots")


@action("rebalance", "spread the slots evenly over the masters, empty ones included (redis-cli --cluster rebalance "
                     "--cluster-use-empty-masters)", requires=SLOTS)
def rebalance(ctx):
    first = ctx.kind.up(ctx)[0]
    _move_slots(ctx, ctx.kind.view(ctx), ["rebalance", f"{first.ip}:{REDIS_PORT}", "--cluster-use-empty-masters"],
                "rebalance")


def _move_slots(ctx, before_view, arguments: list[str], what: str) -> None:
    """Run a redis-cli --cluster command that moves slots; record slots_moved, keys_moved and
    move_s from the slot maps before and after."""
    facts = ctx.kind_facts
    before = _owners(before_view)
    started = time.monotonic()
    ctx.runtime.exec(ctx.kind.up(ctx)[0], ["redis-cli", "--cluster", *arguments, "--cluster-yes"])
    facts.move_s = round(time.monotonic() - started, 3)
    ctx.kind.wait_formed(ctx, AGREEMENT_TIMEOUT_S, f"after {what} the nodes did not agree")
    after_view, _, _ = majority_view(ctx.nodes, ctx.topo, ctx.kind.up(ctx))
    after = _owners(after_view)
    moved = [slot for slot, owner in after.items() if before.get(slot) != owner]
    facts.slots_moved = len(moved)
    facts.keys_moved = _keys_in_slots(ctx, moved, after)
    ctx.event(f"{what}: {len(moved)} slots moved in {facts.move_s:g} s; {facts.keys_moved} keys in them now")


def _owners(view) -> dict[int, str]:
    return {slot: n.name for n in view if n.role == "master" for a, b in n.slots for slot in range(a, b + 1)}


def _keys_in_slots(ctx, slots: list[int], owners: dict[int, str]) -> int:
    """CLUSTER COUNTKEYSINSLOT on each slot's master, pipelined per master."""
    total = 0
    for master in sorted(set(owners[slot] for slot in slots)):
        replies = ctx.nodes.pipelined(ctx.topo.node(master), [("CLUSTER", "COUNTKEYSINSLOT", slot)
                                                              for slot in slots if owners[slot] == master])
        total += sum(int(n) for n in replies)
    return total


