"""File names for run pages and writing pages to disk."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from .assets import write_plotly_js
from .index import render_index
from .page import render_run_page

MAX_STEM = 80
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
# Names Windows reserves whatever the extension ("con.html" cannot be created there).
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def page_name(result: dict) -> str:
    """"<lab>-<scenario>-<mode>.html", lower case, accents dropped, every run of characters
    outside [a-z0-9._-] replaced by one "_" ("rdb+aof" -> "rdb_aof"), no leading dot or
    dash, at most MAX_STEM characters before ".html" (longer ones keep a hash of the full
    name), never a name Windows reserves: safe on any file system and in a URL unquoted."""
    parts = [str(result.get(k) or "unknown") for k in ("lab", "scenario", "mode")]
    stem = "-".join(_UNSAFE.sub("_", _ascii(part).lower()).strip("._-") or "_" for part in parts)
    if len(stem) > MAX_STEM:
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]
        stem = f"{stem[:MAX_STEM - 11].rstrip('._-')}-{digest}"
    if stem.split(".")[0] in _RESERVED:
        stem = f"run-{stem}"
    return f"{stem}.html"


def _ascii(text: str) -> str:
    """Accents dropped ("Ünïcode" -> "Unicode"); other non-ASCII letters are left for the
    caller to replace."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def page_names(results: list[dict]) -> list[str]:
    """One distinct name per result: repeats of one lab/scenario/mode (and names equal once
    case and unsafe characters are folded) get "-2", "-3", ... in order."""
    names, seen = [], set()
    for result in results:
        name = page_name(result)
        stem, n = name[:-len(".html")], 1
        while name in seen:
            n += 1
            name = f"{stem}-{n}.html"
        seen.add(name)
        names.append(name)
    return names


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a page."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_run_page(result: dict, path: Path, *, inline_js: bool = False) -> Path:
    """Write one run's page to `path` (parent directories created) and, unless `inline_js`,
    the shared plotly.js file beside it. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not inline_js:
        write_plotly_js(path.parent)
    _write_text(path, render_run_page(result, inline_js=inline_js))
    return path


def write_report(results: list[dict], directory: Path) -> Path:
    """Write `directory`/index.html, one page per result (see page_names) and one shared
    plotly.js; returns the index's path. Existing files of the same names are replaced,
    others left alone."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = page_names(results)
    write_plotly_js(directory)
    for result, name in zip(results, names):
        _write_text(directory / name, render_run_page(result, index_href="index.html"))
    index = directory / "index.html"
    _write_text(index, render_index(results, names))
    return index
