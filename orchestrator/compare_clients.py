"""`lab compare clients LAB SCENARIO`: the same scenario run once with the tool's own probe and
once per client library (the reference clients under workloads/clients/, and programs the user
names), each as the `external` workload; one table of what each saw.

Every figure in the table is a metric of that client's own run (unavailable_s, errors by kind,
lost, indeterminate), the difference is its unavailable_s minus the probe's run, and "how it
found the new master" is read from the client's own error sequence (the `external` workload's
timeline line: the errors from its last acknowledged write before the fault to its first one
after it) and the notes the library gave. The explanation of a row names the library setting
behind what was measured (its documented default) and what to change.

This module imports nothing of the package (its floor in tests/unit/test_architecture.py is
the package's own): the caller hands it `run(lab, scenario, mode) -> Result`, e.g.
`lambda lab, name, mode: suite.run_guarded(lab, name, mode, settings, engine)`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from tabulate import tabulate

CLIENTS_DIR = Path(__file__).resolve().parent / "workloads" / "clients"
SEQUENCE = "errors until the first ack after the fault: "   # workloads/external.py's timeline line
PROBE = "lab probe"
SAME_AS_PROBE_S = 0.25       # a difference within this is reported as "as fast as the probe"
RUNTIME_CHECK_TIMEOUT_S = 20
NODE_MAJOR_NEEDED = 20        # ioredis 6 and redis 6 (package.json beside the clients) declare node >= 20


def clients_dir() -> Path:
    """Where scripts/setup installs the reference clients' libraries (node_modules/): $LAB_CLIENTS_DIR,
    else $XDG_CACHE_HOME/redis-ha-lab/clients (default ~/.cache/redis-ha-lab/clients)."""
    given = os.environ.get("LAB_CLIENTS_DIR")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "redis-ha-lab" / "clients"


@dataclass(frozen=True)
class ClientProgram:
    """A client to compare: its name, the command that runs it, or why it cannot run here."""

    name: str
    command: str | None
    skipped: str = ""


def _runs(argv: list[str]) -> str:
    """"" if `argv` exits 0, else what it said (or that it is missing)."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUNTIME_CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(argv[:2])} failed: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return said[-1][:160] if said else f"exit code {done.returncode}"
    return ""


def _node_major() -> int | None:
    """The major version of `node` on PATH (None if it does not say)."""
    try:
        done = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=RUNTIME_CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.match(r"v(\d+)\.", done.stdout.strip())
    return int(found.group(1)) if found else None


def _node_client(name: str, script: str, package: str) -> ClientProgram:
    modules = clients_dir() / "node_modules"
    if shutil.which("node") is None:
        return ClientProgram(name, None, "Node.js (`node`) is not installed (scripts/setup installs it on Debian)")
    major = _node_major()
    if major is not None and major < NODE_MAJOR_NEEDED:
        return ClientProgram(name, None, f"Node.js {major} is too old: ioredis 6 and node-redis 6 need {NODE_MAJOR_NEEDED} "
                                         f"or later")
    if not (modules / package / "package.json").is_file():
        return ClientProgram(name, None, f"npm package {package!r} is not installed in {modules} "
                                         f"(scripts/setup installs it; or set LAB_CLIENTS_DIR)")
    command = f"env NODE_PATH={shlex.quote(str(modules))} node {shlex.quote(str(CLIENTS_DIR / script))}"
    return ClientProgram(name, command)


def _predis_client() -> ClientProgram:
    if shutil.which("php") is None:
        return ClientProgram("predis", None, "PHP (`php`) is not installed (Debian: php-cli php-predis)")
    problem = _runs(["php", "-r", "require 'Predis/autoload.php'; echo Predis\\Client::VERSION;"])
    if problem:
        return ClientProgram("predis", None, f"Predis is not installed (Debian: php-predis): {problem}")
    return ClientProgram("predis", f"php {shlex.quote(str(CLIENTS_DIR / 'predis_client.php'))}")


