"""Load lab files (YAML) into frozen dataclasses and validate them against the registries.

A lab file is data: a topology, scenarios made of steps that name registered actions, and
expectations that name registered metrics. Everything a typo could break is checked here,
before a container starts (`lab validate`): the YAML itself (UTF-8, no duplicate keys, sane
nesting), the schema, each action's arguments and whether it applies to the lab's kind and
the scenario's modes, targets, the workload's options, redis.conf settings that would fight
the mode or what the tool sets itself, and whether each expected metric can be measured.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import LabFileError, UsageError
from .model import DEFAULT_WORKLOAD, PERSISTENCE_MODES, Bound, Lab, Scenario, Step, TopologySpec, WorkloadSpec
from .paths import LABS_DIR
from .registry import ACTIONS, CONDITIONS, GENERIC_CONDITIONS, KINDS, METRICS, WORKLOADS, Applicability, load_plugins

MAX_FILE_BYTES = 1 << 20
DEFAULT_SAVE = "3600 1 300 100 60 10000"
# redis.conf settings a lab file may not set: the persistence mode sets these ...
MODE_SETTINGS = {
    "save": "RDB save points come from topology.save and the persistence mode",
    "appendonly": "set by the persistence mode: choose a mode (--mode, topology.modes) instead",
    "appendfsync": "set by the persistence mode: choose a mode (aof-no, aof-everysec, aof-always) instead",
}
# ... and the tool needs these as it sets them, whatever the kind
TOOL_SETTINGS = {
    "port": "set by the tool: every node listens on 6379 inside its container (host ports come from --port-base)",
    "bind": "set by the tool: the node must accept connections from Docker's port proxy",
    "dir": "set by the tool: the data directory is the node's volume",
    "daemonize": "set by the tool: the server must stay in the foreground of its container",
    "logfile": "set by the tool: the log must go to the container's output, where the tool reads it",
    "include": "set by the tool: a lab file gives settings one by one",
    "supervised": "set by the tool",
    "pidfile": "set by the tool",
    "unixsocket": "set by the tool: clients connect over TCP",
}
CAPABILITY_WORDS = {
    "network": "network between nodes to cut",
    "replicaof": "replicas that follow a master by REPLICAOF",
    "failover": "automatic failover",
    "slots": "cluster slots",
}


# ---------------------------------------------------------------- finding labs

def lab_names() -> list[str]:
    return sorted(p.stem for p in LABS_DIR.glob("*.yaml"))


def lab_path(name_or_path: str) -> Path:
    """A lab name from labs/ or the path of a lab file of the user's own."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise UsageError(f"no lab file at {name_or_path}", "give the path of a .yaml lab file or a name from `lab list`")
        return candidate
    path = LABS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UsageError(f"unknown lab {name_or_path!r}", f"choose one of: {', '.join(lab_names())} (or a path to a lab file)")
    return path


def load_lab(name_or_path: str) -> Lab:
    return parse_lab(lab_path(name_or_path))


def load_all_labs() -> list[Lab]:
    return [load_lab(name) for name in lab_names()]


# ---------------------------------------------------------------- strict YAML

