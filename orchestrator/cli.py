"""The `lab` command line. Thin: parse options, check them, call one function of the core, print.

What runs labs (Docker through python-on-whales, the servers through redis-py) is imported by
the commands that run labs, not here: `lab --help`, `lab list` and `lab validate` never load it.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from pathlib import Path

import click
from tabulate import tabulate

from . import report
from .engine.topology import DEFAULT_JOBS, DEFAULT_PORT_BASE, HIGHEST_PORT, LABEL_LAB, LABEL_RUN, LOWEST_PORT, UP_RUN_ID, project_name
from .errors import EXIT_EXPECTATION_FAILED, EXIT_OK, LabError, UsageError, exit_code_for
from .image import LOCAL_IMAGE, OFFICIAL_IMAGE
from .progress import Progress, colour_wanted, verdict_text
from .spec import ACTIONS, KINDS, PERSISTENCE_MODES, lab_names, load_all_labs, load_lab, load_plugins
from .spec.registry import ordered_metrics
from .spec.paths import state_dir

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
        except BrokenPipeError:
            # the reader went away (`lab list | head`): nothing more to say, and nothing to say it to
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except KeyboardInterrupt as exc:
            kept = getattr(ctx.obj, "kept", None)
            click.echo(f"interrupted: the lab was kept as asked (--keep); remove it with `{kept}`" if kept else
                       "interrupted: what this run had started was removed", err=True)
            ctx.exit(exit_code_for(exc))
        except Exception as exc:  # noqa: BLE001 - the one place that reports bugs
            traceback.print_exc()
            click.secho(f"error: this is a bug in redis-ha-lab ({type(exc).__name__}); please report it with the "
                        f"traceback above", err=True, fg="red")
            ctx.exit(exit_code_for(exc))


class Settings:
    """The global options, and the engine and image, found once when a command needs them."""

    def __init__(self, image: str | None, port_base: int):
        self.requested_image = image
        self.port_base = port_base
        self.kept: str | None = None       # the `lab down` command that removes a kept lab
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            from .engine.docker import Engine
            self._engine = Engine()
        return self._engine

    def run_settings(self, keep: bool = False):
        from .engine.lifecycle import RunSettings
        from .image import resolve_image

        self.engine.version()              # Docker down: one clear line before anything else
        choice = resolve_image(self.engine, self.requested_image)
        if choice.note:
            click.echo(f"note: {choice.note}", err=True)
        return RunSettings(image=choice.name, port_base=self.port_base, keep=keep)

    def check_ports(self, labs, extra_slots: int = 0) -> None:
        """The port base leaves room for the nodes of every lab (in every worker slot)."""
        from .kinds import kind_of
        from .suite import PORT_STRIDE

        for lab in labs:
            count = max(kind_of(lab).node_count(lab.topology.params, s.uses) for s in lab.scenarios.values())
            last = self.port_base + extra_slots * PORT_STRIDE + count - 1
            if last > HIGHEST_PORT:
                raise UsageError(f"--port-base {self.port_base} leaves no room for lab {lab.name!r} "
                                 f"({count} ports{' in each of the parallel jobs' if extra_slots else ''}; the highest "
                                 f"port is {HIGHEST_PORT})", f"use --port-base {HIGHEST_PORT - (last - self.port_base)} "
                                                             f"or lower")


def _port_base(ctx, param, value: int) -> int:
    if not LOWEST_PORT <= value <= HIGHEST_PORT:
        raise click.BadParameter(f"{value} is not a port from {LOWEST_PORT} to {HIGHEST_PORT} (ports below "
                                 f"{LOWEST_PORT} are reserved for system services)")
    return value


def writable_file(path: Path | None, option: str, make_parent: bool = False) -> Path | None:
    """Refuse, before anything runs, an output file that cannot be written (with `make_parent`,
    a missing directory is fine if it can be made)."""
    if path is None or str(path) == "-":
        return path
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory", f"give a file name, e.g. {path / 'result.json'}")
    parent = path.parent if str(path.parent) else Path(".")
    if make_parent:
        writable_dir(parent, option)
        return path
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist", f"create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write in {parent}", "choose a directory you can write to")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: the file is not writable", "choose another file")
    return path


def writable_dir(path: Path, option: str) -> Path:
    """Refuse, before anything runs, an output directory that cannot be made or written."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, not a directory", "give a directory (it is created if needed)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, so no directory can be made under it",
                         "choose another directory")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write in {existing}", "choose a directory you can write to")
    return path


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--image", envvar="LAB_IMAGE", default=None, metavar="IMAGE",
              help=f"Redis image for the nodes (env LAB_IMAGE). Default: the official {OFFICIAL_IMAGE}, or the "
                   f"offline {LOCAL_IMAGE} when that cannot be pulled.")
