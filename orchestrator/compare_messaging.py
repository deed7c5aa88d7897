"""`lab compare messaging`: the messaging lab's results side by side, one row per fault, a
column for Pub/Sub and one for Streams. Pure formatting of finished results (it reads only
their scenario names, events, metrics and status), so it imports nothing else of the package.

A result's transport is its scenario name's prefix (`pubsub-...`, `stream-...`); its fault is
its first fault step as the timeline names it (`kill_consumer c1`, `pause_consumer c1`,
`kill master`), so scenarios that apply the same fault to both transports share a row.
Repeated runs of one scenario show each figure as a range (min-max).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tabulate import tabulate

if TYPE_CHECKING:
    from .measure.result import Result

TRANSPORTS = (("pubsub", "Pub/Sub"), ("stream", "Streams"))
FAULT_STEPS = ("kill_consumer", "pause_consumer", "kill", "stop", "pause", "partition", "power_loss")


def transport_of(result: "Result") -> str | None:
    prefix = result.scenario.split("-", 1)[0]
    return prefix if prefix in dict(TRANSPORTS) else None


def fault_of(result: "Result") -> str:
    """The first fault step on the run's timeline as its action and target (`kill master
    (redis-1)` -> `kill master`, `kill_consumer c1 True` -> `kill_consumer c1`); the scenario's
    name without its transport if it has none."""
    for event in result.events:
        words = event.what.split(" ")
        if event.source == "tool" and words[0] in FAULT_STEPS:
            return " ".join(words[:2])
    return result.scenario.split("-", 1)[-1]


def _figure(results: list["Result"], name: str, unit: str = "", decimals: int = 0) -> str | None:
    """The metric over the runs: one value, or min-max; None when no run measured it."""
    values = [r.metrics.get(name) for r in results if r.metrics.get(name) is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    text = _number(low, decimals) if low == high else f"{_number(low, decimals)}-{_number(high, decimals)}"
    return f"{text}{unit}"


def _number(value, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def cell(results: list["Result"]) -> str:
    """The key counts of one transport under one fault (several lines)."""
    if not results:
        return "-"
    measured = [r for r in results if r.status != "error"]
    verdicts = [r.status.upper() for r in results if r.status != "pass"]
    if not measured:
        return "ERROR: " + "; ".join(r.error for r in results)[:80]
    lines = [f"lost {_figure(measured, 'lost_messages')} of {_figure(measured, 'published')} published"]
    trimmed = _figure(measured, "trimmed")
    if trimmed not in (None, "0"):
        lines.append(f"  ({trimmed} trimmed by MAXLEN)")
    lines.append(f"duplicates {_figure(measured, 'duplicates')}, redelivered {_figure(measured, 'redelivered')}")
    pending = _figure(measured, "pending_at_end")
    if pending is not None:
        lines.append(f"pending at the end {pending}")
    lines.append(f"max lag {_figure(measured, 'max_delivery_lag_s', ' s', 2)}")
    lines.append(f"consumer outage {_figure(measured, 'consumer_outage_s', ' s', 2)}")
    lines.append(f"at {_figure(measured, 'published_per_s', ' msg/s')}")
    if len(results) > 1:
        lines.append(f"{len(results)} runs")
    if verdicts:
        lines.append(" ".join(dict.fromkeys(verdicts)))
    return "\n".join(lines)


def format_messaging_compare(results: list["Result"]) -> str:
    """One table: a row per fault (the scenarios under it named below it), a column per
    transport; then a legend saying what each figure is."""
    rows: dict[str, dict[str, list]] = {}
    scenarios: dict[str, list[str]] = {}
    for result in results:
        transport = transport_of(result)
        if transport is None:
            continue
        fault = fault_of(result)
        rows.setdefault(fault, {name: [] for name, _ in TRANSPORTS})[transport].append(result)
        named = scenarios.setdefault(fault, [])
        if result.scenario not in named:
            named.append(result.scenario)
    table = [[fault + "\n" + "\n".join(f"  {s}" for s in scenarios[fault])]
             + [cell(by_transport[name]) for name, _ in TRANSPORTS]
             for fault, by_transport in rows.items()]
    legend = [
        "lost: published (Redis replied to PUBLISH/XADD) but in no consumer's records; each consumer process",
        "  writes a line per message it receives. Pub/Sub keeps nothing for a subscriber that is not reading;",
        "  a stream keeps entries until MAXLEN trims them, and its group keeps what was read but not XACKed.",
        "duplicates: deliveries beyond the first; redelivered: taken over from the pending list (XAUTOCLAIM).",
        "max lag: publish to first receipt; consumer outage: longest an acknowledged message waited while no",
        "  consumer received anything; at: the producer's acknowledged rate before the fault.",
        "FAIL / ERROR: an expectation of labs/messaging.yaml missed / the run could not measure.",
    ]
    return (tabulate(table, headers=["fault"] + [title for _, title in TRANSPORTS], tablefmt="grid",
                     disable_numparse=True) + "\n\n" + "\n".join(legend))
