"""The registry of step actions a lab file may name.

An action is a function `(ctx, ...)` registered with `@action`. Its parameters are
what a lab file may give: a scalar binds to the first one (`- kill: master`), a
mapping binds by name (`- truncate_aof: {target: master, bytes: 200}`). Lab
validation, `lab list --actions` and the runner all read this registry.
Targets are roles or node names (`redis-1`, `sentinel-2`), resolved when the step runs:
`master` is the master at that moment, `replica` one of its replicas, `old-master` the
node that was master when the first fault struck.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import redis

from .clients import admin_client, current_master, is_ready, replication_states, server_info, wait_until
from .cluster import majority_view, not_yet_formed, shards
from .errors import ScenarioAborted
from .labs import parse_duration
from .topology import REDIS_PORT

if TYPE_CHECKING:
    from .context import RunContext

FAULT, RESTART = "fault", "restart"


@dataclass(frozen=True)
class Action:
    name: str
    func: Callable
    summary: str
    mark: str | None = None                       # FAULT or RESTART: a time the metrics use
    durations: tuple[str, ...] = ()               # parameters given as durations ("2s")
    counts: tuple[str, ...] = ()                  # parameters that are whole numbers > 0
    naturals: tuple[str, ...] = ()                # parameters that are whole numbers >= 0
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def params(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.func).parameters.values())[1:]

    def usage(self) -> str:
        parts = [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default}" for p in self.params]
        return f"{self.name}: {', '.join(parts)}" if parts else f"{self.name}: (no arguments)"

    def bind(self, arg: Any) -> dict[str, Any]:
        """Bind what the lab file gives to the function's parameters; raises TypeError/ValueError."""
        params = self.params
        if arg is None:
            given = {}
        elif isinstance(arg, dict):
            given = dict(arg)
        elif params:
            given = {params[0].name: arg}
        else:
            raise TypeError("takes no argument")
        if any(not isinstance(name, str) for name in given):
            raise TypeError("argument names must be words")
        known = {p.name for p in params}
        unknown = set(given) - known
        if unknown:
            raise TypeError(f"unknown argument {', '.join(sorted(unknown))}")
        bound = inspect.signature(self.func).bind_partial(None, **given)
        bound.apply_defaults()
        missing = [p.name for p in params if p.name not in bound.arguments]
        if missing:
            raise TypeError(f"missing argument {', '.join(missing)}")
        args = {name: value for name, value in bound.arguments.items() if name in known}
        if "target" in args and not isinstance(args["target"], str):
            raise TypeError("target must be a node name or a role, e.g. master")
        for name in self.durations:
            parse_duration(args[name])
        for name in self.counts + self.naturals:
            least = 1 if name in self.counts else 0
            if not isinstance(args[name], int) or isinstance(args[name], bool) or args[name] < least:
                raise ValueError(f"{name} must be a whole number of at least {least}, not {args[name]!r}")
        for name, allowed in self.choices.items():
            if args[name] not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {args[name]!r}")
        return args

    def targets(self, args: dict[str, Any]) -> list[str]:
        return [args["target"]] if "target" in args else []


ACTIONS: dict[str, Action] = {}


def action(name: str, summary: str, **options):
    def register(func):
        ACTIONS[name] = Action(name=name, func=func, summary=summary, **options)
        return func
    return register


# ------------------------------------------------------------------ workload

@action("probe", "start or stop the probe that writes acknowledged keys (wait_replicas: a write counts only "
                 "once WAIT says that many replicas have it)",
        choices={"command": ("start", "stop")}, naturals=("wait_replicas",), durations=("wait_timeout",))
def probe(ctx: RunContext, command, wait_replicas=0, wait_timeout="100ms"):
    if command == "start":
        ctx.start_probe(wait_replicas=wait_replicas, wait_timeout_ms=max(1, round(parse_duration(wait_timeout) * 1000)))
    else:
        ctx.stop_probe()


@action("wait", "let time pass (the probe keeps writing)", durations=("duration",))
def wait(ctx: RunContext, duration):
    ctx.sleep(parse_duration(duration))


CONDITIONS = ("ready", "exited", "new_master", "replicas_synced", "cluster_ok")


@action("wait_for", "poll until a node is ready (answers PING, dataset loaded) or has exited; until a node other "
                    "than the old master is master (new_master); until every data node the scenario has not "
                    "left down replicates the master with its link up (replicas_synced); until every cluster node "
                    "that is up says cluster_state:ok and all agree on the slot map (cluster_ok)",
        durations=("timeout",), choices={"condition": CONDITIONS})