class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's safe loader (libyaml's parser when PyYAML has it: about 5 times faster), refusing a
    mapping that gives one key twice (plain YAML keeps the last value silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:          # an unhashable key: the constructor below says so
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"key {key!r} is given twice (first on line {seen[key].start_mark.line + 1})", key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path) -> Any:
    """The YAML document in `path`; LabFileError for a file that is unreadable, too large, not
    UTF-8, not YAML, has duplicate keys or is nested beyond reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabFileError(path, "", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LabFileError(path, "", f"is {len(data)} bytes; a lab file is at most {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LabFileError(path, f"line {line}", f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                                                 f"save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise LabFileError(path, "", "is nested too deeply to be a lab file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise LabFileError(path, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def parse_lab(path: Path) -> Lab:
    load_plugins()
    return _Parser(Path(path)).lab(read_yaml(Path(path)))


# ---------------------------------------------------------------- the schema

def _key(parent: str, name) -> str:
    return f"{parent}.{name}" if parent else str(name)


class _Parser:
    """Turns the YAML tree into dataclasses; every error names the key path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, problem: str):
        raise LabFileError(self.path, key, problem)

    def mapping(self, value, key: str, allowed: set[str] | None = None, required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for name in required:
            if name not in value:
                self.fail(_key(key, name), "is required")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    self.fail(_key(key, name), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def text(self, value, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "must be a non-empty string")
        return " ".join(value.split()) if "\n" in value.strip() else value.strip()

    def modes(self, value, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(key, "must be a non-empty list of modes")
        for mode in value:
            if mode not in PERSISTENCE_MODES:
                self.fail(key, f"unknown mode {mode!r} (known: {', '.join(PERSISTENCE_MODES)})")
        if len(set(value)) != len(value):
            self.fail(key, "names a mode twice")
        return tuple(value)

    def settings(self, value, key: str) -> dict[str, str]:
        """A mapping of one-line redis.conf directives (strings or numbers, not booleans)."""
        value = self.mapping(value if value is not None else {}, key)
        for name, setting in value.items():
            if not isinstance(setting, (str, int, float)) or isinstance(setting, bool):
                self.fail(_key(key, name), "redis.conf values must be strings or numbers (write \"yes\"/\"no\" in quotes)")
            if isinstance(setting, float) and not math.isfinite(setting):
                self.fail(_key(key, name), "must be a finite number")
            if (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]+", name)
                    or "\n" in str(setting) or "\r" in str(setting)):
                self.fail(_key(key, name), "a redis.conf setting is one directive name and a one-line value")
        return {str(k): str(v) for k, v in value.items()}

    def config(self, value, key: str, kind) -> dict[str, str]:
        """redis.conf settings for the data nodes; refuses what the mode or the tool sets."""
        settings = self.settings(value, key)
        owned = {**TOOL_SETTINGS, **MODE_SETTINGS, **kind.owned_settings()}
        for name in settings:
            if name.lower() in owned:
                self.fail(_key(key, name), owned[name.lower()])
        return settings

    # ------------------------------------------------------------ lab and topology

    def lab(self, raw) -> Lab:
        raw = self.mapping(raw, "", {"name", "summary", "topology", "scenarios"}, ("name", "summary", "topology", "scenarios"))
        name = self.text(raw["name"], "name")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", name):
            self.fail("name", "use lower-case letters, digits and dashes, at most 40 (it names Docker resources)")
        topology = self.topology(raw["topology"])
        scenarios_raw = self.mapping(raw["scenarios"], "scenarios")
        if not scenarios_raw:
            self.fail("scenarios", "a lab needs at least one scenario")
        scenarios = {}
        for scenario_name, scenario_raw in scenarios_raw.items():
            if not isinstance(scenario_name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", scenario_name):
                self.fail(f"scenarios.{scenario_name}", "a scenario name uses lower-case letters, digits and dashes")
            scenarios[scenario_name] = self.scenario(scenario_name, scenario_raw, topology)
        return Lab(name=name, summary=self.text(raw["summary"], "summary"), path=self.path,
                   topology=topology, scenarios=scenarios)

    def topology(self, raw) -> TopologySpec:
        key = "topology"
        every_field = {p.name for k in KINDS.values() for p in k.fields}
        raw = self.mapping(raw, key, {"kind", "persistence", "modes", "save", "config"} | every_field, ("kind",))
        kind_name = raw["kind"]
        if kind_name not in KINDS:
            self.fail(f"{key}.kind", f"unknown topology kind {kind_name!r} (known: {', '.join(KINDS)})")
        kind = KINDS[kind_name]
        persistence = raw.get("persistence", "rdb")
        if persistence not in PERSISTENCE_MODES:
            self.fail(f"{key}.persistence", f"unknown mode {persistence!r} (known: {', '.join(PERSISTENCE_MODES)})")
        modes = self.modes(raw.get("modes", [persistence]), f"{key}.modes")
        save = raw.get("save", DEFAULT_SAVE)
        if not isinstance(save, str) or not re.fullmatch(r"(\s*\d+\s+\d+)+\s*", save):
            self.fail(f"{key}.save", "save points are pairs of numbers: \"<seconds> <changes> ...\"")
        params = self.kind_params(raw, kind)
        return TopologySpec(kind=kind_name, persistence=persistence, modes=modes, save=" ".join(save.split()),
                            config=self.config(raw.get("config"), f"{key}.config", kind), params=params)

    def kind_params(self, raw: dict, kind) -> dict[str, Any]:
        """The kind's own fields: each checked by its type, then by the kind as a whole."""
        own = {p.name: p for p in kind.fields}
        for name in raw:
            if name not in own and name not in ("kind", "persistence", "modes", "save", "config"):
                having = [k.name for k in KINDS.values() if any(p.name == name for p in k.fields)]
                self.fail(f"topology.{name}", f"a {kind.name} topology has no {name} "
                                              f"(only a {' or '.join(sorted(having))} topology has it)")
        params = {}
        for name, param in own.items():
            value = raw.get(name, param.default)
            try:
                param.check(value)
            except (TypeError, ValueError) as exc:
                self.fail(f"topology.{name}", str(exc))
            params[name] = value
        return kind.check_params(params, lambda name, problem: self.fail(_key("topology", name), problem))

    # ------------------------------------------------------------ scenarios

    def scenario(self, name: str, raw, topology: TopologySpec) -> Scenario:
        key = f"scenarios.{name}"
        raw = self.mapping(raw, key, {"summary", "explain", "steps", "modes", "config", "expect", "expect_by_mode",
                                      "workload"}, ("summary", "explain", "steps"))
        kind = KINDS[topology.kind]
        modes = self.modes(raw.get("modes", list(topology.modes)), f"{key}.modes")
        steps_raw = raw["steps"]
        if not isinstance(steps_raw, list) or not steps_raw:
            self.fail(f"{key}.steps", "must be a non-empty list of steps")
        steps = tuple(self.step(s, f"{key}.steps[{i}]", i) for i, s in enumerate(steps_raw))
        workload = self.workload(raw.get("workload"), f"{key}.workload", steps, key)
        applies = Applicability(kind=kind, params=topology.params, workload=workload.name,
                                actions=frozenset(s.action for s in steps))
        for step in steps:
            self.check_step(step, f"{key}.steps[{step.index}]", kind, topology, modes, applies)
        self.check_workload(workload, steps, key, kind, topology)
        self.check_workload_steps(workload, steps, key)
        expect = self.bounds(raw.get("expect", {}), f"{key}.expect", applies)
        by_mode_raw = self.mapping(raw.get("expect_by_mode", {}), f"{key}.expect_by_mode")
        by_mode = {}
        for mode, bounds in by_mode_raw.items():
            if mode not in modes:
                self.fail(f"{key}.expect_by_mode.{mode}", f"not one of this scenario's modes ({', '.join(modes)})")
            by_mode[mode] = self.bounds(bounds, f"{key}.expect_by_mode.{mode}", applies)
        for mode in modes:
            if not expect and not by_mode.get(mode):
                self.fail(f"{key}.expect", f"no expectation for mode {mode!r}: say what the scenario should show")
        config = self.config(raw.get("config"), f"{key}.config", kind)
        return Scenario(name=name, summary=self.text(raw["summary"], f"{key}.summary"),
                        explain=self.text(raw["explain"], f"{key}.explain"), steps=steps, modes=modes,
                        config=config, expect=expect, expect_by_mode=by_mode, workload=workload)

    def step(self, raw, key: str, index: int) -> Step:
        if not isinstance(raw, dict) or len(raw) != 1:
            self.fail(key, "a step is a mapping with exactly one action, e.g. `- kill: master`")
        (action, arg), = raw.items()
        if action not in ACTIONS:
            self.fail(key, f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")
        spec = ACTIONS[action]
        try:
            args = spec.bind(arg)
        except (TypeError, ValueError) as exc:
            self.fail(f"{key}.{action}", f"{exc} (usage: {spec.usage()})")
        return Step(action=action, args=args, index=index)

    def check_step(self, step: Step, key: str, kind, topology: TopologySpec, modes, applies: Applicability) -> None:
        """Whether the step applies to this kind, these modes, and names nodes that exist."""
        spec = ACTIONS[step.action]
        where = f"{key}.{step.action}"
        missing = spec.requires - kind.capabilities
        if missing:
            having = [k.name for k in KINDS.values() if spec.requires <= k.capabilities]
            words = " or ".join(CAPABILITY_WORDS.get(c, c) for c in sorted(missing))
            self.fail(where, f"a {kind.name} topology has no {words} ({step.action} needs kind "
                             f"{' or '.join(having) or 'none'})")
        if spec.modes is not None:
            wrong = [m for m in modes if m not in spec.modes]
            if wrong:
                self.fail(where, f"does not apply in mode {', '.join(wrong)} ({step.action} runs in "
                                 f"{', '.join(spec.modes)}); give the scenario `modes:` where it applies")
        names = set(kind.targets(topology.params, applies.uses))
        for param in spec.params:
            target = step.args.get(param.name)
            allowed = names | set(param.choices)     # a target parameter may take words of its own (`start: down`)
            if param.type == "target" and target is not None and target not in allowed:
                self.fail(where, f"target {target!r} matches no node (nodes and roles: {', '.join(sorted(allowed))})")
        condition = step.args.get("condition") if step.action == "wait_for" else None
        if condition is not None and condition not in GENERIC_CONDITIONS and condition not in kind.conditions:
            answered = ", ".join(list(GENERIC_CONDITIONS) + list(kind.conditions))
            having = [k.name for k in KINDS.values() if condition in k.conditions]
            self.fail(where, f"a {kind.name} topology cannot wait for {condition} (it answers: {answered}; "
                             f"{condition} is for kind {' or '.join(having)})")
        if condition is not None and condition not in CONDITIONS:   # pragma: no cover - bind refuses it first
            self.fail(where, f"unknown condition {condition!r}")

    def workload(self, raw, key: str, steps, scenario_key: str) -> WorkloadSpec:
        """`workload: NAME` or `workload: {name: NAME, option: value, ...}`, merged with the options
        the `probe: start` step gives."""
        if raw is None:
            name, options = DEFAULT_WORKLOAD, {}
        elif isinstance(raw, str):
            name, options = raw, {}
        else:
            raw = self.mapping(raw, key, required=("name",))
            name, options = raw["name"], {k: v for k, v in raw.items() if k != "name"}
        if name not in WORKLOADS:
            self.fail(key, f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})")
        starts = [s for s in steps if s.action == "probe" and s.args.get("command") == "start"]
        for step in starts:
            for option, value in step.args.items():
                if option != "command":
                    options[option] = value
        return WorkloadSpec(name=name, options=options)

    def check_workload(self, workload: WorkloadSpec, steps, key: str, kind, topology: TopologySpec) -> None:
        """One `probe: start`, at most one `probe: stop` after it; options the workload accepts
        and that apply to this lab."""
        probes = [s for s in steps if s.action == "probe"]
        starts = [s for s in probes if s.args["command"] == "start"]
        stops = [s for s in probes if s.args["command"] == "stop"]
        if not starts:
            self.fail(f"{key}.steps", "nothing would be measured: add `- probe: start` before the fault")
        if len(starts) > 1:
            self.fail(f"{key}.steps[{starts[1].index}].probe", f"the probe is already started by steps[{starts[0].index}]: "
                                                                f"start it once")
        if stops and stops[0].index < starts[0].index:
            self.fail(f"{key}.steps[{stops[0].index}].probe", "stops the probe before it is started")
        if len(stops) > 1:
            self.fail(f"{key}.steps[{stops[1].index}].probe", "the probe is already stopped: stop it once")
        if stops and len(stops[0].args) > 1:
            self.fail(f"{key}.steps[{stops[0].index}].probe", "options go with `probe: start`, not with stop")
        spec = WORKLOADS[workload.name]
        start = starts[0]
        where = f"{key}.steps[{start.index}].probe"
        known = {p.name: p for p in spec.options}
        options = dict(workload.options)
        for name, value in options.items():
            if name not in known:
                self.fail(where, f"the {workload.name} workload has no option {name!r} "
                                 f"(it has: {', '.join(known) or 'none'})")
            try:
                known[name].check(value)
            except (TypeError, ValueError) as exc:
                self.fail(where, str(exc))
        problem = spec.check_options({**{p.name: p.default for p in spec.options if not p.required}, **options},
                                     kind, topology.params)
        if problem:
            self.fail(_key(where, problem[0]), problem[1])

    def check_workload_steps(self, workload: WorkloadSpec, steps, key: str) -> None:
        """Steps that act on the workload (kill a consumer) need that workload, and must name
        what it has."""
        spec = WORKLOADS[workload.name]
        defaults = {p.name: p.default for p in spec.options if not p.required}
        for step in steps:
            action = ACTIONS[step.action]
            if action.workloads is None:
                continue
            where = f"{key}.steps[{step.index}].{step.action}"
            if workload.name not in action.workloads:
                self.fail(where, f"acts on the {' or '.join(action.workloads)} workload; this scenario runs "
                                 f"{workload.name} (give it `workload:`)")
            problem = spec.check_step(step.action, step.args, {**defaults, **workload.options})
            if problem:
                self.fail(_key(where, problem[0]), problem[1])

    def bounds(self, raw, key: str, applies: Applicability) -> dict[str, Bound]:
        raw = self.mapping(raw if raw is not None else {}, key)
        result = {}
        for metric, bound in raw.items():
            if metric not in METRICS:
                self.fail(f"{key}.{metric}", f"unknown metric (known: {', '.join(METRICS)})")
            why_not = METRICS[metric].applies(applies.kind.capabilities, applies.workload, applies.uses)
            if why_not:
                self.fail(f"{key}.{metric}", f"cannot be measured in this scenario: {metric} {why_not} "
                                             f"(this lab is {applies.kind.name})")
            bound = self.mapping(bound, f"{key}.{metric}", {"min", "max"})
            if not bound:
                self.fail(f"{key}.{metric}", "give min, max or both")
            for side, value in bound.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    self.fail(f"{key}.{metric}.{side}", "must be a number")
                if not math.isfinite(value):
                    self.fail(f"{key}.{metric}.{side}", f"must be a finite number, not {value!r} "
                                                        f"(leave the side out for no bound)")
            if "min" in bound and "max" in bound and bound["min"] > bound["max"]:
                self.fail(f"{key}.{metric}", "min is greater than max")
            result[metric] = Bound(min=bound.get("min"), max=bound.get("max"))
        return result