def _redis_py_client() -> ClientProgram:
    problem = _runs([sys.executable, "-c", "import redis"])
    if problem:
        return ClientProgram("redis-py", None, f"redis-py does not import in {sys.executable}: {problem}")
    return ClientProgram("redis-py", f"{shlex.quote(sys.executable)} {shlex.quote(str(CLIENTS_DIR / 'redis_py_client.py'))}")


def reference_clients() -> list[ClientProgram]:
    """The reference clients, each with its command or the reason it cannot run here."""
    return [_redis_py_client(), _node_client("ioredis", "ioredis_client.js", "ioredis"),
            _node_client("node-redis", "node_redis_client.js", "redis"), _predis_client()]


# ------------------------------------------------------------------ running

@dataclass
class ClientRun:
    """One row: a client (or the probe), and the result of its run, or why it was skipped."""

    name: str
    command: str | None
    result: Any = None          # orchestrator.measure.result.Result
    skipped: str = ""

    @property
    def version(self) -> str:
        found = _client_event(self.result)
        return found[1] if found else ""

    @property
    def library(self) -> str:
        found = _client_event(self.result)
        return found[0] if found else self.name


def with_client(lab, scenario_name: str, command: str):
    """`lab` with the scenario's workload replaced by the external program `command` (the
    expectations stay: they are the probe's, and say how far the client is from them)."""
    scenario = lab.scenario(scenario_name)
    workload = replace(scenario.workload, name="external", options={"command": command})
    return replace(lab, scenarios={**lab.scenarios, scenario_name: replace(scenario, workload=workload)})


def compare_clients(lab, scenario_name: str, run: Callable[[Any, str, str | None], Any], mode: str | None = None,
                    commands: Iterable[str] = (), reference: bool = True,
                    on_result: Callable[[ClientRun], None] = lambda row: None) -> list[ClientRun]:
    """Run the scenario with the probe, then with every reference client (unless `reference` is
    False) and every command of `commands`; one ClientRun per row, in that order. A client
    whose runtime is missing is skipped with the reason, not run."""
    lab.scenario(scenario_name)                 # an unknown scenario fails before anything runs
    programs = (reference_clients() if reference else []) + [ClientProgram(_name_of(c), c) for c in commands]
    rows = []
    probe = ClientRun(PROBE, None, result=run(lab, scenario_name, mode))
    rows.append(probe)
    on_result(probe)
    for program in programs:
        if program.command is None:
            row = ClientRun(program.name, None, skipped=program.skipped)
        else:
            row = ClientRun(program.name, program.command, result=run(with_client(lab, scenario_name, program.command),
                                                                      scenario_name, mode))
        rows.append(row)
        on_result(row)
    return rows


def _name_of(command: str) -> str:
    words = shlex.split(command)
    script = next((w for w in reversed(words) if "." in os.path.basename(w)), words[0] if words else command)
    return os.path.basename(script)


# ------------------------------------------------------------------ reading a result

def _client_event(result) -> tuple[str, str] | None:
    """(library, version) the program said in its first line, from the timeline."""
    if result is None:
        return None
    for event in result.events:
        if event.source == "client" and event.what.startswith("client ") and not event.what.startswith("client note"):
            words = event.what.split()
            if len(words) >= 3:
                return words[1], words[2]
    return None


def sequence_of(result) -> tuple[list[tuple[str, int, float]], bool] | None:
    """The client's error runs after the fault [(kind, attempts, seconds)] and whether it
    wrote again, from the external workload's timeline line; None for the probe."""
    line = next((e.what for e in result.events if e.source == "client" and e.what.startswith(SEQUENCE)), None)
    if line is None:
        return None
    text = line[len(SEQUENCE):]
    recovered = text.endswith(", then ok")
    runs = [(kind, int(count), float(span))
            for kind, count, span in re.findall(r"(.+?) x(\d+) \(([0-9.]+) s\)(?:, |$)", text)]
    return runs, recovered


def collapse(runs: list[tuple[str, int, float]]) -> list[tuple[str, int, float]]:
    """Runs of the same kind added up, in the order each kind first appeared."""
    total: dict[str, list] = {}
    for kind, count, span in runs:
        entry = total.setdefault(kind, [0, 0.0])
        entry[0] += count
        entry[1] += span
    return [(kind, count, round(span, 3)) for kind, (count, span) in total.items()]


