"""The only module that talks to Docker (through python-on-whales).

Every Docker call goes through `_call`, which turns python-on-whales' exceptions
into our typed errors naming the lab, what was being done and Docker's own words.
Cleanup works by label, so it removes exactly what the tool made.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.exceptions import DockerException, NoSuchContainer, NoSuchVolume

from ..errors import EnvironmentProblem, RuntimeFailure
from .topology import LABEL_LAB, LABEL_MODE, LABEL_NODE, LABEL_ROLE, LABEL_RUN, Node, Topology

ONE_OFF_USER = "999:999"  # the redis user of the official image and of `lab image build`
DOCKER_DOWN_HINT = "start the Docker engine (`systemctl start docker`, or `dockerd &` as root); `lab doctor` checks the rest"


def _docker_said(exc: DockerException) -> str:
    text = (exc.stderr or exc.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit code {exc.return_code}"


def _is_engine_down(exc: DockerException) -> bool:
    said = (exc.stderr or "") + (exc.stdout or "")
    return "Cannot connect to the Docker daemon" in said or "Is the docker daemon running" in said


@contextmanager
def _call(what: str, hint: str = ""):
    """Run Docker calls, raising RuntimeFailure/EnvironmentProblem that say what failed."""
    try:
        yield
    except ClientNotFoundError:
        raise EnvironmentProblem("the docker command is not installed",
                                 "install Docker (Debian: `apt-get install docker.io`), or run scripts/setup") from None
    except DockerException as exc:
        if _is_engine_down(exc):
            raise EnvironmentProblem("the Docker engine is not reachable", DOCKER_DOWN_HINT) from None
        said = _docker_said(exc)
        if "Pool overlaps" in said or "overlaps with other one" in said:
            raise EnvironmentProblem(f"{what}: the lab network's subnet overlaps another Docker network ({said})",
                                     "remove that network, or pass another --port-base (it picks the subnet)") from None
        if "port is already allocated" in said or "address already in use" in said:
            raise EnvironmentProblem(f"{what}: a host port is already in use ({said})",
                                     "stop what holds it (`lab status`, `lab down --all`) or pass another --port-base") from None
        raise RuntimeFailure(f"{what} failed: {said}", hint) from None


@dataclass(frozen=True)
class LabContainer:
    """A container the tool made, as `lab status` shows it."""

    lab: str
    run: str
    node: str
    role: str
    mode: str
    state: str
    ports: str
    name: str
    project: str
    host_port: int | None = None   # the published port on 127.0.0.1, if any
    ips: tuple[str, ...] = ()      # its addresses on the lab's networks


COMPOSE_PROJECT = "com.docker.compose.project"


def _describe(c) -> LabContainer:
    """What `lab status` shows of a container (inspects it: raises NoSuchContainer if it is gone)."""
    labels = c.config.labels
    bound = [(p, b[0]) for p, b in (c.network_settings.ports or {}).items() if b]  # kept raw by python-on-whales
    ports = ", ".join(f"{b['HostIp']}:{b['HostPort']}->{p}" for p, b in bound)
    return LabContainer(lab=labels.get(LABEL_LAB, "?"), run=labels.get(LABEL_RUN, "?"),
                        node=labels.get(LABEL_NODE, "-"), role=labels.get(LABEL_ROLE, "-"),
                        mode=labels.get(LABEL_MODE, "-"), state=c.state.status, ports=ports or "-",
                        name=c.name, project=labels.get(COMPOSE_PROJECT, "-"),
                        host_port=int(bound[0][1]["HostPort"]) if bound else None,
                        ips=tuple(n.ip_address for n in (c.network_settings.networks or {}).values() if n.ip_address))


class Engine:
    """Engine-wide operations: health, images, listing and label-based cleanup."""

    def __init__(self):
        self.docker = DockerClient()

    def version(self) -> str:
        """The engine's version; raises EnvironmentProblem if it does not answer."""
        with _call("asking the Docker engine for its version", DOCKER_DOWN_HINT):
            return self.docker.version().server.version

    def compose_version(self) -> str | None:
        """The compose plugin's version ("2.40.3"), or None if `docker compose` is missing."""
        try:
            said = self.docker.compose.version()
            match = re.search(r"v?(\d+\.\d+\.\d+)", said)
            return match.group(1) if match else said.strip()
        except (DockerException, ClientNotFoundError):
            return None

    def image_exists(self, name: str) -> bool:
        with _call(f"looking up image {name}"):
            return self.docker.image.exists(name)

    def pull(self, name: str) -> bool:
        """Try to pull an image; False when no registry can be reached."""
        try:
            self.docker.image.pull(name, quiet=True)
            return True
        except DockerException as exc:
            if _is_engine_down(exc):
                raise EnvironmentProblem("the Docker engine is not reachable", DOCKER_DOWN_HINT) from None
            return False

    def build_image(self, context: Path, tag: str, labels: dict[str, str]) -> None:
        with _call(f"building image {tag}"):
            if self.docker.buildx.is_installed():
                self.docker.build(context, tags=[tag], labels=labels, load=True)
            else:
                self.docker.legacy_build(context, tags=[tag], labels=labels)

    def lab_containers(self, lab: str | None = None, project: str | None = None) -> list[LabContainer]:
        """Containers the tool made (of one lab, or of one compose project). A container another
        run removes while this lists them is left out."""
        filters = [("label", f"{LABEL_LAB}={lab}" if lab else LABEL_LAB)]
        if project:
            filters.append(("label", f"{COMPOSE_PROJECT}={project}"))
        result = []
        with _call("listing lab containers"):
            for c in self.docker.container.list(all=True, filters=filters):
                try:
                    result.append(_describe(c))
                except NoSuchContainer:
                    continue
        return sorted(result, key=lambda c: (c.lab, c.node))

    def remove_labelled(self, *labels: str) -> int:
        """Remove containers (with their anonymous volumes), networks and volumes carrying every
        one of `labels` ("key" or "key=value"). Returns how many resources were removed."""
        filters = [("label", label) for label in labels]
        removed = 0
        with _call(f"removing resources labelled {', '.join(labels)}"):
            containers = self.docker.container.list(all=True, filters=filters)
            if containers:
                self.docker.container.remove(containers, force=True, volumes=True)
                removed += len(containers)
            networks = self.docker.network.list(filters=filters)
            if networks:
                self.docker.network.remove(networks)
                removed += len(networks)
            volumes = self.docker.volume.list(filters=filters)
            if volumes:
                self.docker.volume.remove(volumes)
                removed += len(volumes)
        return removed


