"""One Redis node on its own: what persistence keeps when it crashes, stops or loses its disk."""

from __future__ import annotations

from ..spec.registry import register_kind
from .base import Kind


class Single(Kind):
    name = "single"
    summary = "one Redis node with its data directory on a named volume"


SINGLE = register_kind(Single())