def last_backoff_ms(result) -> int | None:
    """The last reconnect delay the library announced before the client's first ack after the
    fault (ioredis' `reconnecting` event, as a note), in milliseconds; None if it said none."""
    recovered = next((e.t for e in result.events if e.what.startswith("first ack after the fault")), None)
    delays = [int(m.group(1)) for e in result.events
              if (recovered is None or e.t <= recovered) and (m := re.match(r"client note: reconnecting in (\d+) ms",
                                                                          e.what))]
    return delays[-1] if delays else None


def status_of(result) -> str:
    """The run's verdict; a FAIL only on expectations of metrics this workload does not report
    (the cluster's per-shard figures, for an external program) shows as `pass*`."""
    failed = [c for c in result.checks if not c.passed]
    if result.status == "fail" and failed and all(c.metric not in result.metrics for c in failed):
        return "PASS*"
    return result.status.upper()


def notes_of(result) -> list[str]:
    return [e.what[len("client note: "):] for e in result.events if e.what.startswith("client note: ")]


_CONNECTION = ("connection refused", "connection reset", "connection closed", "unreachable", "retries exhausted",
               "no master")


STALE_MARGIN_S = 1.0    # a lost_window_s longer than this: it went on writing to a master that lost its writes
PROMPT_S = 1.0          # a library that heard of the new master within this of +switch-master moved at once


def stale_s(result) -> float | None:
    """Seconds over which the client was acknowledged by a master whose writes were then thrown
    away (its lost_window_s), when it lost more than one write (one write in flight is not
    writing on) over more than STALE_MARGIN_S; else None."""
    window = result.metrics.get("lost_window_s") or 0.0
    return round(window, 3) if (result.metrics.get("lost") or 0) > 1 and window > STALE_MARGIN_S else None


def heard_after_switch_s(result) -> float | None:
    """From the Sentinels' first +switch-master to the library's own word of a new master (a
    `topology-change MASTER_CHANGE` note after the fault), in seconds; None if it said none."""
    switch = next((e.t for e in result.events if e.source == "server" and "+switch-master" in e.what), None)
    if switch is None:
        return None
    heard = next((e.t for e in result.events if e.what.startswith("client note: topology-change MASTER_CHANGE")
                  and e.t >= switch), None)
    return None if heard is None else round(heard - switch, 3)


def _demoted_by(result) -> str:
    """The error that ended a run of writes to the old master (the first failed write), if any."""
    return next((e.what.split(": ", 1)[1] for e in result.events if e.what.startswith("first failed write: ")), "")


def how_found(result, probe=None) -> str:
    """How the client got to the new master, in words, from its own error sequence, its loss
    (writes acknowledged by the old master and thrown away) and what its library said."""
    if result is None or result.error:
        return ""
    found = sequence_of(result)
    if found is None:
        return "asks Sentinel / the nodes again after each error (the tool's probe)"
    runs, recovered = found
    kinds = [kind for kind, _, _ in runs]
    said = ", ".join(f"{kind} x{count}" + (f" ({span:.2f} s)" if span >= 0.05 else "")
                     for kind, count, span in collapse(runs)) or "no error"
    stale, heard = stale_s(result), heard_after_switch_s(result)
    if stale is not None:
        ending = (f"went on writing to the old master, which acknowledged {result.metrics.get('lost')} writes over "
                  f"{stale:.1f} s that were then lost")
        if heard is not None and heard <= PROMPT_S:
            ending += f"; moved when its library heard of the new master ({heard:.2f} s after +switch-master)"
        else:
            demoted = _demoted_by(result)
            ending += "; moved only when the old master was demoted" + (f" ({demoted})" if demoted else "")
        return f"{said} -> {ending}"
    if not recovered:
        ending = "never wrote again before the run ended"
    elif not runs and _froze(result):
        ending = "no write failed: the write in flight hung on the frozen master's connection (no timeout) until it " \
                 "woke, then the next write went to the new master"
    elif not runs:
        ending = "no write failed: the write in flight waited (queued or retried inside the library) until the new " \
                 "master answered"
    elif kinds[-1] == "READONLY":
        ending = "was told READONLY by the demoted master, then asked again and found the new one"
    elif kinds[-1] in ("MOVED", "ASK"):
        ending = "followed the redirect to the promoted replica"
    elif kinds[-1] == "CLUSTERDOWN":
        ending = "waited out CLUSTERDOWN until the slot map had a master again"
    elif kinds[-1] == "timeout":
        ending = "its writes timed out until it reached the new master"
    elif kinds[-1] in _CONNECTION:
        ending = "kept reconnecting to the old address until it learnt the new master (on reconnect)"
    else:
        ending = "found the new master after these errors"
    extra = f" (its library heard of the new master {heard:.2f} s after +switch-master)" if heard is not None else ""
    return f"{said} -> {ending}{extra}"