class LabRuntime:
    """Docker operations on one running lab (one compose project)."""

    def __init__(self, topo: Topology, compose_file: Path):
        self.topo = topo
        self.compose_file = compose_file
        self.docker = DockerClient(compose_files=[compose_file], compose_project_name=topo.project)
        self.engine = Engine()

    def _what(self, doing: str) -> str:
        return f"lab {self.topo.lab}: {doing}"

    def up(self, nodes: list[Node] | None = None) -> None:
        """Create the network, volumes and containers (in parallel) and start them: every node,
        or only `nodes`."""
        services = [n.name for n in nodes] if nodes is not None else None
        with _call(self._what("docker compose up"), f"the project is in {self.compose_file.parent}"):
            self.docker.compose.up(services, detach=True, quiet=True, pull="never")

    def kill(self, *nodes: Node) -> None:
        """SIGKILL the nodes' containers, in one docker call (all at once, as a power cut would)."""
        names = [n.container for n in nodes]
        with _call(self._what(f"docker kill {' '.join(names)}")):
            self.docker.container.kill(names)

    def wait(self, node: Node) -> None:
        """Until the node's container has stopped (after a kill: nothing of it runs any more)."""
        with _call(self._what(f"docker wait {node.container}")):
            self.docker.container.wait(node.container)

    def stop(self, node: Node, timeout_s: int) -> None:
        """SIGTERM, then SIGKILL after `timeout_s` whole seconds (Docker counts in seconds; the
        lab file refuses fractions): Redis shuts down gracefully on SIGTERM."""
        with _call(self._what(f"docker stop {node.container}")):
            self.docker.container.stop(node.container, time=int(timeout_s))

    def start(self, node: Node) -> None:
        """Start the node's container; recreate it from the compose file if it was removed."""
        with _call(self._what(f"starting {node.container}")):
            if self.docker.container.exists(node.container):
                self.docker.container.start(node.container)
            else:
                self.docker.compose.up([node.name], detach=True, quiet=True, pull="never")

    def pause(self, node: Node) -> None:
        """Freeze every process of the node (cgroup freezer): sockets stay open, nothing answers."""
        with _call(self._what(f"docker pause {node.container}")):
            self.docker.container.pause(node.container)

    def unpause(self, node: Node) -> None:
        with _call(self._what(f"docker unpause {node.container}")):
            self.docker.container.unpause(node.container)

    def disconnect(self, node: Node) -> None:
        """Cut the node off its peers as a broken network does: drop every packet between it and
        the lab subnet inside its own network namespace (the host's iptables, through nsenter;
        root on the host, nothing privileged in the container). Its interface, address and
        routes stay, so a connection it opens meanwhile still leaves from its lab address and
        completes once the partition heals; its own edge network to the host (the probe's way
        in) is untouched.

        (`docker network disconnect` removed the interface instead: the cluster bus's reconnects
        during the partition then left from the edge address, stayed dead after the heal, and a
        healed cluster node kept peers flagged `fail?` for 0-30+ s.)"""
        for rule in self._partition_rules():
            self._in_netns(node, ["iptables", "-w", "-I", *rule])

    def connect(self, node: Node) -> None:
        """Heal a partition: remove the rules `disconnect` added (gone already if the container
        was recreated or stopped since)."""
        if self.state(node)[0] != "running":
            return
        for rule in self._partition_rules():
            if self._in_netns(node, ["iptables", "-w", "-C", *rule], check=False) == 0:
                self._in_netns(node, ["iptables", "-w", "-D", *rule])

    def _partition_rules(self) -> list[list[str]]:
        """The two packet-filter rules that cut a node off the lab subnet, both ways."""
        tag = ["-m", "comment", "--comment", f"redis-ha-lab partition {self.topo.project}"]
        return [["INPUT", "-s", self.topo.subnet, *tag, "-j", "DROP"],
                ["OUTPUT", "-d", self.topo.subnet, *tag, "-j", "DROP"]]

    def _in_netns(self, node: Node, argv: list[str], check: bool = True) -> int:
        """Run a host tool inside the node's network namespace (nsenter); its exit code. With
        `check`, RuntimeFailure with the tool's own words when it fails."""
        with _call(self._what(f"inspecting {node.container}")):
            pid = self.docker.container.inspect(node.container).state.pid
        if not pid:
            raise RuntimeFailure(self._what(f"{node.container} is not running: its network cannot be cut"))
        try:
            done = subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True,
                                  timeout=30)
        except FileNotFoundError:
            raise EnvironmentProblem("nsenter is not installed", "install util-linux (Debian: apt-get install "
                                                                 "util-linux)") from None
        if check and done.returncode != 0:
            raise RuntimeFailure(self._what(f"{' '.join(argv[:4])} in {node.container} failed: {done.stderr.strip()}"),
                                 "partitions need root on the host and the iptables command (`lab doctor`)")
        return done.returncode

    def remove(self, node: Node) -> None:
        """Remove the node's container and its data volume (as if the host were replaced)."""
        with _call(self._what(f"removing {node.container} and its volume")):
            self.docker.container.remove(node.container, force=True, volumes=True)
            if node.volume:
                try:
                    self.docker.volume.remove(node.volume)
                except NoSuchVolume:
                    pass

    def state(self, node: Node) -> tuple[str, int | None]:
        """(status, exit code) of the node's container; ('absent', None) if there is none."""
        with _call(self._what(f"inspecting {node.container}")):
            try:
                state = self.docker.container.inspect(node.container).state
            except NoSuchContainer:
                return "absent", None
        return state.status, state.exit_code

    def exited_at(self, node: Node) -> float | None:
        """When the node's container last exited, as Docker recorded it (State.FinishedAt, in
        seconds since the epoch); None while it runs or if it never ran."""
        with _call(self._what(f"inspecting {node.container}")):
            try:
                state = self.docker.container.inspect(node.container).state
            except NoSuchContainer:
                return None
        finished = state.finished_at
        if state.running or finished is None or finished.year < 2000:   # Docker's zero time: never exited
            return None
        return finished.timestamp()

    def logs(self, node: Node, tail: int | None = None, timestamps: bool = False) -> str:
        """The node's log ("" if there is none); with `timestamps`, each line starts with Docker's
        RFC 3339 UTC time of arrival."""
        try:
            return self.docker.container.logs(node.container, tail=tail, timestamps=timestamps)
        except DockerException:
            return ""

    def exec(self, node: Node, command: list[str]) -> str:
        """Run `command` inside the node's container (e.g. redis-cli on the lab network); its output.
        Raises RuntimeFailure with the command's own words if it fails."""
        with _call(self._what(f"{' '.join(command[:3])} in {node.container}")):
            return self.docker.container.execute(node.container, command) or ""

    def read_file(self, node: Node, path: str) -> bytes:
        """The content of one file in the node's container (running or not)."""
        with tempfile.TemporaryDirectory(prefix="lab-cp-") as tmp:
            target = Path(tmp) / "file"
            with _call(self._what(f"reading {path} from {node.container}")):
                self.docker.container.copy((node.container, path), target)
            return target.read_bytes()

    def run_on_volume(self, node: Node, command: list[str], stdin: bytes = b"") -> tuple[int, str]:
        """Run `command` in a throw-away container of the lab's image with the node's data
        volume at /data, no network, as the redis user. Returns (exit code, output).

        Uses the docker CLI directly: python-on-whales' `run` cannot feed standard input,
        which `redis-check-aof --fix` reads its confirmation from."""
        if not node.volume:
            raise RuntimeFailure(self._what(f"{node.name} has no data volume in mode {self.topo.mode}"))
        labels = [arg for key, value in self.topo.labels.items() for arg in ("--label", f"{key}={value}")]
        argv = [*self.docker.client_config.docker_cmd, "run", "--rm", "-i", "--network", "none",
                "--user", ONE_OFF_USER, "-v", f"{node.volume}:/data", *labels, self.topo.image, *command]
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=120)
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        if "Cannot connect to the Docker daemon" in output:
            raise EnvironmentProblem("the Docker engine is not reachable", DOCKER_DOWN_HINT)
        return done.returncode, output

    def down(self) -> int:
        """Remove everything this run made (containers, networks, volumes), by its lab and run
        labels (labels started by `lab up` share the run label "up")."""
        return self.engine.remove_labelled(f"{LABEL_LAB}={self.topo.lab}", f"{LABEL_RUN}={self.topo.run_id}")