def wait_for(ctx: RunContext, condition, target="master", timeout="30s"):
    limit = parse_duration(timeout)
    if condition == "cluster_ok":
        if not wait_until(lambda: not_yet_formed(ctx.topo, ctx.cluster_up()) is None, limit):
            raise ScenarioAborted(f"the cluster was not ok within {limit:g} s: {not_yet_formed(ctx.topo, ctx.cluster_up())}")
        view, _, _ = majority_view(ctx.topo, ctx.cluster_up())
        ctx.event("cluster ok: " + "; ".join(f"{s.master} serves {_ranges(s.slots)}" for s in shards(view)))
        return
    if condition in ("new_master", "replicas_synced"):
        check, name = (_new_master_ready, "a new master") if condition == "new_master" else (_replicas_synced, "in sync")
        if not wait_until(lambda: check(ctx), limit):
            roles = ", ".join(f"{n}: {s.role}" + (f" of {s.master}" if s.master else "")
                              for n, s in replication_states(ctx.topo).items())
            raise ScenarioAborted(f"no {condition.replace('_', ' ')} within {limit:g} s", f"roles now: {roles or 'none answers'}")
        ctx.event(f"{condition.replace('_', ' ')}: {ctx.resolve('master').name} is master")
        return
    node = ctx.resolve(target)
    if condition == "ready":
        check = lambda: is_ready(node)  # noqa: E731
    else:
        check = lambda: ctx.runtime.state(node)[0] in ("exited", "dead")  # noqa: E731
    if not wait_until(check, limit):
        state, code = ctx.runtime.state(node)
        logs = ctx.runtime.logs(node, tail=5).strip().replace("\n", " | ")
        raise ScenarioAborted(f"{node.name} was not {condition} within {limit:g} s (container {state}, exit code {code})",
                              f"last log lines: {logs}")
    ctx.event(f"{node.name} {condition}")


def _new_master_ready(ctx: RunContext) -> bool:
    old = ctx.resolve("old-master").name
    if ctx.topo.kind == "cluster":
        # most nodes name another master for the old master's first slot
        node = ctx.resolve("master")
        return node is not None and node.name != old
    name = current_master(ctx.topo)
    if name is None or name == old:
        return False
    states = replication_states(ctx.topo)
    return name in states and states[name].role == "master"


def _replicas_synced(ctx: RunContext) -> bool:
    """Every data node the scenario has not left down answers, and all but the master replicate
    it with their link up (a node just started must answer first: it may still be loading)."""
    master = current_master(ctx.topo)
    states = replication_states(ctx.topo)
    if master is None or master not in states or states[master].role != "master":
        return False
    expected = [n.name for n in ctx.topo.data_nodes if n.name not in ctx.down and n.name != master]
    return all(name in states and states[name].role == "replica" and states[name].master == master
               and states[name].link_up for name in expected)


# ------------------------------------------------------------------ faults

@action("kill", "SIGKILL a node's redis-server (a crash: no shutdown, no save)", mark=FAULT)
def kill(ctx: RunContext, target):
    node = ctx.resolve(target)
    ctx.note_fault_target(node)
    ctx.runtime.kill(node)
    ctx.down.add(node.name)


@action("stop", "graceful shutdown: SIGTERM, Redis saves per its config and exits", mark=FAULT,
        durations=("timeout",))
def stop(ctx: RunContext, target, timeout="60s"):
    node = ctx.resolve(target)
    if not node.is_sentinel:
        ctx.note_fault_target(node)
    ctx.runtime.stop(node, parse_duration(timeout))
    ctx.down.add(node.name)


@action("pause", "freeze a node (docker pause): its sockets stay open but it answers nothing", mark=FAULT)
def pause(ctx: RunContext, target):
    _inject(ctx, ctx.resolve(target), ctx.runtime.pause, ctx.runtime.unpause)


@action("unpause", "let a paused node run again")
def unpause(ctx: RunContext, target):
    _undo(ctx, ctx.resolve(target), ctx.runtime.unpause)


@action("partition", "cut a node off the lab network (its peers and the Sentinels); the probe still reaches it",
        mark=FAULT)
def partition(ctx: RunContext, target):
    if not ctx.topo.partitionable:
        raise ScenarioAborted(f"lab {ctx.topo.lab} has no separate lab network to cut (a single node, or a "
                              f"topology derived without the scenario)")
    _inject(ctx, ctx.resolve(target), ctx.runtime.disconnect, ctx.runtime.connect)


@action("heal", "reconnect a partitioned node to the lab network")
def heal(ctx: RunContext, target):
    _undo(ctx, ctx.resolve(target), ctx.runtime.connect)


