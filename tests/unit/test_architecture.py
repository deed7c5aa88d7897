"""The package's shape, checked: imports flow one way between floors and never in a circle, no
code outside kinds/ asks which kind a lab is, `lab --help`/`list`/`validate` load neither
python-on-whales nor redis-py, and a new kind is one class registered from anywhere."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import orchestrator
from orchestrator.engine.render import render_files
from orchestrator.kinds import derive_topology
from orchestrator.kinds.base import Kind
from orchestrator.spec import KINDS, Param, parse_lab
from orchestrator.spec.registry import CONDITIONS, register_kind
from orchestrator.validate import validate_lab

PACKAGE = Path(orchestrator.__file__).parent

# Imports may only go to a floor at or below the importing module's (and never in a circle):
# cli -> suite -> scenario (and the thin top: report, validate, image, doctor) -> kinds/faults/
# workloads -> context -> measure/events/engine -> errors -> spec.
FLOORS = [
    ("orchestrator.cli", 7),
    ("orchestrator.suite", 6), ("orchestrator.doctor", 6), ("orchestrator.compare_clients", 6),
    ("orchestrator.compare_messaging", 6),
    ("orchestrator.scenario", 5), ("orchestrator.validate", 5), ("orchestrator.report", 5),
    ("orchestrator.htmlreport", 5), ("orchestrator.image", 5),
    ("orchestrator.kinds", 4), ("orchestrator.faults", 4), ("orchestrator.workloads", 4),
    ("orchestrator.context", 3),
    ("orchestrator.measure", 2), ("orchestrator.events", 2), ("orchestrator.engine", 2),
    ("orchestrator.errors", 1),
    ("orchestrator.spec", 0),
    ("orchestrator", -1),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports (at any depth of the file, except under
    `if TYPE_CHECKING:`, which never runs)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(base: str, level: int) -> str:
        if level == 0:
            return base
        parts = name.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[:len(anchor) - (level - 1)]
        return ".".join(anchor + ([base] if base else []))

    def visit(node):
        if isinstance(node, ast.If) and _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.module or "", node.level)
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def floor_of(name: str) -> int:
    for prefix, floor in FLOORS:
        if name == prefix or name.startswith(prefix + "."):
            return floor
    raise AssertionError(f"{name} is on no floor: add it to FLOORS")


def test_every_module_is_on_a_floor(graph):
    for name in graph:
        floor_of(name)


def test_imports_flow_down_the_floors(graph):
    upward = [f"{source} -> {target}" for source, targets in graph.items() for target in targets
              if floor_of(target) > floor_of(source)]
    assert not upward, "imports that go up a floor:\n" + "\n".join(sorted(upward))


def test_spec_imports_nothing_else_of_the_package(graph):
    outside = [f"{s} -> {t}" for s, targets in graph.items() if s.startswith("orchestrator.spec")
               for t in targets if not t.startswith("orchestrator.spec")]
    assert not outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other in a circle (Tarjan's strongly connected components)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle_inside_the_package(graph):
    assert not cycles(graph), f"modules importing each other in a circle: {cycles(graph)}"


def test_the_cycle_check_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


KIND_TEST = re.compile(r"kind (==|!=|in) ")


def test_only_kinds_ask_which_kind_a_lab_is():
    asking = [f"{p.relative_to(PACKAGE.parent)}:{i}" for p in PACKAGE.rglob("*.py")
              if "kinds" not in p.relative_to(PACKAGE).parts
              for i, line in enumerate(p.read_text().splitlines(), start=1) if KIND_TEST.search(line)]
    assert not asking


HEAVY = ("redis", "python_on_whales", "pydantic", "jinja2.sandbox")


@pytest.mark.parametrize("args", [["--help"], ["list", "--actions", "--metrics"], ["validate"]])
def test_help_list_and_validate_load_neither_docker_nor_redis_clients(args):
    script = ("import sys; from click.testing import CliRunner; from orchestrator.cli import cli; "
              f"r = CliRunner().invoke(cli, {args!r}); assert r.exit_code == 0, r.output; "
              "print(sorted({m.split('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    assert not loaded & {"redis", "python_on_whales", "pydantic"}, loaded & {"redis", "python_on_whales", "pydantic"}


# ------------------------------------------------------------------ a new kind is one class

class Pair(Kind):
    """A test kind: two independent nodes, nothing shared. It declares a field and a condition
    of its own, and the engine, spec and templates take it without a change anywhere else."""

    name = "pair-for-test"
    summary = "two independent nodes"
    fields = (Param("spare", "bool", default=False),)
    conditions = ("both_ready",)

    def data_names(self, params, uses):
        return ["redis-1", "redis-2"] + (["redis-3"] if params["spare"] else [])


@pytest.fixture
def pair_kind():
    kind = register_kind(Pair())
    yield kind
    del KINDS[kind.name]
    CONDITIONS.remove("both_ready")


def test_a_fake_kind_validates_and_renders(pair_kind, write_lab):
    def as_pair(lab):
        lab["topology"] = {"kind": "pair-for-test", "persistence": "rdb", "spare": True}
        lab["scenarios"]["x"].pop("modes", None)
        lab["scenarios"]["x"]["steps"][3] = {"wait_for": "both_ready"}
        lab["scenarios"]["x"]["steps"].insert(3, {"start": "redis-3"})
    lab = parse_lab(write_lab(as_pair))
    assert lab.topology.spare is True
    assert validate_lab(lab) == 1
    topo = derive_topology(lab, "rdb", run_id="t", image="redis:7.2", port_base=7100)
    compose = yaml.safe_load(render_files(topo)["compose.yaml"])
    assert sorted(compose["services"]) == ["redis-1", "redis-2", "redis-3"]
    assert [p for s in compose["services"].values() for p in s["ports"]] == [
        "127.0.0.1:7100:6379", "127.0.0.1:7101:6379", "127.0.0.1:7102:6379"]


def test_what_a_fake_kind_does_not_declare_is_refused(pair_kind, write_lab):
    from orchestrator.errors import LabFileError

    def with_partition(lab):
        lab["topology"] = {"kind": "pair-for-test", "persistence": "rdb"}
        lab["scenarios"]["x"].pop("modes", None)
        lab["scenarios"]["x"]["steps"][2] = {"partition": "redis-2"}
    with pytest.raises(LabFileError, match=r"steps\[2\]\.partition: a pair-for-test topology has no network"):
        parse_lab(write_lab(with_partition))