@click.option("--port-base", envvar="LAB_PORT_BASE", default=DEFAULT_PORT_BASE, show_default=True, type=int,
              callback=_port_base,
              help="first host port; nodes are published on 127.0.0.1:<port-base + n> (env LAB_PORT_BASE)")
@click.version_option(package_name="redis-ha-lab")
@click.pass_context
def cli(ctx, image, port_base):
    """Break Redis on purpose and see what a client saw.

    Each lab (labs/*.yaml) is a Redis topology plus scenarios: a probe writes distinct keys
    while a fault strikes (a SIGKILL, a shutdown, a lost volume, a torn AOF, a frozen or
    partitioned master); afterwards every key is read back. The tool reports how long writes
    were unavailable and which acknowledged writes were lost, and checks both against the
    scenario's expectation.

    \b
    Start here:
      lab list                                   what there is to run
      lab run persistence kill-restart --mode rdb
      lab failover                               watch Sentinel promote a replica
      lab compare persistence                    every persistence mode, one table
      lab compare messaging                      Pub/Sub against Streams under the same faults
      lab compare clients sentinel kill-master   real client libraries against the probe
      lab verify                                 everything; exit 1 on a deviation (for CI)

    Verdicts: PASS (measured, as expected), FAIL (measured, an expectation missed), ERROR
    (could not measure: the reason is given). Exit codes: 0 every run passed, 1 a run FAILed or
    ERRORed, 2 usage, lab file or environment error found before anything started (the message
    says how to fix it).
    """
    ctx.obj = Settings(image, port_base)


# ------------------------------------------------------------------ labs as data

@cli.command("list")
@click.option("--actions", "show_actions", is_flag=True, help="also list the step actions a lab file may use")
@click.option("--metrics", "show_metrics", is_flag=True, help="also list the metrics an expectation may name")
def list_labs(show_actions, show_metrics):
    """Labs and their scenarios, with one-line summaries."""
    load_plugins()
    for lab in load_all_labs():
        click.secho(f"{lab.name}", bold=True, nl=False)
        click.echo(f"  {lab.summary}")
        click.echo(f"  kind {lab.topology.kind}; modes: {', '.join(lab.topology.modes)} (default {lab.topology.persistence})")
        rows = [(name, ", ".join(s.modes), s.summary) for name, s in lab.scenarios.items()]
        click.echo(tabulate(rows, headers=["  scenario", "modes", "summary"], tablefmt="plain",
                            maxcolwidths=[None, 30, 60]))
        click.echo()
    if show_actions:
        rows = [(a.usage(), _applies(a.requires, a.modes), a.summary) for a in ACTIONS.values()]
        click.echo(tabulate(rows, headers=["action", "applies to", "what it does"], maxcolwidths=[None, 24, 60]))
        click.echo()
    if show_metrics:
        rows = [(m.name, m.unit, _applies(m.requires, None), m.short) for m in ordered_metrics()]
        click.echo(tabulate(rows, headers=["metric", "unit", "applies to", "meaning"], maxcolwidths=[None, None, 24, 60]))


def _applies(requires, modes) -> str:
    kinds = [k.name for k in KINDS.values() if requires <= k.capabilities]
    text = "every kind" if len(kinds) == len(KINDS) else "kind " + ", ".join(kinds)
    return text + (f"; modes {', '.join(modes)}" if modes else "")


