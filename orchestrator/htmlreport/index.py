"""The verify/compare index: a scenario x mode matrix, one linked cell per run, coloured by
verdict, with the headline figures in the cell. Draws no chart: plain HTML and CSS."""

from __future__ import annotations

from markupsafe import Markup

from .result import format_bound, format_value, verdict
from .style import CSS
from .templating import compiled

MODE_ORDER = ("none", "rdb", "aof-no", "aof-everysec", "aof-always", "rdb+aof")
CELL_FIGURES = (  # (metric, label in the cell, unit suffix); a result shows the ones it has
    ("lost", "lost", ""),
    ("lost_messages", "lost", ""),
    ("duplicates", "duplicates", ""),
    ("unavailable_s", "unavailable", " s"),
    ("failover_s", "failover", " s"),
)

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ headline_word }} · {{ total }} runs · redis-ha-lab</title>
<link rel="icon" href="data:,">
<style>{{ css }}</style>
</head>
<body>
<header class="verdict verdict-{{ overall }}">
<h1><span class="badge">{{ headline_word }}</span> {{ total }} runs</h1>
<p class="facts">{{ counts.pass }} PASS · {{ counts.fail }} FAIL · {{ counts.error }} ERROR{% if scenario_s %} · {{ scenario_s }} s of scenario time{% endif %}{% if labs %} · labs {{ labs | join(", ") }}{% endif %}</p>
</header>
{% if problems %}
<section id="problems">
<h2>Runs that did not pass</h2>
<ul class="problems">
{% for p in problems %}<li><a class="badge {{ p.status }}" href="{{ p.href }}">{{ p.word }}</a> {{ p.lab }} / {{ p.scenario }} [{{ p.mode }}]: {{ p.why }}</li>
{% endfor %}
</ul>
</section>
{% endif %}
<section id="matrix-section">
<h2>Scenarios by persistence mode</h2>
<p class="hint">Each cell opens the run's page (timeline, events, metrics). PASS: measured, every expectation met · FAIL: measured, an expectation missed · ERROR: the run could not measure.</p>
<table class="matrix" id="matrix">
<thead><tr><th>scenario</th>{% for mode in modes %}<th>{{ mode }}</th>{% endfor %}</tr></thead>
<tbody>
{% for lab, rows in labs_rows %}
<tr><th class="lab" colspan="{{ modes | length + 1 }}">{{ lab }}</th></tr>
{% for scenario, cells in rows %}
<tr><th>{{ scenario }}</th>{% for runs in cells %}<td class="cell">{% for run in runs %}<a class="run {{ run.status }}" href="{{ run.href }}" title="{{ run.title }}"><span class="word">{{ run.word }}</span>{% if runs | length > 1 %} <span class="muted">#{{ loop.index }}</span>{% endif %}<span class="nums">{{ run.figures }}</span></a>{% else %}<span class="na">–</span>{% endfor %}</td>{% endfor %}</tr>
{% endfor %}
{% endfor %}
</tbody>
</table>
</section>
<footer>redis-ha-lab report · the run pages load plotly.js from this directory; nothing is fetched from the network.</footer>
</body>
</html>
"""



def cell_figures(result: dict) -> str:
    """"lost 0 · unavailable 3.303 s · failover 2.726 s": the figures a result has."""
    metrics = result.get("metrics") or {}
    parts = [f"{label} {format_value(metrics[name])}{unit}" for name, label, unit in CELL_FIGURES
             if metrics.get(name) is not None]
    return " · ".join(parts) or ("could not measure" if verdict(result) == "error" else "no figures")


def _why(result: dict) -> str:
    if verdict(result) == "error":
        return f"could not measure: {result.get('error') or 'no reason recorded'}"
    missed = [f"{c.get('metric')} = {format_value(c.get('observed'))} (expected {format_bound(c.get('expect') or {})})"
              for c in result.get("checks") or [] if not c.get("passed")]
    return "missed " + "; ".join(missed) if missed else "failed"


def _mode_key(mode: str) -> tuple:
    return (MODE_ORDER.index(mode), "") if mode in MODE_ORDER else (len(MODE_ORDER), mode)


def render_index(results: list[dict], pages: list[str]) -> str:
    """The index for `results`; `pages[i]` is the relative file name of results[i]'s page.
    Several runs of one scenario and mode share a cell, numbered. Raises ValueError when the
    two lists differ in length."""
    if len(results) != len(pages):
        raise ValueError(f"{len(results)} results but {len(pages)} page names")
    modes = sorted({str(r.get("mode") or "?") for r in results}, key=_mode_key)
    grid: dict[str, dict[str, dict[str, list]]] = {}
    counts = {"pass": 0, "fail": 0, "error": 0}
    problems = []
    for result, href in zip(results, pages):
        status = verdict(result)
        counts[status] += 1
        lab, scenario, mode = (str(result.get(k) or "?") for k in ("lab", "scenario", "mode"))
        run = {"status": status, "word": status.upper(), "href": href, "figures": cell_figures(result),
               "title": f"{lab} / {scenario} [{mode}]: {status.upper()}"}
        grid.setdefault(lab, {}).setdefault(scenario, {}).setdefault(mode, []).append(run)
        if status != "pass":
            problems.append({**run, "lab": lab, "scenario": scenario, "mode": mode, "why": _why(result)})
    labs_rows = [(lab, [(scenario, [by_mode.get(mode, []) for mode in modes])
                        for scenario, by_mode in scenarios.items()])
                 for lab, scenarios in grid.items()]
    overall = "error" if counts["error"] else "fail" if counts["fail"] else "pass"
    durations = [r.get("duration_s") for r in results if isinstance(r.get("duration_s"), (int, float))]
    return compiled(TEMPLATE).render(
        css=Markup(CSS), total=len(results), counts=counts, overall=overall,
        headline_word=overall.upper(), problems=problems, modes=modes,
        labs_rows=labs_rows, labs=list(grid), scenario_s=f"{sum(durations):.0f}" if durations else "")
