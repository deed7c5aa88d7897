"""One run's page: verdict, headline figures, the timeline chart with its numbered event
list, the explanation, expectations, metrics, per-shard figures and roles."""

from __future__ import annotations

from markupsafe import Markup

from .chart import chart_spec
from .result import SAME_EVENT_WINDOW_S, finite, format_bound, markers, timeline, verdict
from .style import CSS
from .templating import compiled

GLYPHS = {"tool": "▼", "server": "◆", "client": "●"}   # the lanes' marker shapes, for the list
HEADLINE = ("acked", "lost", "lost_pct", "unavailable_s", "shard_unavailable_s", "failover_s", "load_s")
PHASES = ("up", "steps", "read_back", "teardown")

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ word }} · {{ r.lab }} / {{ r.scenario }} [{{ r.mode }}] · redis-ha-lab</title>
<link rel="icon" href="data:,">
<style>{{ css }}</style>
</head>
<body>
<header class="verdict verdict-{{ status }}">
{% if index_href %}<p class="crumbs"><a href="{{ index_href }}">← all runs</a></p>{% endif %}
<h1><span class="badge" id="verdict">{{ word }}</span> {{ r.lab }} / {{ r.scenario }}
 <span class="mode">mode {{ r.mode }}</span></h1>
{% if summary %}<p class="summary">{{ summary | prose }}</p>{% endif %}
<p class="facts">{{ met_line }}{% if duration is not none %} · run took {{ duration | value }} s{% endif %}
{%- if phases %} ({% for name, s in phases %}{{ name }} {{ s | value }} s{% if not loop.last %}, {% endif %}{% endfor %}){% endif %}
{%- if r.image %} · image <code>{{ r.image }}</code>{% endif %}</p>
{% if status == "error" %}
<div class="error-box" id="error"><strong>ERROR: this run could not measure</strong>{% if error %}: {{ error }}{% endif %}.
 The figures below are what was observed before it stopped; missing ones are shown as –.</div>
{% elif error %}
<div class="error-box" id="error"><strong>Error:</strong> {{ error }}</div>
{% endif %}
{% if failed_checks %}
<div class="failed-checks"><strong>Expectations missed:</strong>
{% for c in failed_checks %}{{ c.metric }} = {{ c.observed | value }} (expected {{ c.bound }}){% if not loop.last %}; {% endif %}{% endfor %}</div>
{% endif %}
{% if headline %}
<ul class="headline">
{% for name, value, unit in headline %}<li><span class="value">{{ value | value }}{% if unit and unit not in ("writes", "count") %} {{ unit }}{% endif %}</span><span class="name">{{ name }}</span></li>
{% endfor %}
</ul>
{% endif %}
</header>

<section id="timeline">
<h2>Timeline</h2>
{% if spec %}
<p class="hint">Seconds since the lab was ready. Drag across the chart to zoom into a stretch of time, double-click to zoom out; hover a marker for the event's full text. The numbers on the markers are the rows of the list below.</p>
<div class="chart-scroll"><div id="chart" class="chart" role="img" aria-label="timeline of the run: writes per bucket, fault windows, events"></div></div>
<noscript><p class="nojs">The chart is drawn by JavaScript, which is off: the numbered list below tells the same story.</p></noscript>
{% else %}
<p class="muted">This result has no events and no timeline to draw.</p>
{% endif %}
{% if no_timeline %}<p class="muted">This result carries no timeline (probe counts per bucket): it was saved by a version of the tool that did not record one. Only the events are drawn.</p>{% endif %}
{% if events %}
<table class="events" id="events">
<thead><tr><th>#</th><th>t (s)</th><th>source</th><th>event</th></tr></thead>
<tbody>
{% for m in events %}<tr id="ev-{{ m.number }}" class="src-{{ m.source }}"><td class="n">{{ m.number }}</td><td class="t">{{ "%.3f" | format(m.t) }}</td><td class="src"><span class="glyph">{{ glyphs[m.source] }}</span> {{ m.source }}</td><td>{{ m.text }}{% if m.reporters %} <span class="who">[{{ m.reporters | join(", ") }}]</span>{% endif %}</td></tr>
{% endfor %}
</tbody>
</table>
<p class="hint">▼ tool: the lab's own steps · ◆ server: Sentinel's events or the cluster nodes' log lines, once for all the nodes that reported them within {{ same_window }} s (offsets after the first in brackets) · ● client: what the probe saw.</p>
{% endif %}
</section>

