"""The Jinja environment the pages share: autoescaping on, so every string a result carries
(event texts, node names, error messages, scenario names) reaches the page as text."""

from __future__ import annotations

import json
import re
from functools import lru_cache

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from .result import format_bound, format_value

_CODE = re.compile(r"`([^`]+)`")


def prose(text) -> Markup:
    """Escaped text with `backticked` words as <code>."""
    return Markup(_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(str(text or "")))))


def script_json(value) -> Markup:
    """JSON safe inside <script type="application/json">: <, > and & become \\u escapes, so
    no string in it can close the element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _plain(value):
    """JSON for what plotly leaves in its figure dicts besides plain lists (tuples are lists
    already; numpy arrays, if a caller passed any, have tolist)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(prose=prose, value=format_value, bound=format_bound, script_json=script_json)
    return env


@lru_cache(maxsize=None)
def compiled(template_text: str):
    """A page template compiled once per process (compiling costs more than rendering)."""
    return environment().from_string(template_text)
