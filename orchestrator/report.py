"""Present results: tables for people (tabulate), JSON and JUnit XML for machines."""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from tabulate import tabulate

from .measure.result import Result
from .spec import METRICS

WIDTH = 100


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def format_result(result: Result, explain: bool = False, style=lambda verdict: verdict) -> str:
    lines = [f"{result.lab} / {result.scenario}  [mode {result.mode}, image {result.image}]",
             _wrap(result.summary), ""]
    if result.errored:
        lines += [_wrap(f"ERROR: the run could not measure: {result.error}", indent=""), ""]
    if result.skipped:
        lines += [_wrap(f"SKIP: not run on this machine: {result.error}", indent=""), ""]
    rows = [(name, _value(value), METRICS[name].unit, METRICS[name].method if explain else METRICS[name].short)
            for name, value in result.metrics.items() if value is not None]
    if rows:
        lines.append(tabulate(rows, headers=["metric", "value", "unit", "how it was measured" if explain else "meaning"],
                              tablefmt="simple", maxcolwidths=[None, None, None, 60 if not explain else 70]))
        lines.append("")
    checks = [(c.metric + (" (every run)" if c.built_in else ""), str(c.bound), _value(c.observed), verdict(c.passed))
              for c in result.checks]
    if checks:
        lines.append(tabulate(checks, headers=["expectation", "expected", "observed", "verdict"], tablefmt="simple"))
        lines.append("")
    if result.mislabelled:
        kinds = ", ".join(f"{count} {kind}" for kind, count in result.mislabelled.items())
        lines += [_wrap(f"writes the probe recorded as refused (fail) were present afterwards: {kinds}; those "
                        f"error kinds do not mean 'not applied'", indent=""), ""]
    if result.shards:
        lines.append("per shard (slot map at probe start; longest_gap_s = longest wait for an ack after the fault):")
        lines.append(tabulate([(r["shard"], r["master_at_start"], ", ".join(r["replicas"]), r["slots"], r["acked"],
                                r["lost"], r["errors"], _value(r["longest_gap_s"])) for r in result.shards],
                              headers=["shard", "master", "replicas", "slots", "acked", "lost", "errors",
                                       "longest_gap_s"], tablefmt="simple"))
        lines.append("")
    if result.roles:
        lines.append("roles at the end (INFO replication): "
                     + "; ".join(f"{node} {role}" for node, role in result.roles.items()))
        if result.promoted:
            lines.append(f"promoted: {', '.join(result.promoted)}")
        lines.append("")
    lines.append("timeline (seconds since the lab was ready; client = what the probe saw; server = the servers' own "
                 "events: Sentinel's channels or the cluster nodes' logs, each shown once with the nodes that "
                 "reported it):")
    lines.append(tabulate([(f"{t:8.3f}", source, what) for t, source, what in condensed(result.events)],
                          headers=["t", "source", "event"], tablefmt="plain", disable_numparse=True,
                          maxcolwidths=[None, None, 110]))
    if result.error_kinds:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(result.error_kinds.items(), key=lambda kv: -kv[1]))
        lines += ["", f"failed write attempts by kind: {kinds}"]
    lines += ["", "what this shows:", _wrap(result.explain), ""]
    if result.skipped:
        lines.append(f"{style('SKIP')}: not run ({result.error})")
    elif result.errored:
        lines.append(f"{style('ERROR')}: could not measure ({result.error}) after {result.duration_s:.1f} s")
    else:
        lines.append(f"{style(result.verdict)}: {sum(c.passed for c in result.checks)} of {len(result.checks)} expectations "
                     f"met in {result.duration_s:.1f} s"
                     + ("" if explain else "  (--explain says how each figure is measured)"))
    return "\n".join(lines)


SAME_EVENT_WINDOW_S = 2.0


def condensed(events) -> list[tuple[float, str, str]]:
    """(t, source, what) rows: a server event that several Sentinels published within
    SAME_EVENT_WINDOW_S of the first shows once, naming them all."""
    rows: list[list] = []
    open_groups: dict[str, list] = {}
    for e in events:
        if e.source != "server" or ": " not in e.what:
            rows.append([e.t, e.source, e.what, []])
            continue
        sentinel, text = e.what.split(": ", 1)
        group = open_groups.get(text)
        if group is not None and e.t - group[0] <= SAME_EVENT_WINDOW_S:
            group[3].append(f"{sentinel} +{e.t - group[0]:.3f}")
            continue
        group = [e.t, "server", text, [sentinel]]
        open_groups[text] = group
        rows.append(group)
    return [(t, source, f"{what}  [{', '.join(who)}]" if who else what) for t, source, what, who in rows]