def _inject(ctx: RunContext, node, fault, undo) -> None:
    """Apply a fault that lasts, and register how to undo it: the runner heals whatever the
    scenario left in place, so a kept lab is whole."""
    ctx.note_fault_target(node)
    fault(node)
    ctx.heals[node.name] = lambda: undo(node)


def _undo(ctx: RunContext, node, undo) -> None:
    undo(node)
    ctx.heals.pop(node.name, None)


@action("promote", "make a replica the master by hand: REPLICAOF NO ONE on it, then REPLICAOF it on every other "
                   "node that answers (`replica`: the one with the highest replication offset)")
def promote(ctx: RunContext, target="replica"):
    states = replication_states(ctx.topo)
    if target == "replica":
        replicas = [s for s in states.values() if s.role == "replica"]
        if not replicas:
            raise ScenarioAborted("no replica answers: there is nothing to promote")
        chosen = max(replicas, key=lambda s: (s.offset, -int(s.node.rsplit("-", 1)[-1])))
        node = ctx.resolve(chosen.node)
    else:
        node = ctx.resolve(target)
    _replicaof(node, "NO", "ONE")
    others = [n for n in ctx.topo.data_nodes if n.name in states and n.name != node.name]
    for other in others:
        _replicaof(other, node.ip, str(REDIS_PORT))   # nodes know each other by address
    offsets = ", ".join(f"{s.node} offset {s.offset}" for s in states.values() if s.role == "replica")
    ctx.event(f"{node.name} promoted (REPLICAOF NO ONE; replicas had {offsets}); "
              f"{', '.join(o.name for o in others) or 'no other node'} now REPLICAOF {node.name}")


def _replicaof(node, host: str, port: str) -> None:
    client = admin_client(node)
    try:
        client.execute_command("REPLICAOF", host, port)
    except redis.RedisError as exc:
        raise ScenarioAborted(f"REPLICAOF {host} {port} on {node.name} failed: {exc}") from None
    finally:
        client.close()


@action("wipe_volume", "remove a stopped node's container and its data volume (a replaced host)")
def wipe_volume(ctx: RunContext, target):
    ctx.runtime.remove(ctx.resolve(target))


@action("start", "start a node again (recreated from the compose file if it was removed); `start: down` "
                 "starts every node the scenario left down", mark=RESTART)
def start(ctx: RunContext, target):
    nodes = [ctx.topo.node(name) for name in sorted(ctx.down)] if target == ALL_DOWN else [ctx.resolve(target)]
    for node in nodes:
        ctx.last_resolved = node
        ctx.runtime.start(node)
        ctx.down.discard(node.name)
    if target == ALL_DOWN:
        ctx.event(f"started {', '.join(n.name for n in nodes) or 'nothing (no node was down)'}")


ALL_DOWN = "down"   # `start: down` starts every node the scenario killed or stopped


# ------------------------------------------------------------------ AOF surgery

AOF_DIR = "/data/appendonlydir"


def _incr_file(ctx: RunContext, node) -> str:
    """The last incremental AOF file named by the manifest (the one Redis appends to)."""
    manifest = ctx.runtime.read_file(node, f"{AOF_DIR}/appendonly.aof.manifest").decode()
    incr = [line.split()[1] for line in manifest.splitlines() if line.split()[-1:] == ["i"]]
    if not incr:
        raise ScenarioAborted(f"{node.name}: the AOF manifest names no incremental file", manifest.strip())
    return incr[-1]


@action("truncate_aof", "cut the last `bytes` bytes off a stopped node's AOF (a torn write)", counts=("bytes",))
def truncate_aof(ctx: RunContext, target, bytes):  # noqa: A002 - the lab file's word
    node = ctx.resolve(target)
    name = _incr_file(ctx, node)
    code, out = ctx.runtime.run_on_volume(node, ["truncate", "-s", f"-{int(bytes)}", f"{AOF_DIR}/{name}"])
    if code != 0:
        raise ScenarioAborted(f"truncating {name} failed: {out}")
    ctx.event(f"cut {int(bytes)} bytes off {name}")


@action("check_aof", "run redis-check-aof (with --fix: repair) on a stopped node's AOF")
def check_aof(ctx: RunContext, target, fix=True):
    node = ctx.resolve(target)
    command = ["redis-check-aof"] + (["--fix"] if fix else []) + [f"{AOF_DIR}/appendonly.aof.manifest"]
    code, out = ctx.runtime.run_on_volume(node, command, stdin=b"y\n")  # --fix asks "Continue? [y/N]"
    ctx.event(f"redis-check-aof{' --fix' if fix else ''}: {_check_aof_verdict(out, code)}")


