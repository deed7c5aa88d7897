"""Typed parameters: what a lab file may give an action, a workload or a topology field, and
the check each value gets. Nothing is coerced: `"no"` is not a boolean, `500ms` is not a whole
number of seconds, `2.0` is not a count."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .durations import parse_duration, whole_seconds

REQUIRED = object()

# parameter type -> what the lab file must write (for messages)
_TYPES = {
    "target": "a node name or a role, e.g. master",
    "duration": "a duration (2s, 500ms, 1m)",
    "seconds": "a whole number of seconds (5s)",
    "count": "a whole number of at least 1",
    "natural": "a whole number of at least 0",
    "bool": "true or false (not quoted)",
    "fraction": "a number between 0 and 1",
    "choice": "one of the listed words",
    "word": "a word",
    "any": "a value",
}


@dataclass(frozen=True)
class Param:
    """One argument: its name, type, default (REQUIRED if none) and, for some types, limits."""

    name: str
    type: str = "any"
    default: Any = REQUIRED
    choices: Sequence = ()           # for "choice": the allowed values (a live list may grow)
    most: int | None = None          # counts and naturals: the largest allowed

    def __post_init__(self):
        if self.type not in _TYPES:
            raise ValueError(f"unknown parameter type {self.type!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def usage(self) -> str:
        return self.name if self.required else f"{self.name}={self.default}"

    def check(self, value: Any) -> None:
        """Raise ValueError (TypeError for a wrong shape) unless `value` is of this type."""
        expected = self.type
        if expected == "any":
            return
        if expected in ("target", "word"):
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"{self.name} must be {_TYPES[expected]}, not {value!r}")
        elif expected == "duration":
            parse_duration(value)
        elif expected == "seconds":
            whole_seconds(value)
        elif expected in ("count", "natural"):
            least = 1 if expected == "count" else 0
            within = f"from {least} to {self.most}" if self.most is not None else f"of at least {least}"
            if (not isinstance(value, int) or isinstance(value, bool) or value < least
                    or (self.most is not None and value > self.most)):
                raise ValueError(f"{self.name} must be a whole number {within}, not {value!r}")
        elif expected == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false (not quoted), not {value!r}")
        elif expected == "fraction":
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                    or not 0 < value < 1):
                raise ValueError(f"{self.name} must be a number between 0 and 1, not {value!r}")
        elif expected == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, not {value!r}")


def bind(params: tuple[Param, ...], arg: Any, open_options: bool = False) -> dict[str, Any]:
    """Bind what a lab file gives to `params`: a scalar binds to the first one (`- kill: master`),
    a mapping by name (`- truncate_aof: {target: master, bytes: 137}`), nothing applies the
    defaults. Every value is checked. With `open_options`, names beyond `params` are kept for
    someone else to check (a workload's options). Raises TypeError or ValueError."""
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
    if unknown and not open_options:
        raise TypeError(f"unknown argument {', '.join(sorted(unknown))}")
    missing = [p.name for p in params if p.required and p.name not in given]
    if missing:
        raise TypeError(f"missing argument {', '.join(missing)}")
    bound = {p.name: given.get(p.name, p.default) for p in params}
    for p in params:
        if p.name in given:
            p.check(given[p.name])
    if open_options:
        bound.update({name: given[name] for name in sorted(unknown)})
    return bound