# ------------------------------------------------------------------ explaining a row

# The settings behind what a library does during a failover, by library and by what the client
# saw (the last kind of error before it wrote again). Defaults as the installed versions ship
# them (read from their source: ioredis 6.0.0, redis 6.3.1 / @redis/client, redis-py 8.1,
# Predis 1.1.10).
_SETTINGS = {
    "ioredis": {
        "stale": "the connection stays on the old master while it is frozen (no commandTimeout) or cut off from the "
                 "Sentinels (it still answers), and with failoverDetector off nothing tells ioredis of "
                 "+switch-master. Change: failoverDetector: true (it reconnects on +switch-master), and "
                 "commandTimeout (e.g. 1000) for a frozen master",
        "connection": "retryStrategy (default: min(2^(n-1) x 50 ms, 5 s) + up to 200 ms jitter before reconnect n; "
                      "with Sentinel it asks the Sentinels at each reconnect, failoverDetector is off, so "
                      "+switch-master is not heard). Change: retryStrategy: n => Math.min(n * 50, 500), or "
                      "failoverDetector: true",
        "timeout": "no commandTimeout by default: a write to a frozen master waits until the connection drops. "
                   "Change: commandTimeout (e.g. 1000) and a retryStrategy that reconnects at once",
        "READONLY": "reconnectOnError is null by default: READONLY from a demoted master does not make it "
                    "reconnect. Change: reconnectOnError: err => err.message.startsWith('READONLY') ? 2 : false",
        "cluster": "Cluster: retryDelayOnFailover / retryDelayOnClusterDown 100 ms, clusterRetryStrategy "
                   "min(100 + 2n, 2000) ms, slotsRefreshInterval off (the slot map is refreshed on MOVED or a "
                   "failed node). Change: lower retryDelayOnClusterDown, or set slotsRefreshInterval",
    },
    "node-redis": {
        "stale": "the Sentinel client moves only when one Sentinel's pub/sub tells it of a new master "
                 "(topology-change MASTER_CHANGE); until then writes go to the old master, and with no socket "
                 "timeout a write to a frozen one waits. Change: socket.socketTimeout",
        "connection": "socket.reconnectStrategy (default: min(2^n x 50 ms, 2 s) + up to 200 ms jitter; no "
                      "reconnect at all after a socket timeout); the Sentinel client re-reads the topology when "
                      "its master connection fails (scanInterval off). Change: reconnectStrategy: n => "
                      "Math.min(n * 50, 500)",
        "timeout": "no socket timeout by default: a write to a frozen master waits. Change: "
                   "socket.socketTimeout, and a reconnectStrategy that reconnects after a timeout",
        "READONLY": "READONLY is returned to the caller; the Sentinel client rediscovers on "
                    "maxCommandRediscovers (16). Change: retry READONLY in the application",
        "cluster": "Cluster: after a node's connection fails, the slot map is refreshed only "
                   "topologyRefreshOnReconnectionAttemptStrategy (default 5000 ms) after the first reconnection "
                   "attempt; writes for the dead master's slots wait until then (the one in flight ends with "
                   "TimeoutError). Change: topologyRefreshOnReconnectionAttemptStrategy: 500",
    },
    "redis-py": {
        "stale": "the connection stays on the old master while it is frozen (socket_timeout is None) or cut off "
                 "from the Sentinels (it still answers); redis-py asks the Sentinels only when it opens a "
                 "connection or gets READONLY and never hears +switch-master. Change: socket_timeout=0.5 (a "
                 "timed-out write drops the connection, the next one asks Sentinel); against a partition only "
                 "min-replicas-to-write on the server helps",
        "connection": "retry=Retry(ExponentialWithJitterBackoff(base=10 ms, cap=1 s), 10): one write retries for "
                      "up to several seconds inside the library; Sentinel's pool asks the Sentinels only when it "
                      "opens a connection (it does not hear +switch-master). Change: a shorter Retry, "
                      "socket_connect_timeout",
        "timeout": "socket_timeout is None by default: a write to a frozen master blocks until the server answers. "
                   "Change: socket_timeout (e.g. 0.5 s) so the pool reconnects and asks Sentinel again",
        "READONLY": "the Sentinel-managed connection drops itself on READONLY and asks Sentinel again (redis-py "
                    "#3867 for the cases it misses). Change: nothing beyond retrying the write",
        "cluster": "RedisCluster: cluster_error_retry_attempts 10 with back-off, the slot map refreshed after "
                   "reinitialize_steps (5) MOVED replies or a connection error. Change: fewer retries, "
                   "socket_connect_timeout",
    },
    "predis": {
        "stale": "the connection stays on the old master while it is frozen (read_write_timeout is PHP's "
                 "default_socket_timeout, 60 s) or cut off from the Sentinels (it still answers); Predis asks the "
                 "Sentinels only after a connection error. Change: read_write_timeout 0.5; against a partition "
                 "only min-replicas-to-write on the server helps",
        "connection": "Sentinel replication: on a connection error it asks the Sentinels again and retries up to "
                      "retryLimit (20) times, waiting retryWait (1000 ms) each time: recovery comes in 1 s steps. "
                      "Change: setRetryWait(100) on the replication connection",
        "timeout": "read_write_timeout defaults to PHP's default_socket_timeout (60 s): a write to a frozen master "
                   "blocks that long. Change: read_write_timeout (e.g. 1)",
        "READONLY": "READONLY goes to the caller as a ServerException; Predis does not rediscover on it. Change: "
                    "catch it and call $client->getConnection()->querySentinel()",
        "cluster": "Cluster ('cluster' => 'redis'): the slot map is asked again on MOVED; a dead node's "
                   "connection error goes to the caller. Change: retry in the application",
    },
}


