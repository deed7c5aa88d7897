"""Read one run result (the dict `--json` writes) into what the pages draw.

Every field is read defensively: a result saved by an older version (no `status`, no
`timeline`) still renders, with what it lacks said on the page instead of a traceback.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

VERDICTS = ("pass", "fail", "error")
SOURCES = ("tool", "server", "client")
MAIN_COUNTS = ("ok", "published")  # drawn as the main (upward) stack; the rest count against it
SAME_EVENT_WINDOW_S = 2.0  # a server event several nodes report within this span shows once


def finite(value) -> bool:
    """A number the chart can place: int or float, not bool, not NaN or infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def verdict(result: dict) -> str:
    """"pass", "fail" or "error": the result's `status`, or for results that predate it,
    "error" when `error` is set and otherwise `passed`."""
    status = str(result.get("status") or "").lower()
    if status in VERDICTS:
        return status
    if result.get("error"):
        return "error"
    return "pass" if result.get("passed") else "fail"


@dataclass(frozen=True)
class Marker:
    """One numbered event: a tool step, a server event (condensed over the nodes that
    reported it within SAME_EVENT_WINDOW_S) or what the client saw. `t` in seconds since
    the lab was ready."""
    number: int
    t: float
    source: str
    text: str
    label: str               # a few words naming it; `text` is the full story
    reporters: tuple = ()    # ("sentinel-2", "sentinel-3 +0.073 s", ...) for condensed server events
    key: bool = False        # named on the chart, not only numbered (see is_key)


def markers(result: dict) -> list[Marker]:
    """Every event in time order, numbered from 1, server events condensed."""
    rows: list[dict] = []
    open_groups: dict[str, dict] = {}
    events = sorted((e for e in result.get("events") or [] if isinstance(e, dict) and finite(e.get("t"))),
                    key=lambda e: e["t"])
    for event in events:
        source = event.get("source") if event.get("source") in SOURCES else "tool"
        what = str(event.get("what", ""))
        node, sep, text = what.partition(": ")
        if source != "server" or not sep or " " in node:
            rows.append({"t": event["t"], "source": source, "text": what, "who": []})
            continue
        group = open_groups.get(text)
        if group is not None and event["t"] - group["t"] <= SAME_EVENT_WINDOW_S:
            group["who"].append(f"{node} +{event['t'] - group['t']:.3f} s")
            continue
        group = {"t": event["t"], "source": source, "text": text, "who": [node]}
        open_groups[text] = group
        rows.append(group)
    edges = {w["from"] for w in windows(result)} | {w["to"] for w in windows(result) if w.get("to") is not None}
    found = []
    for i, row in enumerate(rows, start=1):
        label = short_label(row["source"], row["text"])
        found.append(Marker(number=i, t=row["t"], source=row["source"], text=row["text"], label=label,
                            reporters=tuple(row["who"]), key=is_key(row["source"], label, row["t"], edges)))
    return found


KEY_SERVER_LABELS = {"+sdown", "+odown", "+switch-master", "+convert-to-slave", "FAIL", "election won",
                     "state fail", "state ok"}


def is_key(source: str, label: str, t: float, window_edges: set) -> bool:
    """Named on the chart: the tool steps that open or close a fault window (the fault and
    the heal), and the server events that mark a failover's stages."""
    if source == "tool":
        return any(abs(t - edge) < 1e-6 for edge in window_edges)
    return source == "server" and label in KEY_SERVER_LABELS


_CLUSTER_LABELS = (
    (re.compile(r"as failing|FAIL message", re.I), "FAIL"),
    (re.compile(r"Cluster state changed: (\w+)", re.I), "state {0}"),
    (re.compile(r"election won", re.I), "election won"),
    (re.compile(r"Start of election delayed", re.I), "election delayed"),
    (re.compile(r"Starting a failover election", re.I), "election"),
    (re.compile(r"Failover auth granted", re.I), "vote"),
    (re.compile(r"configEpoch set", re.I), "configEpoch"),
    (re.compile(r"Clear FAIL state", re.I), "FAIL cleared"),
)


def short_label(source: str, text: str) -> str:
    """A few words naming the event: Sentinel's event name (`+switch-master`), the kind of
    cluster log line (`FAIL`, `election`, `state ok`), or the step's first words."""
    if source == "server":
        if text[:1] in "+-":
            return text.split(" ", 1)[0]
        for pattern, label in _CLUSTER_LABELS:
            match = pattern.search(text)
            if match:
                return label.format(*match.groups())
    words = re.split(r"[\s:(]+", text.strip())
    label = " ".join(words[:2])
    return label if len(label) <= 22 else label[:21] + "…"


@dataclass(frozen=True)
class Series:
    """Attempts per bucket for one series ("all", or one cluster shard). `counts` maps an
    outcome name to its per-bucket counts, the main one (ok / published) first."""
    name: str
    start_t: float
    bucket_s: float
    counts: dict = field(default_factory=dict)

    @property
    def main(self) -> str | None:
        return next(iter(self.counts), None)

    @property
    def end_t(self) -> float:
        length = max((len(v) for v in self.counts.values()), default=0)
        return self.start_t + length * self.bucket_s


def timeline(result: dict) -> dict:
    """The result's `timeline`, or an empty one (no series, windows, outage or rug)."""
    value = result.get("timeline")
    return value if isinstance(value, dict) else {}


def series(result: dict) -> list[Series]:
    """The timeline's series with their counts ordered main first; those without any bucket
    dropped."""
    line = timeline(result)
    bucket_s = line.get("bucket_s") if finite(line.get("bucket_s")) and line.get("bucket_s") > 0 else 0.1
    found = []
    for entry in line.get("series") or []:
        if not isinstance(entry, dict):
            continue
        counts = {str(k): [n if finite(n) else 0 for n in v]
                  for k, v in (entry.get("counts") or {}).items() if isinstance(v, list)}
        if not any(counts.values()):
            continue    # no bucket at all; a series of zeros is drawn (a shard that took no write)
        main = next((name for name in MAIN_COUNTS if name in counts), next(iter(counts)))
        ordered = {main: counts[main], **{k: v for k, v in counts.items() if k != main}}
        start_t = entry.get("start_t") if finite(entry.get("start_t")) else 0.0
        found.append(Series(name=str(entry.get("name", "all")), start_t=float(start_t), bucket_s=float(bucket_s),
                            counts=ordered))
    return found


def windows(result: dict) -> list[dict]:
    """Fault-to-heal windows as {from, to (None: never healed), what}."""
    return [w for w in timeline(result).get("windows") or []
            if isinstance(w, dict) and finite(w.get("from")) and (w.get("to") is None or finite(w.get("to")))]


def outage(result: dict) -> dict | None:
    span = timeline(result).get("outage")
    if isinstance(span, dict) and all(finite(span.get(k)) for k in ("from", "to")):
        return span
    return None


def lost_acks(result: dict) -> list[float]:
    return [t for t in timeline(result).get("lost_acks_t") or [] if finite(t)]


def format_value(value) -> str:
    """A metric value as the terminal report shows it: "-" when not measured, floats to
    three decimals without trailing zeros."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_bound(expect: dict) -> str:
    """{min, max} as "= 1", "2 .. 5", "≤ 50" or "≥ 2"."""
    low, high = expect.get("min"), expect.get("max")
    if low is not None and high is not None:
        return f"= {format_value(low)}" if low == high else f"{format_value(low)} .. {format_value(high)}"
    if high is not None:
        return f"≤ {format_value(high)}"
    if low is not None:
        return f"≥ {format_value(low)}"
    return "any"