@cli.command()
@click.argument("labs", nargs=-1, metavar="[LAB|PATH]...")
def validate(labs):
    """Check lab files and render every template; starts no container.

    Checks the YAML (UTF-8, no key given twice), the schema, actions and their arguments,
    whether each action, workload option and expected metric applies to the lab's kind and
    modes, targets, redis.conf settings that would fight the mode, and renders the compose file
    and redis.conf of every scenario in every mode. With no argument: every lab in labs/.
    """
    from .validate import validate_lab

    for name in labs or lab_names():
        lab = load_lab(name)
        rendered = validate_lab(lab)
        click.echo(f"ok  {lab.name} ({lab.path}): {len(lab.scenarios)} scenarios, {rendered} scenario/mode projects rendered")


@cli.command()
@click.argument("lab", metavar="LAB|PATH")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.option("--scenario", help="render with this scenario's settings (and the networks its faults need)")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("out"),
              show_default=True, help="directory to write compose.yaml and the redis.conf files to")
@click.pass_obj
def render(settings, lab, mode, scenario, output):
    """Write the compose project of a lab to a directory, to read or to run by hand
    (`docker compose -f DIR/compose.yaml up -d`)."""
    from .engine.render import render_project
    from .kinds import derive_topology

    writable_dir(output, "-o")
    lab = load_lab(lab)
    chosen = lab.scenario(scenario) if scenario else None
    mode = lab.check_mode(mode or lab.topology.persistence)
    settings.check_ports([lab])
    image = settings.requested_image or _image_for_render(settings)
    topo = derive_topology(lab, mode, run_id="manual", image=image, port_base=settings.port_base, scenario=chosen)
    compose = render_project(topo, output)
    click.echo(f"wrote {compose} and {', '.join(n.config_file for n in topo.nodes)} (mode {mode}, image {image})")
    click.echo(f"run it:    docker compose -f {compose} up -d")
    click.echo(f"remove it: docker compose -f {compose} down -v   (or `lab down {lab.name} --runs`)")


def _image_for_render(settings: Settings) -> str:
    try:
        from .image import resolve_image
        return resolve_image(settings.engine).name
    except LabError:
        return OFFICIAL_IMAGE


# ------------------------------------------------------------------ running labs

@cli.command()
@click.argument("lab", metavar="LAB|PATH")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.pass_obj
def up(settings, lab, mode):
    """Start a lab, wait until every node is ready, print how to connect. `lab down` removes it."""
    from .engine.lifecycle import bring_up, preflight, prepare, sigterm_as_interrupt, teardown
    from .kinds import kind_of

    lab = load_lab(lab)
    mode = lab.check_mode(mode or lab.topology.persistence)
    settings.check_ports([lab])
    run = settings.run_settings(keep=True)
    kind = kind_of(lab)
    topo = kind.derive(lab, mode, UP_RUN_ID, run.image, settings.port_base)
    preflight(topo, settings.engine)
    project_dir = state_dir() / topo.project
    handle = prepare(topo, project_dir)
    with sigterm_as_interrupt():
        try:
            bring_up(handle, kind)
        except BaseException:
            teardown(handle)
            shutil.rmtree(project_dir, ignore_errors=True)
            raise
    click.echo(f"lab {lab.name} is up (mode {mode}, image {run.image}); project in {project_dir}")
    if handle.first_attempt:
        click.echo(f"  (started a second time: the first start did not settle: {handle.first_attempt})")
    for node in topo.nodes:
        where = f"lab network {node.ip}, " if node.ip else ""
        volume = "" if node.is_sentinel else (f"volume {node.volume}" if node.volume else "no data volume")
        click.echo(f"  {node.name} ({node.role}): redis-cli -p {node.host_port}    [{where}{volume}]".replace(", ]", "]"))
    for line in kind.up_lines(topo):
        click.echo(line)
    click.echo(f"remove it with: lab down {lab.name}")


@cli.command()
@click.pass_obj
def status(settings):
    """Running labs: their nodes, roles, states and ports."""
    from .engine.nodes import role_now

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
@click.option("--run", "run_id", metavar="RUN", help="remove the run RUN of the lab (one `lab run --keep` left)")
@click.option("--runs", is_flag=True, help="also remove every scenario run of the lab (`lab run --keep`, or runs "
                                           "another process is still doing)")
