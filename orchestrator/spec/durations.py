"""Durations as lab files write them: '2s', '500ms', '1m' or a number of seconds."""

from __future__ import annotations

import math
import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(value: Any) -> float:
    """'2s', '500ms', '1m' or a number of seconds -> seconds (float). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r} (a number of seconds >= 0)")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (write 2s, 500ms or 1m)")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def whole_seconds(value: Any) -> int:
    """A duration that must be a whole number of seconds (Docker counts a stop timeout in
    seconds): refused rather than truncated. Raises ValueError."""
    seconds = parse_duration(value)
    if seconds != int(seconds):
        raise ValueError(f"{value!r} is not a whole number of seconds (this one is counted in seconds: "
                         f"write {max(1, math.ceil(seconds))}s)")
    return int(seconds)
