"""Faults on a node's data files: a torn AOF, and repairing it."""

from __future__ import annotations

from ..errors import ScenarioAborted
from ..spec import AOF_MODES, Param
from ..spec.registry import action
from .base import TARGET

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