@click.option("--all", "everything", is_flag=True, help="remove every resource carrying the tool's labels")
@click.pass_obj
def down(settings, lab, run_id, runs, everything):
    """Remove what `lab up LAB` made (containers, networks, volumes and its project directory).
    Scenario runs of the lab are left alone unless you name one (--run) or all (--runs)."""
    if everything:
        from .engine.unsynced import unmount_leftovers

        removed = settings.engine.remove_labelled(LABEL_LAB)
        unmounted = unmount_leftovers("/")          # power-loss filesystems a killed run left mounted
        for directory in state_dir().glob("lab-*"):
            shutil.rmtree(directory, ignore_errors=True)
        click.echo(f"removed {removed} containers, networks and volumes"
                   + (f", and unmounted {unmounted} power-loss filesystems" if unmounted else ""))
        return
    if not lab:
        raise UsageError("say which lab to remove", "`lab down LAB`, or `lab down --all`")
    lab = load_lab(lab).name
    if runs:
        removed = settings.engine.remove_labelled(f"{LABEL_LAB}={lab}")
        directories = list(state_dir().glob(f"{project_name(lab)}-*")) + [state_dir() / project_name(lab)]
        what = f"of lab {lab} (`lab up` and every run)"
    else:
        chosen = run_id or UP_RUN_ID
        removed = settings.engine.remove_labelled(f"{LABEL_LAB}={lab}", f"{LABEL_RUN}={chosen}")
        directories = [state_dir() / project_name(lab, chosen)]
        what = f"of lab {lab}" + (f" run {run_id}" if run_id else "")
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    click.echo(f"removed {removed} containers, networks and volumes {what}")


@cli.command()
@click.argument("lab", metavar="LAB|PATH")
@click.argument("scenario")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 100), help="run it N times")
@click.option("--json", "json_file", type=click.Path(path_type=Path),
              help="write the result object (a list with --repeat) to FILE (`-`: standard output, and the "
                   "report to standard error)")
@click.option("--html", "html_path", type=click.Path(path_type=Path),
              help="draw the run as an HTML page at FILE (with --repeat: a directory with an index and a page "
                   "per run); plotly.js is written beside it, so keep the folder together")
@click.option("--client", "client_command", metavar="'COMMAND ...'",
              help="run this program as the workload instead of the probe (it learns where the lab is from "
                   "LAB_* environment variables and reports each attempt as a JSON line: see README)")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards (remove it with `lab down`)")
@click.option("--explain", is_flag=True, help="say how each figure was measured")
@click.pass_obj
def run(settings, lab, scenario, mode, repeat, json_file, keep, explain, html_path=None, client_command=None):
    """Run one scenario: start the lab, write with the probe, inject the fault, recover,
    read every key back, and check the expectation.

    \b
    Example:
      lab run persistence kill-restart --mode rdb
    """
    from .scenario import new_run_id, run_scenario

    writable_file(json_file, "--json")
    if html_path is not None:
        writable_dir(html_path, "--html") if repeat > 1 else writable_file(html_path, "--html", make_parent=True)
    lab = load_lab(lab)
    chosen = lab.scenario(scenario)
    if client_command is not None:
        from .compare_clients import with_client

        if not client_command.strip():
            raise UsageError("--client needs a command", "e.g. --client 'node my-client.js'")
        lab = with_client(lab, scenario, client_command)
    if mode:
        lab.modes_to_run(chosen, mode)
    if keep and repeat > 1:
        raise UsageError("--keep keeps one lab running; it cannot go with --repeat")
    settings.check_ports([lab])
    run_settings = settings.run_settings(keep=keep)
    out = _Out(json_file)
    label = f"{lab.name} {scenario} [{mode or lab.default_mode(chosen)}]"
    progress = Progress(total=repeat)
    results = []
    try:
        for i in range(repeat):
            run_id = new_run_id()
            if keep:
                settings.kept = f"lab down {lab.name} --run {run_id}"
            result = run_scenario(lab, scenario, mode, run_settings, engine=settings.engine, run_id=run_id,
                                  progress=lambda phase, acked, i=i: progress.phase(i, label, phase, acked))
            progress.finished(i, result.duration_s)
            progress.close()
            out.echo(report.format_result(result, explain=explain, style=out.style) + "\n")
            results.append(result)
    finally:
        progress.close()
    if repeat > 1:
        out.echo(report.format_repeats(results))
    if json_file:
        report.write_json(json_file, results if repeat > 1 else results[0])
    if html_path is not None:
        out.echo(_write_html([r.as_dict() for r in results], html_path, single=repeat == 1))
    if keep:
        out.echo(f"the lab is still running: `lab status`; remove it with `{settings.kept}`")
    _exit_for(results)


