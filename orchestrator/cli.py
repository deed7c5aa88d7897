"""The `lab` command line. Thin: parse options, call one function of the core, print."""

from __future__ import annotations

import shutil
import sys
import traceback
from pathlib import Path

import click
from tabulate import tabulate

from . import report
from .actions import ACTIONS
from .clients import role_now
from .doctor import examine
from .errors import EXIT_EXPECTATION_FAILED, EXIT_OK, LabError, UsageError, exit_code_for
from .image import LOCAL_IMAGE, build_local_image, resolve_image
from .labs import PERSISTENCE_MODES, lab_names, load_all_labs, load_lab
from .lifecycle import RunSettings, bring_up, preflight, prepare, sigterm_as_interrupt, teardown
from .metrics import METRICS
from .paths import state_dir
from .runtime import Engine
from .scenario import default_mode, modes_to_run, run_scenario
from .suite import plan, run_plan
from .topology import DEFAULT_PORT_BASE, MASTER_NAME, UP_RUN_ID, derive_topology
from .validate import validate_lab

MODE_HELP = f"persistence mode: {', '.join(PERSISTENCE_MODES)} (default: the lab's own)"


class LabGroup(click.Group):
    """Decides exit codes in one place: known errors print one line, bugs a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except LabError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            click.echo("interrupted: what this run had started was removed", err=True)
            ctx.exit(exit_code_for(exc))
        except Exception as exc:  # noqa: BLE001 - the one place that reports bugs
            traceback.print_exc()
            click.secho(f"error: this is a bug in redis-ha-lab ({type(exc).__name__}); please report it with the "
                        f"traceback above", err=True, fg="red")
            ctx.exit(exit_code_for(exc))


class Settings:
    def __init__(self, image: str | None, port_base: int):
        self.requested_image = image
        self.port_base = port_base
        self._engine = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def run_settings(self, keep: bool = False) -> RunSettings:
        choice = resolve_image(self.engine, self.requested_image)
        if choice.note:
            click.echo(f"note: {choice.note}", err=True)
        return RunSettings(image=choice.name, port_base=self.port_base, keep=keep)


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--image", envvar="LAB_IMAGE", default=None, metavar="IMAGE",
              help="Redis image for the nodes (env LAB_IMAGE). Default: the official redis:7.2, or the "
                   f"offline {LOCAL_IMAGE} when that cannot be pulled.")
@click.option("--port-base", envvar="LAB_PORT_BASE", default=DEFAULT_PORT_BASE, show_default=True, type=int,
              help="first host port; nodes are published on 127.0.0.1:<port-base + n> (env LAB_PORT_BASE)")
@click.version_option(package_name="redis-ha-lab")
@click.pass_context
def cli(ctx, image, port_base):
    """Break Redis on purpose and see what a client saw.

    Each lab (labs/*.yaml) is a Redis topology plus scenarios: a probe writes distinct keys
    while a fault strikes (a SIGKILL, a shutdown, a lost volume, a torn AOF, a frozen or
    partitioned master); afterwards every acknowledged key is read back. The tool reports how
    long writes were unavailable and which acknowledged writes were lost, and checks both
    against the scenario's expectation.

    \b
    Start here:
      lab list                                   what there is to run
      lab run persistence kill-restart --mode rdb
      lab failover                               watch Sentinel promote a replica
      lab compare persistence                    every persistence mode, one table
      lab verify                                 everything; exit 1 on a deviation (for CI)

    Exit codes: 0 all expectations met, 1 an expectation failed, 2 usage, lab file or
    environment error (the message says how to fix it).
    """
    ctx.obj = Settings(image, port_base)


# ------------------------------------------------------------------ labs as data

@cli.command("list")
@click.option("--actions", "show_actions", is_flag=True, help="also list the step actions a lab file may use")
@click.option("--metrics", "show_metrics", is_flag=True, help="also list the metrics an expectation may name")
def list_labs(show_actions, show_metrics):
    """Labs and their scenarios, with one-line summaries."""
    for lab in load_all_labs():
        click.secho(f"{lab.name}", bold=True, nl=False)
        click.echo(f"  {lab.summary}")
        click.echo(f"  modes: {', '.join(lab.topology.modes)} (default {lab.topology.persistence})")
        rows = [(name, ", ".join(s.modes), s.summary) for name, s in lab.scenarios.items()]
        click.echo(tabulate(rows, headers=["  scenario", "modes", "summary"], tablefmt="plain",
                            maxcolwidths=[None, 30, 60]))
        click.echo()
    if show_actions:
        click.echo(tabulate([(a.usage(), a.summary) for a in ACTIONS.values()], headers=["action", "what it does"],
                            maxcolwidths=[None, 70]))
        click.echo()
    if show_metrics:
        click.echo(tabulate([(m.name, m.unit, m.short) for m in METRICS.values()], headers=["metric", "unit", "meaning"]))


@cli.command()
@click.argument("labs", nargs=-1, metavar="[LAB|PATH]...")
def validate(labs):
    """Check lab files and render every template; starts no container.

    Checks the schema, actions and their arguments, targets, metric names in
    expectations, and renders the compose file and redis.conf of every scenario in
    every mode. With no argument: every lab in labs/.
    """
    for name in labs or lab_names():
        lab = load_lab(name)
        rendered = validate_lab(lab)
        click.echo(f"ok  {lab.name} ({lab.path}): {len(lab.scenarios)} scenarios, {rendered} scenario/mode projects rendered")


@cli.command()
@click.argument("lab", metavar="LAB|PATH")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.option("--scenario", help="render with this scenario's redis.conf settings")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="directory to write compose.yaml and the redis.conf files to")
@click.pass_obj
def render(settings, lab, mode, scenario, output):
    """Write the compose project of a lab to a directory, to read or to run by hand
    (`docker compose -f DIR/compose.yaml up -d`)."""
    from .render import render_project

    lab = load_lab(lab)
    chosen = lab.scenario(scenario) if scenario else None
    mode = lab.check_mode(mode or lab.topology.persistence)
    image = settings.requested_image or _image_for_render(settings)
    topo = derive_topology(lab, mode, run_id="manual", image=image, port_base=settings.port_base, scenario=chosen)
    compose = render_project(topo, output)
    click.echo(f"wrote {compose} and {', '.join(n.config_file for n in topo.nodes)} (mode {mode}, image {image})")
    click.echo(f"run it:    docker compose -f {compose} up -d")
    click.echo(f"remove it: docker compose -f {compose} down -v   (or `lab down {lab.name}`)")


def _image_for_render(settings: Settings) -> str:
    try:
        return resolve_image(settings.engine).name
    except LabError:
        from .image import OFFICIAL_IMAGE
        return OFFICIAL_IMAGE


# ------------------------------------------------------------------ running labs

@cli.command()
@click.argument("lab", metavar="LAB|PATH")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.pass_obj
def up(settings, lab, mode):
    """Start a lab, wait until every node is ready, print how to connect. `lab down` removes it."""
    lab = load_lab(lab)
    mode = lab.check_mode(mode or lab.topology.persistence)
    run = settings.run_settings(keep=True)
    topo = derive_topology(lab, mode, run_id=UP_RUN_ID, image=run.image, port_base=settings.port_base)
    preflight(topo, settings.engine)
    project_dir = state_dir() / topo.project
    runtime = prepare(topo, project_dir)
    with sigterm_as_interrupt():
        try:
            bring_up(runtime)
        except BaseException:
            teardown(runtime)
            shutil.rmtree(project_dir, ignore_errors=True)
            raise
    click.echo(f"lab {lab.name} is up (mode {mode}, image {run.image}); project in {project_dir}")
    for node in topo.nodes:
        where = f"lab network {node.ip}, " if node.ip else ""
        volume = "" if node.is_sentinel else (f"volume {node.volume}" if node.volume else "no data volume")
        click.echo(f"  {node.name} ({node.role}): redis-cli -p {node.host_port}    [{where}{volume}]".replace(", ]", "]"))
    if topo.kind == "cluster":
        click.echo(f"use the cluster: redis-cli -c -p {topo.nodes[0].host_port}    (CLUSTER NODES, CLUSTER SHARDS)")
        click.echo("  (redirects name lab-network addresses; a Linux host reaches them directly, elsewhere use a "
                   "cluster client with an address remap, as the probe does)")
    if topo.sentinels:
        click.echo(f"ask a Sentinel for the master: redis-cli -p {topo.sentinels[0].host_port} "
                   f"SENTINEL get-master-addr-by-name {MASTER_NAME}")
        click.echo("  (it answers with the master's lab-network address; the list above says which node that is)")
    click.echo(f"remove it with: lab down {lab.name}")


@cli.command()
@click.pass_obj
def status(settings):
    """Running labs: their nodes, roles, states and ports."""
    containers = settings.engine.lab_containers()
    if not containers:
        click.echo("no lab is running")
        return
    names = {(c.project, ip): c.node for c in containers for ip in c.ips}
    rows = [(c.lab, c.node, c.role,
             role_now(c.host_port, {ip: node for (project, ip), node in names.items() if project == c.project})
             if c.state == "running" else "-", c.mode, c.state, c.ports, c.name, c.run) for c in containers]
    click.echo(tabulate(rows, headers=["lab", "node", "role at start", "role now (INFO)", "mode", "state", "ports",
                                       "container", "run"]))


@cli.command()
@click.argument("lab", required=False, metavar="[LAB]")
@click.option("--all", "everything", is_flag=True, help="remove every resource carrying the tool's labels")
@click.pass_obj
def down(settings, lab, everything):
    """Remove a lab's containers, networks and volumes (only what this tool made)."""
    from .topology import LABEL_LAB, project_name

    if not lab and not everything:
        raise UsageError("say which lab to remove", "`lab down LAB`, or `lab down --all`")
    if lab and not everything:
        lab = load_lab(lab).name
    removed = settings.engine.remove_labelled(LABEL_LAB if everything else f"{LABEL_LAB}={lab}")
    targets = list(state_dir().glob("lab-*")) if everything else [state_dir() / project_name(lab)]
    for directory in targets:
        shutil.rmtree(directory, ignore_errors=True)
    click.echo(f"removed {removed} containers, networks and volumes" + ("" if everything else f" of lab {lab}"))


@cli.command()
@click.argument("lab", metavar="LAB|PATH")
@click.argument("scenario")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100), help="run it N times")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="write the result object (a list with --repeat) to FILE")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards (remove it with `lab down`)")
@click.option("--explain", is_flag=True, help="say how each figure was measured")
@click.pass_obj
def run(settings, lab, scenario, mode, repeat, json_file, keep, explain):
    """Run one scenario: start the lab, write with the probe, inject the fault, recover,
    read every acknowledged key back, and check the expectation.

    \b
    Example:
      lab run persistence kill-restart --mode rdb
    """
    lab = load_lab(lab)
    chosen = lab.scenario(scenario)
    if mode:
        modes_to_run(lab, chosen, mode)
    if keep and repeat > 1:
        raise UsageError("--keep keeps one lab running; it cannot go with --repeat")
    run_settings = settings.run_settings(keep=keep)
    click.echo(f"running {lab.name} / {scenario} [mode {mode or default_mode(lab, chosen)}] ...", err=True)
    results = []
    for _ in range(repeat):
        result = run_scenario(lab, scenario, mode, run_settings, engine=settings.engine)
        click.echo(report.format_result(result, explain=explain))
        click.echo()
        results.append(result)
    if repeat > 1:
        click.echo(report.format_repeats(results))
    if json_file:
        report.write_json(json_file, results if repeat > 1 else results[0])
    if keep:
        click.echo(f"the lab is still running: `lab status`; remove it with `lab down {lab.name}`")
    _exit_for(results)


@cli.command()
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="write the result object to FILE")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards (remove it with `lab down`)")
@click.option("--explain", is_flag=True, help="say how each figure was measured")
@click.pass_context
def failover(ctx, json_file, keep, explain):
    """Watch a Sentinel failover: the same as `lab run sentinel kill-master`.

    One master, two replicas and three Sentinels; a probe writes through redis-py's
    Sentinel client; the master is SIGKILLed. The report shows which replica Sentinel
    promoted, how long writes were unavailable (client view), failover_s (Sentinel's
    own events), what was lost, and both timelines side by side.
    """
    ctx.invoke(run, lab="sentinel", scenario="kill-master", mode=None, repeat=1, json_file=json_file,
               keep=keep, explain=explain)


@cli.group()
def compare():
    """Run related scenarios side by side and print one table."""


@compare.command("persistence")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="write the results to FILE")
@click.pass_obj
def compare_persistence(settings, json_file):
    """Every persistence scenario in every mode (none, rdb, aof-everysec, aof-always,
    rdb+aof): one table with the modes as rows."""
    lab = load_lab("persistence")
    order = {mode: i for i, mode in enumerate(PERSISTENCE_MODES)}
    runs = sorted(plan([lab]), key=lambda r: order[r[2]])
    results = run_plan(runs, settings.run_settings(), on_result=lambda r: click.echo(report.verify_line(r), err=True))
    click.echo(report.format_compare(results))
    if json_file:
        report.write_json(json_file, results)
    _exit_for(results)


@cli.command()
@click.argument("labs", nargs=-1, metavar="[LAB|PATH]...")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path), help="write JUnit XML to FILE")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path), help="write the results to FILE")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 8),
              help="labs run at once, each on its own ports (--port-base + 20 per job); 1 measures every "
                   "run on an otherwise idle machine")
@click.pass_obj
def verify(settings, labs, junit_file, json_file, jobs):
    """Run every scenario of the labs (default: all) in every mode it declares; exit 1 if
    any outcome differs from its expectation. For CI."""
    loaded = [load_lab(name) for name in (labs or lab_names())]
    for lab in loaded:
        validate_lab(lab)
    results = run_plan(plan(loaded), settings.run_settings(), jobs=jobs,
                       on_result=lambda r: click.echo(report.verify_line(r)))
    click.echo()
    click.echo(report.format_verify(results))
    if junit_file:
        junit_file.write_text(report.junit_xml(results))
    if json_file:
        report.write_json(json_file, results)
    _exit_for(results)


def _exit_for(results) -> None:
    ctx = click.get_current_context()
    ctx.exit(EXIT_OK if all(r.passed for r in results) else EXIT_EXPECTATION_FAILED)


# ------------------------------------------------------------------ environment

@cli.command()
@click.pass_obj
def doctor(settings):
    """Check the Docker engine, compose v2, the image and free ports; say how to fix what is wrong."""
    findings = examine(settings.port_base, settings.requested_image)
    click.echo(tabulate([("ok" if f.ok else "FAIL", f.check, f.detail) for f in findings],
                        headers=["", "check", "detail"], maxcolwidths=[None, None, 80]))
    if not all(f.ok for f in findings):
        click.get_current_context().exit(2)


@cli.group()
def image():
    """The Redis image the nodes run."""


@image.command("build")
@click.option("--tag", default=LOCAL_IMAGE, show_default=True, help="name of the image to build")
@click.pass_obj
def image_build(settings, tag):
    """Build a Redis image offline, FROM scratch, with this machine's redis-server, redis-cli
    and the shared libraries ldd lists. Needs no registry."""
    version = build_local_image(settings.engine, tag)
    click.echo(f"built {tag} with Redis {version}")


@image.command("which")
@click.pass_obj
def image_which(settings):
    """Print the image a run will use (pulling the official one if it can); exit 2 if none."""
    choice = resolve_image(settings.engine, settings.requested_image)
    click.echo(choice.name)
    if choice.note:
        click.echo(f"note: {choice.note}", err=True)


def main() -> None:
    sys.exit(cli.main(prog_name="lab", standalone_mode=True))


if __name__ == "__main__":
    main()
