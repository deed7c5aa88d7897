"""Faults that change who is master by hand: what an operator (or a script) does without Sentinel."""

from __future__ import annotations

from ..engine.topology import REDIS_PORT
from ..errors import ScenarioAborted
from ..spec.registry import action
from ..spec import Param


@action("promote", "make a replica the master by hand: REPLICAOF NO ONE on it, then REPLICAOF it on every other "
                   "node that answers (`replica`: the one with the highest replication offset)",
        params=(Param("target", "target", default="replica"),), requires=frozenset({"replicaof"}))
def promote(ctx, target="replica"):
    states = ctx.nodes.replication_states(ctx.topo)
    if target == "replica":
        replicas = [s for s in states.values() if s.role == "replica"]
        if not replicas:
            raise ScenarioAborted("no replica answers: there is nothing to promote")
        chosen = max(replicas, key=lambda s: (s.offset, -int(s.node.rsplit("-", 1)[-1])))
        node = ctx.resolve(chosen.node)
    else:
        node = ctx.resolve(target)
    _replicaof(ctx, node, "NO", "ONE")
    others = [n for n in ctx.topo.data_nodes if n.name in states and n.name != node.name]
    for other in others:
        _replicaof(ctx, other, node.ip, str(REDIS_PORT))   # nodes know each other by address
    offsets = ", ".join(f"{s.node} offset {s.offset}" for s in states.values() if s.role == "replica")
    ctx.event(f"{node.name} promoted (REPLICAOF NO ONE; replicas had {offsets}); "
              f"{', '.join(o.name for o in others) or 'no other node'} now REPLICAOF {node.name}")


def _replicaof(ctx, node, host: str, port: str) -> None:
    try:
        ctx.nodes.command(node, "REPLICAOF", host, port)
    except ctx.nodes.NodeCommandError as exc:
        raise ScenarioAborted(f"REPLICAOF failed: {exc}") from None