def format_repeats(results: list[Result]) -> str:
    """min / median / max of each metric over repeated runs of one scenario."""
    names = [n for n in METRICS if any(r.metrics.get(n) is not None for r in results)]
    rows = []
    for name in names:
        values = [r.metrics[name] for r in results if r.metrics.get(name) is not None]
        rows.append((name, _value(min(values)), _value(statistics.median(values)), _value(max(values)), len(values)))
    passed = sum(r.passed for r in results)
    errored = sum(r.errored for r in results)
    return (f"{len(results)} runs, {passed} passed" + (f", {errored} could not measure (ERROR)" if errored else "") + "\n"
            + tabulate(rows, headers=["metric", "min", "median", "max", "runs"], tablefmt="simple"))


COMPARE_EXTRAS = (("writes_per_s", "kill-restart"), ("load_s", "kill-restart"), ("server_load_s", "kill-restart"),
                  ("dataset_keys", "kill-restart"), ("fsyncs_per_s", "power-loss"))


def format_compare(results: list[Result]) -> str:
    """One table, modes as rows: what each scenario lost per mode, write rate, recovery times,
    and how often the mode made the filesystem fsync."""
    scenarios = list(dict.fromkeys(r.scenario for r in results))
    modes = list(dict.fromkeys(r.mode for r in results))
    by_key = {(r.mode, r.scenario): r for r in results}
    extras = [(m, s) for m, s in COMPARE_EXTRAS if s in scenarios]
    headers = ["mode"] + scenarios + [f"{m}\n({s})" for m, s in extras]
    rows = []
    for mode in modes:
        row = [mode] + [_loss_cell(by_key[(mode, s)]) if (mode, s) in by_key else "n/a" for s in scenarios]
        row += [_value(by_key[(mode, s)].metrics.get(m)) if (mode, s) in by_key else "-" for m, s in extras]
        rows.append(row)
    legend = [
        "Each scenario cell: lost / acked before the fault (lost_before_fault_pct), and over how many seconds the",
        "  lost writes had been acknowledged (lost_window_s). lost = acknowledged writes (probe SET probe:<n>)",
        "  missing when every one is read back with MGET after recovery; FAIL marks a run whose expectation",
        "  (labs/persistence.yaml) was not met, ERROR a run that could not measure, SKIP one this machine cannot do.",
        "  lost can exceed the acked count by a write or two whose +OK was still on its way (through Docker's port",
        "  proxy) when the server died: the client saw it acknowledged after the fault.",
        "power-loss: the data directory forgets what was not fsynced (a FUSE filesystem modelling a disk and Linux's",
        "  writeback); the other scenarios are process faults, which the kernel's page cache survives. everysec",
        "  (rdb+aof too) can still lose the writes acknowledged while Redis postponed the AOF write(2) behind a",
        "  running background fsync (up to 2 s of them; usually none).",
        "writes_per_s: the probe's acknowledged writes per second before the fault (one connection).",
        "load_s: restart step to the probe's first acknowledged write: container start, load, Docker's port proxy.",
        "server_load_s: the load time in Redis' own log; dataset_keys: INFO keyspace just before the kill.",
        "fsyncs_per_s: fsync/fdatasync calls per second the filesystem saw under the probe's load (power-loss).",
        "n/a: the scenario is not run in that mode (labs/persistence.yaml says why: no AOF to truncate, or",
        "  everysec's postponed AOF writes, which would blur what the truncation loses).",
    ]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) + "\n\n" + "\n".join(legend)


def _loss_cell(r: Result) -> str:
    if r.errored or r.skipped:
        return r.verdict
    pct = r.metrics.get("lost_before_fault_pct")
    cell = f"{_value(r.metrics.get('lost'))}/{_value(r.metrics.get('acked_before_fault'))}" + (f" ({pct:g}%)" if pct is not None else "")
    window = r.metrics.get("lost_window_s")
    if r.metrics.get("lost") and window:
        cell += f", {_value(window)} s"
    return cell if r.passed else f"{cell} FAIL"


def deviations(r: Result) -> str:
    """What kept a run from passing, in a few words."""
    failed = [f"{c.metric}={_value(c.observed)} (expected {c.bound})" for c in r.checks if not c.passed]
    if r.error:
        failed.append(f"{'not run' if r.skipped else 'could not measure'}: {r.error}")
    return "; ".join(failed)


def _headline(r: Result, name: str):
    """acked and lost, or what the workload calls them (a message workload: published, lost_messages)."""
    other = {"acked": "published", "lost": "lost_messages"}[name]
    return r.metrics.get(name, r.metrics.get(other))