def _write_html(results: list[dict], path: Path, single: bool) -> str:
    """Write the HTML report (one page, or an index and a page per run); say where."""
    from . import htmlreport

    if single:
        path.parent.mkdir(parents=True, exist_ok=True)
        written = htmlreport.write_run_page(results[0], path)
        return f"wrote {written} (open it in a browser; plotly.js is beside it)"
    written = htmlreport.write_report(results, path)
    return f"wrote {written} and {len(results)} run pages (open the index in a browser)"


class _Out:
    """Where the human-readable report goes: standard output, or standard error when the JSON
    result goes to standard output (`--json -`). Verdicts are coloured on a terminal."""

    def __init__(self, json_file):
        self.to_stderr = json_file is not None and str(json_file) == "-"
        self.stream = sys.stderr if self.to_stderr else sys.stdout

    def echo(self, text: str = "") -> None:
        click.echo(text, err=self.to_stderr, color=colour_wanted(self.stream) or None)

    def style(self, verdict: str) -> str:
        return verdict_text(verdict, self.stream)


def _suite(settings, runs, jobs: int, out: _Out) -> list:
    """Run a plan with a live progress line; print each run's verdict as it ends."""
    from .suite import run_plan

    names = [f"{lab.name} {scenario} [{mode}]" for lab, scenario, mode in runs]
    index_of = {(lab.name, scenario, mode): i for i, (lab, scenario, mode) in enumerate(runs)}
    progress = Progress(total=len(runs))

    def finished(result) -> None:
        progress.finished(index_of[(result.lab, result.scenario, result.mode)], result.duration_s)
        progress.echo(report.verify_line(result, style=out.style), err=out.to_stderr)

    try:
        return run_plan(runs, settings.run_settings(), jobs=jobs, on_result=finished,
                        on_progress=lambda i, phase, acked: progress.phase(i, names[i], phase, acked))
    finally:
        progress.close()


@cli.command()
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="write the result object to FILE")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="draw the run as an HTML page at FILE")
@click.option("--keep", is_flag=True, help="leave the lab running afterwards (remove it with `lab down`)")
@click.option("--explain", is_flag=True, help="say how each figure was measured")
@click.pass_context
def failover(ctx, json_file, html_path, keep, explain):
    """Watch a Sentinel failover: the same as `lab run sentinel kill-master`.

    One master, two replicas and three Sentinels; a probe writes through redis-py's
    Sentinel client; the master is SIGKILLed. The report shows which replica Sentinel
    promoted, how long writes were unavailable (client view), failover_s (Sentinel's
    own events), what was lost, and both timelines side by side.
    """
    ctx.invoke(run, lab="sentinel", scenario="kill-master", mode=None, repeat=1, json_file=json_file,
               keep=keep, explain=explain, html_path=html_path, client_command=None)


@cli.group()
def compare():
    """Run related scenarios side by side and print one table."""


@compare.command("persistence")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="write the results to FILE")
@click.option("--html", "html_dir", type=click.Path(path_type=Path),
              help="write an HTML report to DIR: index.html (the scenario x mode matrix) and a page per run")
@click.option("--jobs", "-j", default=DEFAULT_JOBS, show_default=True, type=click.IntRange(1, 8),
              help="runs at once, each on its own ports (--port-base + 20 per job)")
