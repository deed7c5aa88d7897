"""Faults on a node's data files: a torn AOF, and repairing it."""

from __future__ import annotations

from ..errors import ScenarioAborted
from ..spec import AOF_MODES, Param
from ..spec.registry import FAULT, action
from .base import TARGET, took_effect_at_death

EVERY_DATA_NODE = "all"    # power_loss: all (a rack or a zone loses power)

AOF_DIR = "/data/appendonlydir"


def _incr_file(ctx, node) -> str:
    """The last incremental AOF file named by the manifest (the one Redis appends to)."""
    manifest = ctx.runtime.read_file(node, f"{AOF_DIR}/appendonly.aof.manifest").decode()
    incr = [line.split()[1] for line in manifest.splitlines() if line.split()[-1:] == ["i"]]
    if not incr:
        raise ScenarioAborted(f"{node.name}: the AOF manifest names no incremental file", manifest.strip())
    return incr[-1]


@action("truncate_aof", "cut the last `bytes` bytes off a stopped node's AOF (a torn write)",
        params=(TARGET, Param("bytes", "count")), modes=AOF_MODES)
def truncate_aof(ctx, target, bytes):  # noqa: A002 - the lab file's word
    node = ctx.resolve(target)
    name = _incr_file(ctx, node)
    code, out = ctx.runtime.run_on_volume(node, ["truncate", "-s", f"-{int(bytes)}", f"{AOF_DIR}/{name}"])
    if code != 0:
        raise ScenarioAborted(f"truncating {name} failed: {out}")
    ctx.event(f"cut {int(bytes)} bytes off {name}")


@action("check_aof", "run redis-check-aof (with fix: true, --fix: repair) on a stopped node's AOF",
        params=(TARGET, Param("fix", "bool", default=True)), modes=AOF_MODES)
def check_aof(ctx, target, fix=True):
    node = ctx.resolve(target)
    command = ["redis-check-aof"] + (["--fix"] if fix else []) + [f"{AOF_DIR}/appendonly.aof.manifest"]
    code, out = ctx.runtime.run_on_volume(node, command, stdin=b"y\n")  # --fix asks "Continue? [y/N]"
    ctx.event(f"redis-check-aof{' --fix' if fix else ''}: {check_aof_verdict(out, code)}")


def check_aof_verdict(output: str, code: int) -> str:
    """The lines of redis-check-aof's output that say what it found and did."""
    lines = [line.split("[y/N]: ")[-1].strip() for line in output.splitlines()]
    said = [line for line in lines if line.startswith(("This will shrink", "Successfully truncated"))]
    said = said or [line for line in lines if line][-1:]
    return "; ".join(said) if said else f"exit code {code}"


@action("power_loss", "the power goes out: SIGKILL the node (all: every data node at once), then its data directory "
                      "loses everything not yet made durable by fsync, fdatasync or the modelled kernel writeback "
                      "(dirty data older than dirty_expire, checked every writeback_interval; Linux: 30 s and 5 s)",
        params=(Param("target", "target", choices=(EVERY_DATA_NODE,)), Param("dirty_expire", "duration", default="30s"),
                Param("writeback_interval", "duration", default="5s")), mark=FAULT)
def power_loss(ctx, target, dirty_expire="30s", writeback_interval="5s"):
    nodes = list(ctx.topo.data_nodes) if target == EVERY_DATA_NODE else [ctx.resolve(target)]
    ctx.note_fault_target(nodes[0])
    if ctx.fsyncs_at_start is not None:
        started, calls = ctx.fsyncs_at_start
        ctx.facts.fsyncs_per_s = round((ctx.fsync_calls() - calls) / max(1e-6, ctx.clock() - started), 1)
    for node in nodes:
        ctx.mounts[node.name].freeze_writeback()     # the power is out: the kernel writes nothing back now
    ctx.runtime.kill(*nodes)
    discarded = 0
    for node in nodes:
        ctx.runtime.wait(node)                       # nothing of the node touches its files any more
        discarded += ctx.mounts[node.name].power_loss()["discarded"]["bytes_written"]
        ctx.down.add(node.name)
    took_effect_at_death(ctx, nodes)    # the power went out when the first node died
    ctx.facts.discarded_bytes = (ctx.facts.discarded_bytes or 0) + discarded
    ctx.event(f"power lost on {', '.join(n.name for n in nodes)}: {discarded} bytes written but not yet durable "
              f"were discarded")