def _group(error: str) -> str:
    if error in ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN"):
        return "cluster"
    if error in ("READONLY", "timeout"):
        return error
    return "connection"


def behind_probe(result, probe) -> float | None:
    """How much longer this client waited than the probe: the difference of unavailable_s
    beyond each run's own failover_s when both runs report one (failover timing varies from run
    to run by a second; the client's part does not), else of unavailable_s itself."""
    if probe is None or result is None:
        return None
    mine, theirs = result.metrics.get("unavailable_s"), probe.metrics.get("unavailable_s")
    if mine is None or theirs is None:
        return None
    own, their = result.metrics.get("failover_s"), probe.metrics.get("failover_s")
    if own is not None and their is not None:
        return round((mine - own) - (theirs - their), 3)
    return round(mine - theirs, 3)


def _froze(result) -> bool:
    """Whether the scenario froze a node (docker pause): a connection to it hangs, nothing fails."""
    return any(e.source == "tool" and e.what.startswith("pause ") for e in result.events)


def explain(row: ClientRun, probe) -> str:
    """Why this client's outage is what it is: the library setting behind it and what to change."""
    if row.skipped:
        return f"skipped: {row.skipped}"
    result = row.result
    if result.error:
        return f"the run could not measure: {result.error}"
    if row.name == PROBE:
        return ("the tool's probe: no hidden retries, 0.25 s socket timeouts, asks Sentinel (or the slot map) again "
                "after every error, 10 ms between attempts")
    unavailable = result.metrics.get("unavailable_s")
    behind = behind_probe(result, probe)
    found = sequence_of(result)
    runs = found[0] if found else []
    kinds = [kind for kind, _, _ in runs]
    cluster = bool(result.shards)
    stale, heard = stale_s(result), heard_after_switch_s(result)
    if stale is not None and heard is not None and heard <= PROMPT_S:
        group = "announced"
    elif stale is not None:
        group = "stale"
    elif cluster:
        group = "cluster"
    elif "timeout" in kinds or (not kinds and _froze(result)):
        group = "timeout"      # no error at all against a frozen master: the write in flight waited for it
    else:
        group = _group(kinds[-1]) if kinds else "connection"
    settings = _SETTINGS.get(row.library, {}).get(group)
    if group == "stale" and settings is None:
        settings = "it kept writing to a master that had been replaced; a client should time out writes and ask " \
                   "Sentinel again (or listen to +switch-master)"
    if stale is not None:
        lead = f"{result.metrics.get('lost')} acknowledged writes lost over {stale:.1f} s"
        if probe is not None:
            lead += (f" (the probe: {probe.metrics.get('lost')} over {probe.metrics.get('lost_window_s') or 0:.1f} s"
                     f" in its own run)")
    elif unavailable is None:
        lead = "did not write again within the run"
    elif behind is None:
        lead = f"unavailable {unavailable:.2f} s"
    else:
        if behind <= SAME_AS_PROBE_S:
            return f"within {SAME_AS_PROBE_S:g} s of the probe ({behind:+.2f} s): nothing to change for this fault"
        lead = f"{behind:.2f} s longer than the probe"
    backoff = last_backoff_ms(result)
    if backoff is not None:
        lead += f" (its last reconnect before writing again waited {backoff} ms)"
    if heard is not None:
        lead += f" (it heard of the new master {heard:.2f} s after the Sentinels announced it)"
    if group == "announced":
        return (f"{lead}: it moved as soon as the Sentinels announced the new master; what it lost is the failover "
                f"window itself, which no client setting shortens. Change (server): min-replicas-to-write / "
                f"min-replicas-max-lag bound it (scenario partition-master-min-replicas)")
    if settings is None:
        return f"{lead}; a client of its own: look at its reconnect back-off and timeouts"
    return f"{lead}: {settings}"


