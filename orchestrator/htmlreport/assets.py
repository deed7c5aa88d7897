"""plotly.js, the one script the run pages load: from a file beside them (one copy for a whole
report directory) or inlined (one self-contained page). Both come from the plotly package
itself, so nothing is fetched from the network, now or when a page is opened."""

from __future__ import annotations

import os
from pathlib import Path


def plotly_js_name() -> str:
    """The file name of the shared copy, versioned so pages drawn by another plotly.js
    version never load a copy they were not drawn for."""
    from plotly.offline import get_plotlyjs_version

    return f"plotly-{get_plotlyjs_version()}.min.js"


def plotly_js() -> str:
    """The minified plotly.js bundle (about 4.8 MB)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_plotly_js(directory: Path) -> Path:
    """Write the shared copy into `directory` unless an identical one is there; returns its
    path. Written to a temporary name and renamed, so a page never sees half a file."""
    path = Path(directory) / plotly_js_name()
    text = plotly_js()
    if path.is_file() and path.stat().st_size == len(text.encode()):
        return path
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