@click.pass_obj
def compare_persistence(settings, json_file, html_dir, jobs):
    """Every persistence scenario in every mode (none, rdb, aof-no, aof-everysec, aof-always,
    rdb+aof): one table with the modes as rows. A run that could not measure shows ERROR."""
    from .suite import plan

    writable_file(json_file, "--json")
    if html_dir is not None:
        writable_dir(html_dir, "--html")
    lab = load_lab("persistence")
    settings.check_ports([lab], extra_slots=jobs - 1)
    order = {mode: i for i, mode in enumerate(PERSISTENCE_MODES)}
    runs = sorted(plan([lab]), key=lambda r: order[r[2]])
    out = _Out(json_file)
    results = _suite(settings, runs, jobs, out)
    out.echo(report.format_compare(results))
    if json_file:
        report.write_json(json_file, results)
    if html_dir is not None:
        out.echo(_write_html([r.as_dict() for r in results], html_dir, single=False))
    _exit_for(results)


@compare.command("messaging")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="write the results to FILE")
@click.option("--html", "html_dir", type=click.Path(path_type=Path), help="write an HTML report to DIR")
@click.option("--jobs", "-j", default=DEFAULT_JOBS, show_default=True, type=click.IntRange(1, 8),
              help="runs at once, each on its own ports (--port-base + 20 per job)")
@click.pass_obj
def compare_messaging(settings, json_file, html_dir, jobs):
    """Pub/Sub against Streams under the same faults (a consumer killed, a consumer stalled, the
    master failed over): one table, faults as rows, with what was lost, delivered twice and
    redelivered, measured from what the consumers recorded."""
    from .compare_messaging import format_messaging_compare
    from .suite import plan

    writable_file(json_file, "--json")
    if html_dir is not None:
        writable_dir(html_dir, "--html")
    lab = load_lab("messaging")
    settings.check_ports([lab], extra_slots=jobs - 1)
    out = _Out(json_file)
    results = _suite(settings, plan([lab]), jobs, out)
    out.echo(format_messaging_compare(results))
    if json_file:
        report.write_json(json_file, results)
    if html_dir is not None:
        out.echo(_write_html([r.as_dict() for r in results], html_dir, single=False))
    _exit_for(results)


@compare.command("clients")
@click.argument("lab", metavar="LAB|PATH")
@click.argument("scenario")
@click.option("--client", "commands", multiple=True, metavar="'COMMAND ...'",
              help="also run this program as a client (repeatable); see README for what it must print")
@click.option("--no-reference", is_flag=True, help="run only the --client programs (and the probe), not the "
                                                   "reference clients")
@click.option("--mode", type=click.Choice(PERSISTENCE_MODES), help=MODE_HELP)
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="write the results to FILE")
@click.pass_obj
def compare_clients_command(settings, lab, scenario, commands, no_reference, mode, json_file):
    """The same scenario with the tool's probe and with real client libraries, configured as an
    application configures them (redis-py with its own retries, ioredis, node-redis, Predis; and
    any program given with --client): one table of what each saw, how it found the new master,
    and the library setting behind a long outage. A client whose runtime is missing is skipped,
    with the reason. Exit 1 only if a run could not measure (ERROR): a client's FAIL is a finding.

    \b
    Example:
      lab compare clients sentinel kill-master
    """
    from .compare_clients import compare_clients, format_clients_table
    from .scenario import run_scenario

    writable_file(json_file, "--json")
    chosen = load_lab(lab)
    chosen.scenario(scenario)
    if mode:
        chosen.modes_to_run(chosen.scenario(scenario), mode)
    settings.check_ports([chosen])
    run_settings = settings.run_settings()
    out = _Out(json_file)
    progress = Progress(total=1)

    def one(lab_, name, mode_):
        result = run_scenario(lab_, name, mode_, run_settings, engine=settings.engine,
                              progress=lambda phase, acked: progress.phase(0, f"{lab_.name} {name}", phase, acked))
        progress.close()
        return result

    rows = compare_clients(chosen, scenario, one, mode=mode, commands=commands, reference=not no_reference,
                           on_result=lambda row: out.echo(f"{row.name}: " + (f"skipped ({row.skipped})" if row.skipped
                                                                            else report.verify_line(row.result, out.style))))
    out.echo()
    out.echo(format_clients_table(rows))
    results = [row.result for row in rows if row.result is not None]
    if json_file:
        report.write_json(json_file, results)
    click.get_current_context().exit(EXIT_EXPECTATION_FAILED if any(r.errored for r in results) else EXIT_OK)