# ------------------------------------------------------------------ the table

def _figure(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_clients_table(rows: list[ClientRun]) -> str:
    """The comparison: one line per client (and the probe), then each row's explanation. `vs
    probe` is behind_probe: seconds the client waited beyond what the probe waited."""
    found = next((r for r in rows if r.name == PROBE and r.result is not None and not r.result.error), None)
    probe = found.result if found else None
    table, notes = [], []
    for index, row in enumerate(rows, start=1):
        result = row.result
        if row.skipped or result is None:
            table.append([index, row.name, "", "skipped", "-", "-", "-", "-", "-", "-", row.skipped])
        else:
            metrics = result.metrics
            unavailable = metrics.get("unavailable_s")
            behind = None if row.name == PROBE else behind_probe(result, probe)
            delta = "" if behind is None else f"{behind:+.2f}"
            kinds = ", ".join(f"{kind} {count}" for kind, count in
                              sorted(result.error_kinds.items(), key=lambda item: -item[1])) or "none"
            table.append([index, row.library if row.name != PROBE else PROBE, row.version, status_of(result),
                          _figure(metrics.get("failover_s")), _figure(unavailable), delta or "-", kinds, _figure(metrics.get("lost")),
                          _figure(metrics.get("indeterminate")), how_found(result) if row.name != PROBE else
                          "asks again after every error"])
        notes.append(f"[{index}] {row.library if row.result is not None else row.name}: "
                     f"{explain(row, probe)}")
    header = ["#", "client", "version", "status", "failover_s", "unavailable_s", "vs probe", "errors by kind", "lost",
              "indeterminate", "how it found the new master"]
    if any(r.result is not None and status_of(r.result) == "PASS*" for r in rows):
        notes.append("PASS*: every expectation met except those on metrics the external workload does not report "
                     "(the cluster's per-shard figures)")
    return tabulate(table, headers=header, tablefmt="github", disable_numparse=True) + "\n\n" + "\n".join(notes)
