"""Render a lab's compose project from the Jinja templates (StrictUndefined).

The result is a directory that `docker compose` runs by hand: compose.yaml plus
one redis.conf per node.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from .paths import TEMPLATES_DIR
from .topology import (CONFIG_PATH, DATA_DIR, LABEL_NODE, LABEL_ROLE, REDIS_PORT, Node,
                       Topology)

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_CONSTANTS = dict(config_path=CONFIG_PATH, data_dir=DATA_DIR, redis_port=REDIS_PORT,
                  label_node=LABEL_NODE, label_role=LABEL_ROLE)


def render_compose(topo: Topology) -> str:
    return _ENV.get_template("compose.yaml.j2").render(topo=topo, **_CONSTANTS)


def render_redis_conf(topo: Topology, node: Node) -> str:
    return _ENV.get_template("redis.conf.j2").render(topo=topo, node=node, **_CONSTANTS)


def render_files(topo: Topology) -> dict[str, str]:
    """File name -> content for every file of the project."""
    files = {"compose.yaml": render_compose(topo)}
    for node in topo.nodes:
        files[node.config_file] = render_redis_conf(topo, node)
    return files


def render_project(topo: Topology, out_dir: Path) -> Path:
    """Write the project into `out_dir` (created if needed); returns the compose file path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in render_files(topo).items():
        (out_dir / name).write_text(content)
    return out_dir / "compose.yaml"