def format_verify(results: list[Result]) -> str:
    rows = []
    for r in results:
        rows.append((r.lab, r.scenario, r.mode, r.verdict, _value(_headline(r, "acked")),
                     _value(_headline(r, "lost")), _value(r.metrics.get("unavailable_s")),
                     _value(r.metrics.get("failover_s")), f"{r.duration_s:.1f}", deviations(r)))
    table = tabulate(rows, headers=["lab", "scenario", "mode", "verdict", "acked", "lost", "unavailable_s", "failover_s",
                                    "took_s", "deviation"], tablefmt="simple", disable_numparse=True,
                     maxcolwidths=[None] * 9 + [60])
    counts = {status: sum(r.status == status for r in results) for status in ("pass", "fail", "error", "skip")}
    total_s = sum(r.duration_s for r in results)
    legend = ("acked, lost: writes acknowledged and lost (messaging: messages published and lost); "
              "unavailable_s: the longest any key waited for an acknowledgement after the fault (in the cluster: "
              "the slowest shard); failover_s: fault to the servers' announcement of the new master; "
              "ERROR: the run could not measure (the deviation says why).")
    skipped = f", {counts['skip']} skipped (SKIP: this machine lacks what they need)" if counts["skip"] else ""
    return (f"{table}\n\n{_wrap(legend, indent='')}\n\n{counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['error']} could not measure (ERROR){skipped} in {total_s:.1f} s of scenario time")


def verify_line(r: Result, style=lambda verdict: verdict) -> str:
    """One line per run as it finishes; `style` may colour the verdict."""
    if r.skipped:
        return f"{style('SKIP')}  {r.lab} {r.scenario} [{r.mode}]  not run: {r.error}"
    if r.errored:
        return f"{style('ERROR')} {r.lab} {r.scenario} [{r.mode}]  could not measure: {r.error} ({r.duration_s:.1f} s)"
    if "acked" in r.metrics or "published" not in r.metrics:
        counts = f"acked={_value(r.metrics.get('acked'))} lost={_value(r.metrics.get('lost'))}"
    else:
        counts = f"published={_value(r.metrics['published'])} lost_messages={_value(r.metrics.get('lost_messages'))}"
    line = (f"{style(r.verdict)}{' ' * (5 - len(r.verdict))} {r.lab} {r.scenario} [{r.mode}]  {counts} "
            f"unavailable_s={_value(r.metrics.get('unavailable_s'))}")
    if r.metrics.get("failover_s") is not None:
        line += f" failover_s={_value(r.metrics['failover_s'])}"
    line += f" ({r.duration_s:.1f} s)"
    return line if r.passed else f"{line}  {deviations(r)}"


def write_json(path: Path, results: list[Result] | Result) -> None:
    """The result object (or a list of them) as JSON; `-` writes to standard output."""
    data = results.as_dict() if isinstance(results, Result) else [r.as_dict() for r in results]
    text = json.dumps(data, indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(path).write_text(text)


def junit_xml(results: list[Result]) -> str:
    """JUnit XML: one testsuite per lab, one testcase per scenario and mode; a FAIL is a
    <failure>, an ERROR (could not measure) an <error>."""
    root = ET.Element("testsuites", name="redis-ha-lab", tests=str(len(results)),
                      failures=str(sum(r.failed for r in results)), errors=str(sum(r.errored for r in results)),
                      skipped=str(sum(r.skipped for r in results)))
    for lab in dict.fromkeys(r.lab for r in results):
        mine = [r for r in results if r.lab == lab]
        suite = ET.SubElement(root, "testsuite", name=lab, tests=str(len(mine)),
                              failures=str(sum(r.failed for r in mine)), errors=str(sum(r.errored for r in mine)),
                              time=f"{sum(r.duration_s for r in mine):.3f}")
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"{r.lab}.{r.scenario}", name=f"{r.scenario}[{r.mode}]",
                                 time=f"{r.duration_s:.3f}")
            if r.skipped:
                ET.SubElement(case, "skipped", message=f"not run: {r.error}")
            elif r.errored:
                message = f"could not measure: {r.error}"
                ET.SubElement(case, "error", message=message, type="CouldNotMeasure").text = message
            elif r.failed:
                failed = [c for c in r.checks if not c.passed]
                message = "; ".join(f"{c.metric} = {_value(c.observed)}, expected {c.bound}" for c in failed)
                ET.SubElement(case, "failure", message=message, type="ExpectationFailed").text = message
            metrics = ", ".join(f"{k}={_value(v)}" for k, v in r.metrics.items() if v is not None)
            ET.SubElement(case, "system-out").text = metrics
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