@cli.command()
@click.argument("labs", nargs=-1, metavar="[LAB|PATH]...")
@click.option("--junit", "junit_file", type=click.Path(path_type=Path), help="write JUnit XML to FILE")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="write the results to FILE")
@click.option("--html", "html_dir", type=click.Path(path_type=Path),
              help="write an HTML report to DIR: index.html (every run, coloured by verdict) and a page per run")
@click.option("--jobs", "-j", default=DEFAULT_JOBS, show_default=True, type=click.IntRange(1, 8),
              help="labs run at once, each on its own ports (--port-base + 20 per job); 1 measures every "
                   "run on an otherwise idle machine")
@click.pass_obj
def verify(settings, labs, junit_file, json_file, html_dir, jobs):
    """Run every scenario of the labs (default: all) in every mode it declares; exit 1 if
    any run FAILed (an expectation missed) or ERRORed (could not measure). For CI: every run
    ends in the table, the JSON (`status`) and the JUnit file (<failure>, <error>)."""
    from .suite import plan
    from .validate import validate_lab

    writable_file(junit_file, "--junit")
    writable_file(json_file, "--json")
    if html_dir is not None:
        writable_dir(html_dir, "--html")
    loaded = [load_lab(name) for name in (labs or lab_names())]
    for lab in loaded:
        validate_lab(lab)
    settings.check_ports(loaded, extra_slots=jobs - 1)
    out = _Out(json_file)
    results = _suite(settings, plan(loaded), jobs, out)
    out.echo()
    out.echo(report.format_verify(results))
    if junit_file:
        junit_file.write_text(report.junit_xml(results))
    if json_file:
        report.write_json(json_file, results)
    if html_dir is not None:
        out.echo(_write_html([r.as_dict() for r in results], html_dir, single=False))
    _exit_for(results)


@cli.command("report")
@click.argument("result_file", metavar="RESULT.json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--html", "html_path", type=click.Path(path_type=Path), required=True,
              help="FILE for one result (lab run --json), DIR for a list (lab verify/compare --json)")
def report_command(result_file, html_path):
    """Draw the HTML pages again from a saved `--json` result: one run page, or an index and a
    page per run. Needs no Docker."""
    import json

    try:
        data = json.loads(result_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{result_file} is not a JSON result of lab ({exc})",
                         "give a file written by `lab run --json`, `lab verify --json` or `lab compare --json`") from None
    single = isinstance(data, dict)
    if not single and not (isinstance(data, list) and all(isinstance(r, dict) for r in data)):
        raise UsageError(f"{result_file} holds neither a result object nor a list of them",
                         "give a file written by `lab run --json` or `lab verify --json`")
    writable_file(html_path, "--html", make_parent=True) if single else writable_dir(html_path, "--html")
    click.echo(_write_html([data] if single else data, html_path, single=single))


def _exit_for(results) -> None:
    """0 if every run passed (a run this machine cannot do is skipped, and says so), else 1."""
    ctx = click.get_current_context()
    ctx.exit(EXIT_OK if all(r.passed or r.skipped for r in results) else EXIT_EXPECTATION_FAILED)


# ------------------------------------------------------------------ environment

@cli.command()
@click.pass_obj
def doctor(settings):
    """Check the Docker engine, compose v2, the image and free ports; say how to fix what is wrong."""
    from .doctor import examine

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
    from .image import build_local_image

    version = build_local_image(settings.engine, tag)
    click.echo(f"built {tag} with Redis {version}")


@image.command("which")
@click.pass_obj
def image_which(settings):
    """Print the image a run will use (pulling the official one if it can); exit 2 if none."""
    from .image import resolve_image

    choice = resolve_image(settings.engine, settings.requested_image)
    click.echo(choice.name)
    if choice.note:
        click.echo(f"note: {choice.note}", err=True)


def main() -> None:
    sys.exit(cli.main(prog_name="lab", standalone_mode=True))


if __name__ == "__main__":
    main()
