"""Render a lab's compose project from the Jinja templates (StrictUndefined).

The result is a directory that `docker compose` runs by hand: compose.yaml plus
one redis.conf per data node and one directory per Sentinel holding its sentinel.conf.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from ..spec.paths import TEMPLATES_DIR
from .topology import CONFIG_PATH, DATA_DIR, LABEL_NODE, LABEL_ROLE, REDIS_PORT, SENTINEL_DIR, Node, Topology

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_CONSTANTS = dict(config_path=CONFIG_PATH, data_dir=DATA_DIR, redis_port=REDIS_PORT,
                  label_node=LABEL_NODE, label_role=LABEL_ROLE, sentinel_dir=SENTINEL_DIR)


def render_compose(topo: Topology) -> str:
    return _ENV.get_template("compose.yaml.j2").render(topo=topo, **_CONSTANTS)


def render_node_conf(topo: Topology, node: Node) -> str:
    """redis.conf of a data node, or sentinel.conf of a Sentinel."""
    template = "sentinel.conf.j2" if node.is_sentinel else "redis.conf.j2"
    return _ENV.get_template(template).render(topo=topo, node=node, **_CONSTANTS)


def render_files(topo: Topology) -> dict[str, str]:
    """File name (relative to the project directory) -> content for every file of the project."""
    files = {"compose.yaml": render_compose(topo)}
    for node in topo.nodes:
        files[node.config_file] = render_node_conf(topo, node)
    return files


def render_project(topo: Topology, out_dir: Path) -> Path:
    """Write the project into `out_dir` (created if needed); returns the compose file path.

    Sentinel directories and files are made writable for everyone: Sentinel runs as the
    image's unprivileged user and rewrites its config in place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in render_files(topo).items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for node in topo.sentinels:
        (out_dir / node.config_file).parent.chmod(0o777)
        (out_dir / node.config_file).chmod(0o666)
    return out_dir / "compose.yaml"