def _check_aof_verdict(output: str, code: int) -> str:
    """The lines of redis-check-aof's output that say what it found and did."""
    lines = [line.split("[y/N]: ")[-1].strip() for line in output.splitlines()]
    said = [line for line in lines if line.startswith(("This will shrink", "Successfully truncated"))]
    said = said or [line for line in lines if line][-1:]
    return "; ".join(said) if said else f"exit code {code}"


def server_snapshot(node) -> dict:
    """Server-reported figures read right before a fault (INFO)."""
    info = server_info(node)
    keyspace = info.get("db0", {})
    return {"dataset_keys": keyspace.get("keys", 0) if info else None,
            "dataset_bytes": info.get("used_memory_dataset"),
            "rdb_changes_since_last_save": info.get("rdb_changes_since_last_save")}


def _ranges(slots) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in slots)


# ------------------------------------------------------------------ cluster slots

@action("reshard", "move a fraction of a master's slots to the master of the next shard, under load "
                   "(redis-cli --cluster reshard inside the lab network)")
def reshard(ctx: RunContext, target="master", fraction=0.33):
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ScenarioAborted(f"reshard: fraction must be a number between 0 and 1, not {fraction!r}")
    source = ctx.resolve(target)
    view, _, _ = majority_view(ctx.topo, ctx.cluster_up())
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


@action("add_node", "add an empty node to the cluster as a master (redis-cli --cluster add-node)")
def add_node(ctx: RunContext, target):
    node = ctx.resolve(target)
    if node in ctx.in_cluster:
        raise ScenarioAborted(f"add_node: {node.name} is already in the cluster")
    known = ctx.cluster_up()[0]
    ctx.runtime.exec(known, ["redis-cli", "--cluster", "add-node", f"{node.ip}:{REDIS_PORT}", f"{known.ip}:{REDIS_PORT}"])
    ctx.in_cluster.append(node)
    # every node must know the new one, and the new one the slot map, before slots can move to it:
    # a formed cluster is one where every node, the new one included, agrees on who is who
    if not wait_until(lambda: not_yet_formed(ctx.topo, ctx.cluster_up()) is None, 30):
        raise ScenarioAborted(f"{node.name} had not joined within 30 s: {not_yet_formed(ctx.topo, ctx.cluster_up())}")
    ctx.event(f"{node.name} joined the cluster as a master with no slots")


@action("rebalance", "spread the slots evenly over the masters, empty ones included (redis-cli --cluster rebalance "
                     "--cluster-use-empty-masters)")
def rebalance(ctx: RunContext):
    view, _, _ = majority_view(ctx.topo, ctx.cluster_up())
    first = ctx.cluster_up()[0]
    _move_slots(ctx, view, ["rebalance", f"{first.ip}:{REDIS_PORT}", "--cluster-use-empty-masters"], "rebalance")


def _move_slots(ctx: RunContext, before_view, arguments: list[str], what: str) -> None:
    """Run a redis-cli --cluster command that moves slots; record slots_moved, keys_moved and
    move_s from the slot maps before and after."""
    before = _owners(before_view)
    started = time.monotonic()
    ctx.runtime.exec(ctx.cluster_up()[0], ["redis-cli", "--cluster", *arguments, "--cluster-yes"])
    ctx.server["move_s"] = round(time.monotonic() - started, 3)
    if not wait_until(lambda: not_yet_formed(ctx.topo, ctx.cluster_up()) is None, 30):
        raise ScenarioAborted(f"after {what} the nodes did not agree within 30 s: "
                              f"{not_yet_formed(ctx.topo, ctx.cluster_up())}")
    after_view, _, _ = majority_view(ctx.topo, ctx.cluster_up())
    after = _owners(after_view)
    moved = [slot for slot, owner in after.items() if before.get(slot) != owner]
    ctx.server["slots_moved"] = len(moved)
    ctx.server["keys_moved"] = _keys_in_slots(ctx, moved, after)
    ctx.event(f"{what}: {len(moved)} slots moved in {ctx.server['move_s']:g} s; "
              f"{ctx.server['keys_moved']} keys in them now")


def _owners(view) -> dict[int, str]:
    return {slot: n.name for n in view if n.role == "master" for a, b in n.slots for slot in range(a, b + 1)}


def _keys_in_slots(ctx: RunContext, slots: list[int], owners: dict[int, str]) -> int:
    """CLUSTER COUNTKEYSINSLOT on each slot's master, pipelined per master."""
    total = 0
    for master in set(owners[slot] for slot in slots):
        client = admin_client(ctx.topo.node(master), timeout_s=10)
        try:
            pipe = client.pipeline(transaction=False)
            for slot in slots:
                if owners[slot] == master:
                    pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            total += sum(int(n) for n in pipe.execute())
        finally:
            client.close()
    return total
