"""Run results for the HTML report tests: three real `--json` results (captured from
`lab failover`, `lab run cluster kill-master` and `lab run persistence kill-restart --mode rdb`)
plus the fields the runner will add (`status`, `summary`, `explain`, `metric_info`, `timeline`),
synthesised here from what each real result says.

The timeline is built from the result's own figures: the probe runs from the "probe starts"
to the "probe stopped" event at the measured `writes_per_s`; a series acknowledges nothing
inside its gap; the failed attempts counted in `error_kinds` are spread over the gap (kinds
naming a timeout or a reset are "info", the rest "fail"); `lost` lost writes are spread over
the `lost_window_s` that ends at the last acknowledged write before the fault. It is a
plausible drawing of the run, not the probe's record.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

HERE = Path(__file__).parent
BUCKET_S = 0.1


def _load(name: str) -> dict:
    return json.loads((HERE / name).read_text())


def metric_info() -> dict:
    """{metric: {unit, short, method}} as the metric registry describes them."""
    return _load("metric-info.json")


def scenario_texts() -> dict:
    """{"lab/scenario": {summary, explain}} from labs/*.yaml."""
    return _load("scenario-texts.json")


def _event_t(result: dict, prefix: str, source: str | None = None) -> float:
    for event in result["events"]:
        if event["what"].startswith(prefix) and (source is None or event["source"] == source):
            return event["t"]
    raise KeyError(f"no event starting with {prefix!r}")


def _counts(start_t: float, end_t: float, rate_per_s: float, gap: tuple[float, float],
            failed: int, unknown: int) -> dict[str, list[int]]:
    """Attempts per bucket: `rate_per_s` acknowledged outside `gap`, the failed and unknown
    attempts spread evenly over the gap's buckets. A gentle ripple keeps it from looking ruled."""
    buckets = max(1, math.ceil((end_t - start_t) / BUCKET_S))
    ok, fail, info = [0] * buckets, [0] * buckets, [0] * buckets
    gap_buckets = []
    for i in range(buckets):
        lo, hi = start_t + i * BUCKET_S, start_t + (i + 1) * BUCKET_S
        covered = max(0.0, min(hi, gap[1]) - max(lo, gap[0])) / BUCKET_S
        ripple = 1 + 0.08 * math.sin(i * 0.7) + 0.05 * math.cos(i * 2.3)
        ok[i] = round(rate_per_s * BUCKET_S * (1 - covered) * ripple)
        if covered > 0:
            gap_buckets.append(i)
    for n, target in ((failed, fail), (unknown, info)):
        for k in range(n):
            if gap_buckets:
                target[gap_buckets[k * len(gap_buckets) // n]] += 1
    return {"ok": ok, "fail": fail, "info": info}


def _split_errors(result: dict) -> tuple[int, int]:
    unknown = sum(n for kind, n in result["error_kinds"].items()
                  if "timeout" in kind.lower() or "reset" in kind.lower())
    return result["metrics"]["errors"] - unknown, unknown


def _lost_acks(result: dict) -> list[float]:
    lost = result["metrics"]["lost"] or 0
    if not lost:
        return []
    end = _event_t(result, "last ack before the fault", "client")
    span = result["metrics"].get("lost_window_s") or 0.0
    return [round(end - span + span * k / max(1, lost - 1), 4) for k in range(lost)]


def _add_common(result: dict, metrics_info: dict) -> dict:
    texts = scenario_texts().get(f"{result['lab']}/{result['scenario']}", {})
    result["status"] = "pass" if result["passed"] else "fail"
    result["summary"] = texts.get("summary", "")
    result["explain"] = texts.get("explain", "")
    result["metric_info"] = {name: metrics_info[name] for name in result["metrics"]
                             if name in metrics_info}
    return result


def _single_series_timeline(result: dict, window: dict) -> dict:
    probe_from = _event_t(result, "probe starts", "tool")
    probe_to = _event_t(result, "probe stopped", "tool")
    outage = (_event_t(result, "last ack before the fault", "client"),
              _event_t(result, "first ack after the fault", "client"))
    failed, unknown = _split_errors(result)
    start = math.floor(probe_from / BUCKET_S) * BUCKET_S
    return {
        "bucket_s": BUCKET_S,
        "series": [{"name": "all", "start_t": round(start, 3),
                    "counts": _counts(start, probe_to, result["metrics"]["writes_per_s"],
                                      outage, failed, unknown)}],
        "windows": [window],
        "outage": {"from": outage[0], "to": outage[1], "metric": "unavailable_s"},
        "lost_acks_t": _lost_acks(result),
        "probe": {"from": probe_from, "to": probe_to},
    }


def sentinel_result() -> dict:
    """`lab failover`: Sentinel kill-master, PASS, nothing lost."""
    return _killed_until_started("sentinel-kill-master.json", "start old-master")


def persistence_result() -> dict:
    """Persistence kill-restart in mode rdb: PASS, about 9300 acknowledged writes lost."""
    return _killed_until_started("persistence-kill-restart-rdb.json", "start master")


def _killed_until_started(recorded: str, start_step: str) -> dict:
    """A recorded single-series run whose fault window runs from `kill master` to `start_step`."""
    result = _add_common(_load(recorded), metric_info())
    window = {"from": _event_t(result, "kill master", "tool"),
              "to": _event_t(result, start_step, "tool"),
              "what": "redis-1 killed (SIGKILL) until started again"}
    result["timeline"] = _single_series_timeline(result, window)
    return result


def cluster_result() -> dict:
    """Cluster kill-master: one series per shard, the killed shard's gap runs from the kill
    to the election; the others wait the CLUSTERDOWN window (their `longest_gap_s`) before
    the cluster state returns to ok."""
    result = _add_common(_load("cluster-kill-master.json"), metric_info())
    probe_from = _event_t(result, "probe starts", "tool")
    probe_to = _event_t(result, "probe stopped", "tool")
    kill_t = _event_t(result, "kill master", "tool")
    state_ok_t = _event_t(result, "redis-5: Cluster state changed: ok", "server")
    start = math.floor(probe_from / BUCKET_S) * BUCKET_S
    series = []
    for shard in result["shards"]:
        gap = (state_ok_t - shard["longest_gap_s"], state_ok_t)
        rate = shard["acked"] / max(0.1, (probe_to - probe_from) - shard["longest_gap_s"])
        unknown = 1 if shard["shard"] == 0 else 0
        series.append({"name": f"shard {shard['shard']} ({shard['master_at_start']})",
                       "start_t": round(start, 3),
                       "counts": _counts(start, probe_to, rate, gap,
                                         shard["errors"] - unknown, unknown)})
    result["timeline"] = {
        "bucket_s": BUCKET_S,
        "series": series,
        "windows": [{"from": kill_t, "to": None, "what": "redis-1 killed (SIGKILL), never restarted"}],
        "outage": {"from": round(state_ok_t - result["metrics"]["shard_unavailable_s"], 3),
                   "to": state_ok_t, "metric": "shard_unavailable_s"},
        "lost_acks_t": _lost_acks(result),
        "probe": {"from": probe_from, "to": probe_to},
    }
    return result


def error_result() -> dict:
    """A run that could not measure: the probe died half-way; metrics partly empty."""
    result = sentinel_result()
    result["status"] = "error"
    result["passed"] = False
    result["error"] = "probe died: ConnectionError: Error 111 connecting to 127.0.0.1:7702 (after 4.1 s)"
    for name in ("lost", "lost_pct", "unavailable_s", "failover_s", "max_node_kept"):
        result["metrics"][name] = None
    for check in result["checks"]:
        if check["metric"] in result["metrics"] and result["metrics"][check["metric"]] is None:
            check["observed"], check["passed"] = None, False
    result["shards"], result["roles"], result["promoted"] = [], {}, []
    result["timeline"]["lost_acks_t"] = []
    result["timeline"]["outage"] = None
    return result


def hostile_result(payload: str = "<script>alert('x')</script>") -> dict:
    """A result whose free text carries HTML: scenario name, event texts, error, explanation."""
    result = copy.deepcopy(sentinel_result())
    result["scenario"] = f"kill{payload}"
    result["summary"] = f"summary {payload}"
    result["explain"] = f"explain {payload} & `code`"
    result["events"][4]["what"] = f"last ack {payload}"
    result["events"].append({"t": 6.0, "what": f"sentinel-9: +odd {payload}", "source": "server"})
    result["timeline"]["windows"][0]["what"] = f"window {payload}"
    result["timeline"]["series"][0]["name"] = f"series {payload}"
    result["error"] = f"error {payload}"
    result["status"] = "fail"
    result["passed"] = False
    result["roles"]["redis-1"] = f"replica {payload}"
    return result


def messaging_result() -> dict:
    """A result with other count names than ok/fail/info, as the messaging lab will send."""
    result = sentinel_result()
    counts = result["timeline"]["series"][0]["counts"]
    result["timeline"]["series"][0]["counts"] = {
        "published": counts.pop("ok"), "delivered": [max(0, n - 3) for n in counts["fail"]],
        "redelivered": counts["info"]}
    return result


_SHAPES = (sentinel_result, cluster_result, persistence_result)
_MODES = ("none", "rdb", "aof-everysec", "aof-always", "rdb+aof")


def verify_results(count: int = 40) -> list[dict]:
    """`count` results shaped like a full `lab verify`: every scenario of scenario-texts.json
    in the modes its lab runs, drawn from the three real results; every seventh FAILs, every
    eleventh is an ERROR."""
    plan = []
    for key in scenario_texts():
        lab, scenario = key.split("/")
        modes = _MODES if lab == "persistence" else ("aof-everysec",)
        plan += [(lab, scenario, mode) for mode in modes]
    results = []
    for i in range(count):
        lab, scenario, mode = plan[i % len(plan)]
        shape = {"cluster": cluster_result, "persistence": persistence_result}.get(lab, sentinel_result)
        result = error_result() if i % 11 == 10 else shape()
        result.update(lab=lab, scenario=scenario, mode=mode)
        texts = scenario_texts()[f"{lab}/{scenario}"]
        result["summary"], result["explain"] = texts["summary"], texts["explain"]
        if i % 7 == 6 and result["status"] != "error":
            result["status"], result["passed"] = "fail", False
            result["checks"][0]["passed"] = False
        results.append(result)
    return results