{% if explain %}
<section id="explain">
<h2>What this shows</h2>
<p class="explain">{{ explain | prose }}</p>
</section>
{% endif %}

<section id="expectations">
<h2>Expectations</h2>
{% if checks %}
<table>
<thead><tr><th>metric</th><th>expected</th><th>observed</th><th>verdict</th></tr></thead>
<tbody>
{% for c in checks %}<tr><td><code>{{ c.metric }}</code></td><td class="num">{{ c.bound }}</td><td class="num">{{ c.observed | value }}</td><td class="verdict-{{ c.css }}">{{ c.word }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="muted">This scenario states no expectation.</p>{% endif %}
</section>

<section id="metrics">
<h2>Metrics</h2>
{% if metrics %}
<table>
<thead><tr><th>metric</th><th>value</th><th>unit</th><th>meaning</th></tr></thead>
<tbody>
{% for m in metrics %}<tr><td><code>{{ m.name }}</code></td><td class="num">{{ m.value | value }}</td><td>{{ m.unit }}</td><td>{{ m.short }}{% if m.method %}<details><summary>how it was measured</summary><p>{{ m.method }}</p></details><p class="print-only">{{ m.method }}</p>{% endif %}</td></tr>
{% endfor %}
</tbody>
</table>
{% if unmeasured %}<p class="muted">Not measured in this run: {% for name in unmeasured %}<code>{{ name }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
{% else %}<p class="muted">No metric was measured.</p>{% endif %}
{% if error_kinds %}<p>Failed write attempts by kind: {% for kind, n in error_kinds %}{{ n }} {{ kind }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
</section>

{% if shards %}
<section id="shards">
<h2>Per shard</h2>
<p class="hint">Slot map at probe start; longest_gap_s is the longest wait for an acknowledgement after the fault.</p>
<table>
<thead><tr><th>shard</th><th>master</th><th>replicas</th><th>slots</th><th>acked</th><th>lost</th><th>errors</th><th>longest_gap_s</th></tr></thead>
<tbody>
{% for s in shards %}<tr><td class="num">{{ s.shard | value }}</td><td>{{ s.master_at_start }}</td><td>{{ s.replicas | join(", ") }}</td><td class="num">{{ s.slots | value }}</td><td class="num">{{ s.acked | value }}</td><td class="num">{{ s.lost | value }}</td><td class="num">{{ s.errors | value }}</td><td class="num">{{ s.longest_gap_s | value }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}

{% if roles or promoted %}
<section id="roles">
<h2>Roles at the end</h2>
{% if roles %}<dl class="roles">{% for node, role in roles %}<dt>{{ node }}</dt><dd>{{ role }}</dd>{% endfor %}</dl>{% endif %}
{% if promoted %}<p>Promoted: {{ promoted | join(", ") }}</p>{% endif %}
</section>
{% endif %}

<footer>redis-ha-lab run report · {{ r.lab }} / {{ r.scenario }} [{{ r.mode }}] · opened from this file alone; nothing is fetched from the network.</footer>
{% if spec %}
{% if inline_js %}<script>{{ inline_js }}</script>{% else %}<script src="{{ js_src }}"></script>{% endif %}
<script type="application/json" id="chart-spec">{{ spec | script_json }}</script>
<script>
(function () {
  var el = document.getElementById("chart");
  if (!window.Plotly) { el.innerHTML = '<p class="nojs">plotly.js ({{ js_src }}) did not load: the numbered list below tells the same story.</p>'; return; }
  var spec = JSON.parse(document.getElementById("chart-spec").textContent);
  Plotly.newPlot(el, spec.data, spec.layout, spec.config);
})();
</script>
{% endif %}
</body>
</html>
"""



SHARD_FIELDS = ("shard", "master_at_start", "replicas", "slots", "acked", "lost", "errors", "longest_gap_s")


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _checks(result: dict) -> list[dict]:
    """Expectation rows: PASS/FAIL, or "not measured" when there was no observation."""
    rows = []
    for check in filter(None, map(_dict, _list(result.get("checks")))):
        observed = check.get("observed")
        if observed is None:
            word, css = "not measured", "none"
        else:
            word, css = ("PASS", "pass") if check.get("passed") else ("FAIL", "fail")
        rows.append({"metric": str(check.get("metric", "?")), "bound": format_bound(_dict(check.get("expect"))),
                     "observed": observed, "word": word, "css": css, "passed": bool(check.get("passed"))})
    return rows


def _metric_rows(result: dict, checks: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows for the measured metrics (value, unit, meaning, method), and the names of the
    metrics an expectation needed that were not measured."""
    info = _dict(result.get("metric_info"))
    rows, unmeasured = [], []
    for name, value in _dict(result.get("metrics")).items():
        meta = _dict(info.get(name))
        if value is None:
            if any(c["metric"] == name for c in checks):
                unmeasured.append(name)
            continue
        rows.append({"name": name, "value": value, "unit": meta.get("unit", ""), "short": meta.get("short", ""),
                     "method": meta.get("method", "")})
    return rows, unmeasured


def run_context(result: dict, *, index_href: str | None = None, inline_js: bool = False) -> dict:
    """What the template needs, every field read defensively (see result.py)."""
    status = verdict(result)
    checks = _checks(result)
    metrics = _dict(result.get("metrics"))
    info = _dict(result.get("metric_info"))
    rows, unmeasured = _metric_rows(result, checks)
    met = sum(c["passed"] for c in checks)
    if status == "error":
        met_line = "could not measure"
    else:
        met_line = f"{met} of {len(checks)} expectations met" if checks else "no expectations"
    headline = [(name, metrics[name], _dict(info.get(name)).get("unit", "")) for name in HEADLINE
                if finite(metrics.get(name))]
    phases_s = _dict(result.get("phases_s"))
    phases = [(name.replace("_", "-"), phases_s[name]) for name in PHASES if finite(phases_s.get(name))]
    shards = [{k: shard.get(k) for k in SHARD_FIELDS} | {"replicas": _list(shard.get("replicas"))}
              for shard in filter(None, map(_dict, _list(result.get("shards"))))]
    error_kinds = sorted(((str(k), n) for k, n in _dict(result.get("error_kinds")).items() if finite(n)),
                         key=lambda kv: (-kv[1], kv[0]))
    spec = chart_spec(result)
    js_src, inline = "", None
    if spec is not None:
        from .assets import plotly_js, plotly_js_name

        if inline_js:
            inline = Markup(plotly_js())
        else:
            js_src = plotly_js_name()
    return {
        "r": {k: str(result.get(k) or "?") for k in ("lab", "scenario", "mode")} | {"image": result.get("image")},
        "status": status, "word": status.upper(), "summary": result.get("summary") or "",
        "explain": result.get("explain") or "", "error": result.get("error") or "",
        "met_line": met_line, "duration": result.get("duration_s") if finite(result.get("duration_s")) else None,
        "phases": phases, "checks": checks, "failed_checks": [c for c in checks if c["css"] == "fail"],
        "metrics": rows, "unmeasured": unmeasured, "headline": headline, "error_kinds": error_kinds,
        "shards": shards, "roles": sorted((str(k), v) for k, v in _dict(result.get("roles")).items()),
        "promoted": _list(result.get("promoted")), "events": markers(result),
        "glyphs": GLYPHS, "same_window": SAME_EVENT_WINDOW_S,
        "no_timeline": not timeline(result) and bool(result.get("events")),
        "spec": spec, "inline_js": inline, "js_src": js_src, "index_href": index_href, "css": Markup(CSS),
    }


def render_run_page(result: dict, *, index_href: str | None = None, inline_js: bool = False) -> str:
    """One run's page. With `inline_js` the page carries plotly.js itself (about 4.8 MB,
    one self-contained file); otherwise it loads `plotly-<version>.min.js` from its own
    directory, which `write_run_page` and `write_report` put there. `index_href` links back
    to a report's index."""
    return compiled(TEMPLATE).render(run_context(result, index_href=index_href, inline_js=inline_js))
