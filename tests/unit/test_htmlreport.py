"""The HTML report pages, from fixture results (tests/htmlreport_fixtures): what a page shows,
read back from its HTML and from the chart's plotly figure embedded in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from orchestrator.htmlreport import (page_name, page_names, render_index, render_run_page, write_report,
                                     write_run_page)
from ..htmlreport_fixtures import (cluster_result, error_result, hostile_result, messaging_result,
                                       persistence_result, sentinel_result, verify_results)

SPEC = re.compile(r'<script type="application/json" id="chart-spec">(.*?)</script>', re.S)


def figure(page: str) -> dict:
    """The plotly figure ({data, layout, config}) a run page embeds."""
    match = SPEC.search(page)
    assert match, "the page embeds no chart"
    return json.loads(match.group(1))


def traces(fig: dict, meta: str) -> list[dict]:
    return [t for t in fig["data"] if t.get("meta") == meta]


def event_rows(page: str) -> dict[int, str]:
    """{number: row html} of the numbered event list."""
    return {int(n): row for n, row in re.findall(r'<tr id="ev-(\d+)"[^>]*>(.*?)</tr>', page, re.S)}


def visible_text(html: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded), scripts and
    styles removed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", "", html))


# --- the chart -------------------------------------------------------------------------------

def test_every_tool_step_and_server_event_has_a_marker_whose_hover_holds_its_text():
    result = sentinel_result()
    fig = figure(render_run_page(result))
    hovers = {source: " ".join(unescape(h.replace("<br>", "")) for t in traces(fig, f"hover-{source}")
                               for h in t["hovertext"])   # long texts wrap at a space: <br> dropped, they read whole
              for source in ("tool", "server", "client")}
    for event in result["events"]:
        text = event["what"].split(": ", 1)[1] if event["source"] == "server" else event["what"]
        assert text in hovers[event["source"]], f"no marker for {event['source']} event {event['what']!r}"
    tool_steps = [e for e in result["events"] if e["source"] == "tool"]
    assert len(traces(fig, "markers-tool")[0]["x"]) == len(tool_steps)
    # Sentinel's +switch-master, which the three Sentinels all published, is one marker whose
    # hover names them all.
    (server,) = traces(fig, "hover-server")
    switch = [h for h in server["hovertext"] if "+switch-master" in h]
    assert len(switch) == 1
    hover = switch[0]
    # the spot at 4.972 s: +config-update-from, +switch-master and two +slave, one hover
    assert len(re.findall(r"<b>\d+</b>  4.972 s", hover)) == 4
    assert re.search(r"\+switch-master mymaster[^<]*<br><i>reported by sentinel-2, sentinel-1 \+0.001 s, "
                     r"sentinel-3 \+1.644 s</i>", hover)


def test_marker_numbers_match_the_event_list_and_key_events_are_named_on_the_chart():
    page = render_run_page(sentinel_result())
    fig = figure(page)
    rows = event_rows(page)
    numbers = sorted(n for source in ("tool", "server", "client")
                     for n in traces(fig, f"markers-{source}")[0]["customdata"])
    assert numbers == sorted(rows) == list(range(1, len(rows) + 1))
    kill = next(n for n, row in rows.items() if "kill master (redis-1)" in row)
    switch = next(n for n, row in rows.items() if "+switch-master" in row)
    labels = " ".join(label for source in ("tool", "server") for label in traces(fig, f"labels-{source}")[0]["text"])
    assert f"{kill} kill master" in labels
    assert re.search(rf"(^|[ ,–]){switch}\b[^ ]* .*\+switch-master|\d+–\d+ [^ ]*\+switch-master", labels)


def test_the_fault_window_and_the_outage_are_drawn_where_the_timeline_puts_them():
    result = sentinel_result()
    fig = figure(render_run_page(result))
    window = result["timeline"]["windows"][0]
    shaded = traces(fig, "fault-window")
    assert len(shaded) >= 3                 # the window's lane bar, the panel and the rug
    for trace in shaded:
        assert min(trace["x"]) == pytest.approx(window["from"]) and max(trace["x"]) == pytest.approx(window["to"])
    outage = result["timeline"]["outage"]
    (span,) = traces(fig, "outage")
    assert span["x"] == [outage["from"], outage["to"]]
    dotted = [s["x0"] for s in fig["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]
    assert sorted(set(dotted)) == [outage["from"], outage["to"]]
    labels = [a["text"] for a in fig["layout"]["annotations"]]
    assert "unavailable_s 3.303 s" in labels


def test_a_window_never_healed_runs_to_the_end_of_the_chart():
    result = cluster_result()
    fig = figure(render_run_page(result))
    x_end = fig["layout"]["xaxis"]["range"][1]
    for trace in traces(fig, "fault-window"):
        assert max(trace["x"]) == pytest.approx(x_end)
    assert any("(not healed)" in a["text"] for a in fig["layout"]["annotations"])


def test_counts_are_drawn_main_up_the_rest_stacked_down_with_the_real_counts_on_hover():
    result = sentinel_result()
    fig = figure(render_run_page(result))
    counts = result["timeline"]["series"][0]["counts"]
    (ok,) = traces(fig, "count-ok")
    (fail,) = traces(fig, "count-fail")
    (info,) = traces(fig, "count-info")
    assert [n for n, _ in ok["customdata"][:-1]] == counts["ok"]
    assert [n for n, _ in fail["customdata"][:-1]] == counts["fail"]
    assert min(ok["y"]) >= 0 and max(fail["y"]) <= 0
    # stacked: the unknown attempts start where the failed ones end
    assert all(i <= f for i, f in zip(info["y"], fail["y"]))
    assert ok["x"][0] == pytest.approx(result["timeline"]["series"][0]["start_t"])
    assert ok["x"][1] - ok["x"][0] == pytest.approx(0.1)


def test_a_cluster_run_has_one_panel_per_shard():
    result = cluster_result()
    fig = figure(render_run_page(result))
    oks = traces(fig, "count-ok")
    assert len(oks) == 3
    assert len({t["yaxis"] for t in oks}) == 3
    names = " ".join(a["text"] for a in fig["layout"]["annotations"])
    for shard in ("shard 0 (redis-1)", "shard 1 (redis-2)", "shard 2 (redis-3)"):
        assert shard in names
    assert [t["showlegend"] for t in oks] == [True, False, False]   # one legend entry per outcome


def test_other_count_names_are_drawn_and_named_in_the_legend():
    fig = figure(render_run_page(messaging_result()))
    (published,) = traces(fig, "count-published")
    assert min(published["y"]) >= 0
    names = {t["name"] for t in fig["data"] if t.get("showlegend") is not False and t.get("name")}
    assert {"published", "delivered", "redelivered"} <= names
    assert max(traces(fig, "count-delivered")[0]["y"]) <= 0


def test_the_rug_has_every_lost_write_at_its_ack_time():
    result = persistence_result()
    fig = figure(render_run_page(result))
    (rug,) = traces(fig, "lost-rug")
    lost = result["timeline"]["lost_acks_t"]
    assert sum(rug["customdata"]) == len(lost) == result["metrics"]["lost"]
    assert len(rug["x"]) < len(lost)          # drawn at the chart's resolution, not one mark each
    assert min(rug["x"]) == pytest.approx(min(lost), abs=0.01)
    assert max(rug["x"]) == pytest.approx(max(lost), abs=0.01)


def test_no_lost_write_says_so_instead_of_an_empty_rug():
    fig = figure(render_run_page(sentinel_result()))
    assert not traces(fig, "lost-rug")
    assert any("no acknowledged write was lost" in a["text"] for a in fig["layout"]["annotations"])


# --- the tables and texts --------------------------------------------------------------------

def test_the_page_has_verdict_headline_tables_roles_and_explanation():
    result = sentinel_result()
    page = render_run_page(result)
    text = visible_text(page)
    assert re.search(r'<span class="badge" id="verdict">PASS</span>', page)
    assert "5 of 5 expectations met" in text
    expectations = page.split('id="expectations"')[1].split("</section>")[0]
    for check in result["checks"]:
        assert f"<code>{check['metric']}</code>" in expectations
    assert visible_text(expectations).count("PASS") == len(result["checks"])
    assert "2 .. 5" in expectations and "≥ 2" in expectations and "= 1" in expectations
    metrics = page.split('id="metrics"')[1].split("</section>")[0]
    info = result["metric_info"]["unavailable_s"]
    assert info["short"] in visible_text(metrics) and info["method"] in visible_text(metrics)
    assert "<details><summary>how it was measured</summary>" in metrics
    assert "failover_s" in metrics and "shard_unavailable_s" not in metrics   # None: not measured
    assert "144 connection refused" in text
    assert "redis-2" in page.split('id="roles"')[1] and "Promoted: redis-1 -&gt; redis-2" in page
    assert "Sentinel PINGs the master every second" in text
    assert "<code>" in page.split('id="explain"')[1].split("</section>")[0] or "`" not in result["explain"]


def test_the_cluster_page_has_the_per_shard_table():
    page = render_run_page(cluster_result())
    shards = page.split('id="shards"')[1].split("</section>")[0]
    rows = re.findall(r"<tr><td class=\"num\">(\d)</td><td>(redis-\d)</td>", shards)
    assert rows == [("0", "redis-1"), ("1", "redis-2"), ("2", "redis-3")]
    assert "4.244" in shards


def test_an_error_run_says_it_could_not_measure_and_shows_the_partial_metrics():
    result = error_result()
    page = render_run_page(result)
    text = visible_text(page)
    assert '<span class="badge" id="verdict">ERROR</span>' in page
    assert "ERROR: this run could not measure" in text and result["error"] in text
    assert "could not measure" in page.split('class="facts"')[1].split("</p>")[0]
    expectations = visible_text(page.split('id="expectations"')[1].split("</section>")[0])
    assert "not measured" in expectations
    metrics = page.split('id="metrics"')[1].split("</section>")[0]
    assert "<code>acked</code>" in metrics
    assert re.search(r"Not measured in this run: .*<code>unavailable_s</code>", metrics)
    assert "verdict-error" in page and figure(page)   # the chart still draws what was observed
    assert not traces(figure(page), "outage")
    notes = [a["text"] for a in figure(page)["layout"]["annotations"]]
    assert "<i>lost writes were not measured in this run</i>" in notes
    assert not any("no acknowledged write was lost" in n for n in notes)


def test_a_result_saved_before_status_and_timeline_still_renders():
    result = json.loads((Path(__file__).parents[1] / "htmlreport_fixtures" / "sentinel-kill-master.json").read_text())
    page = render_run_page(result)
    assert '<span class="badge" id="verdict">PASS</span>' in page
    assert "carries no timeline" in page
    fig = figure(page)
    assert traces(fig, "markers-server") and not traces(fig, "count-ok")
    result.update(passed=False, error="settle timeout")
    assert '<span class="badge" id="verdict">ERROR</span>' in render_run_page(result)


def test_hostile_text_is_shown_as_text_never_as_markup():
    payload = "<script>alert('x')</script>"
    page = render_run_page(hostile_result(payload))
    assert page.count("<script") == 3      # plotly.js, the figure's JSON, the call that draws it
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert f"kill{payload}" in visible_text(page.split("</header>")[0])
    spec_text = SPEC.search(page).group(1)
    assert "<" not in spec_text and ">" not in spec_text
    fig = json.loads(spec_text)
    hovers = " ".join(h for t in fig["data"] for h in (t.get("hovertext") or []) if isinstance(h, str))
    # plotly.js reads tags in its strings: they reach it escaped, so it shows them as typed
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in hovers
    assert "<script>" not in json.dumps(fig)


# --- the index -------------------------------------------------------------------------------

def test_the_index_links_every_run_in_a_matrix_coloured_by_verdict():
    results = verify_results(40)
    names = page_names(results)
    page = render_index(results, names)
    links = re.findall(r'<a class="run (pass|fail|error)" href="([^"]+)"', page)
    assert sorted(href for _, href in links) == sorted(names)
    by_name = dict(zip(names, results))
    for status, href in links:
        assert by_name[href]["status"] == status
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "error")}
    assert f"{counts['pass']} PASS · {counts['fail']} FAIL · {counts['error']} ERROR" in page
    assert '<span class="badge">ERROR</span>' in page          # any ERROR makes the whole report one
    header = re.search(r"<thead><tr><th>scenario</th>(.*?)</tr></thead>", page).group(1)
    assert re.findall(r"<th>([^<]+)</th>", header) == ["none", "rdb", "aof-everysec", "aof-always", "rdb+aof"]
    problems = page.split('id="problems"')[1].split("</section>")[0]
    assert problems.count("<li>") == counts["fail"] + counts["error"]
    assert "could not measure: probe died" in problems


def test_an_index_cell_carries_the_headline_figures_and_repeats_share_it():
    first, second = sentinel_result(), sentinel_result()
    second["metrics"]["unavailable_s"] = 4.5
    page = render_index([first, second], page_names([first, second]))
    cells = re.findall(r'<td class="cell">(.*?)</td>', page, re.S)
    assert len(cells) == 1
    assert "lost 0 · unavailable 3.303 s · failover 2.726 s" in cells[0]
    assert "unavailable 4.5 s" in cells[0] and "#2" in cells[0]


def test_render_index_needs_one_page_per_result():
    with pytest.raises(ValueError):
        render_index([sentinel_result()], [])


# --- files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lab, scenario, mode", [
    ("sentinel", "kill-master", "rdb+aof"),
    ("../../etc", "a/b\\c:d*e?f\"g<h>i|j", "NUL"),
    ("con", "x", "y"),
    ("con.lab", "x", "y"),
    (".hidden", "-dash", " "),
    ("Ünïcode", "шард", "模式"),
    ("l" * 300, "s" * 300, "m"),
])
def test_page_names_are_safe_on_any_file_system(lab, scenario, mode):
    name = page_name({"lab": lab, "scenario": scenario, "mode": mode})
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*\.html", name), name
    assert len(name) <= 90
    # Windows refuses a reserved device name before the first dot, whatever follows ("con.lab-x-y.html")
    assert name.split(".")[0] not in {"con", "nul", "prn", "aux", "com1", "lpt1"}


def test_long_names_stay_distinct_and_repeats_are_numbered():
    long_a = {"lab": "l" * 300, "scenario": "a", "mode": "m"}
    long_b = {"lab": "l" * 300, "scenario": "b", "mode": "m"}
    assert page_name(long_a) != page_name(long_b)
    same = {"lab": "sentinel", "scenario": "kill-master", "mode": "aof-everysec"}
    folded = {"lab": "Sentinel", "scenario": "kill-master", "mode": "aof-everysec"}
    assert page_names([same, same, folded]) == ["sentinel-kill-master-aof-everysec.html",
                                                "sentinel-kill-master-aof-everysec-2.html",
                                                "sentinel-kill-master-aof-everysec-3.html"]


def test_write_report_writes_linked_pages_and_one_shared_script(tmp_path):
    results = [sentinel_result(), cluster_result(), error_result()]
    index = write_report(results, tmp_path / "report")
    assert index == tmp_path / "report" / "index.html"
    files = sorted(p.name for p in index.parent.iterdir())
    scripts = [f for f in files if f.endswith(".js")]
    assert len(scripts) == 1 and re.fullmatch(r"plotly-[\d.]+\.min\.js", scripts[0])
    assert (index.parent / scripts[0]).stat().st_size > 1_000_000
    html = index.read_text()
    for href in re.findall(r'class="run [a-z]+" href="([^"]+)"', html):
        page = (index.parent / href).read_text()
        assert f'<script src="{scripts[0]}"></script>' in page
        assert '<a href="index.html">' in page
    assert len(files) == len(results) + 2
    assert not [f for f in files if f.startswith(".")]     # no temporary file left


def test_pages_request_nothing_from_the_network(tmp_path):
    index = write_report([sentinel_result(), persistence_result()], tmp_path)
    for page in index.parent.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), page.name
        assert "@import" not in text and "url(http" not in text


def test_a_self_contained_page_needs_no_file_beside_it(tmp_path):
    path = write_run_page(sentinel_result(), tmp_path / "run.html", inline_js=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run.html"]
    page = path.read_text()
    assert "<script src=" not in page and len(page) > 1_000_000 and "Plotly.newPlot" in page


def test_write_run_page_puts_the_script_beside_the_page(tmp_path):
    path = write_run_page(sentinel_result(), tmp_path / "deep" / "run.html")
    assert sorted(p.suffix for p in path.parent.iterdir()) == [".html", ".js"]


def test_importing_the_package_loads_neither_plotly_nor_the_rest_of_orchestrator():
    code = ("import sys, orchestrator.htmlreport; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('orchestrator', 'plotly')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert loaded and all(m == "orchestrator" or m.startswith("orchestrator.htmlreport") for m in loaded), loaded


def test_the_package_imports_nothing_of_orchestrator_outside_itself():
    package = Path(__file__).parents[2] / "orchestrator" / "htmlreport"
    for module in package.glob("*.py"):
        source = module.read_text()
        assert not re.search(r"^\s*(from|import)\s+(orchestrator\b|\.\.)", source, re.M), module.name


def test_malformed_fields_are_skipped_not_fatal():
    result = sentinel_result()
    result["events"] += [{"t": float("nan"), "what": "nan"}, {"t": "soon", "what": "x"}, "not an event",
                         {"t": 7.0, "what": "no source given"}]
    line = result["timeline"]
    line["series"].append({"name": "broken", "counts": {"ok": [1, None, "x", float("inf")]}, "start_t": None})
    line["series"].append("not a series")
    line["windows"].append({"from": float("nan"), "to": 3})
    line["lost_acks_t"] = [1.0, None, float("nan")]
    line["bucket_s"] = 0
    fig = figure(render_run_page(result))
    tool_hovers = " ".join(traces(fig, "hover-tool")[0]["hovertext"])
    assert "no source given" in tool_hovers and "nan" not in tool_hovers
    broken = [t for t in traces(fig, "count-ok") if "broken" in t["hovertemplate"]]
    assert [n for n, _ in broken[0]["customdata"]] == [1, 0, 0, 0, 0]
    assert len(traces(fig, "fault-window")) == 4     # the valid window only: lane bar, two panels, rug
    assert sum(traces(fig, "lost-rug")[0]["customdata"]) == 1


def test_a_sparse_result_renders_with_what_it_has():
    result = {"lab": "cluster", "scenario": "kill-master", "mode": "aof-everysec", "passed": True,
              "shards": [{"shard": 0}, "junk"], "checks": [{"metric": "lost", "expect": None}, 3],
              "metrics": {"lost": 0}, "metric_info": {"lost": "junk"}, "error_kinds": {"timeout": "many"},
              "roles": {"redis-1": None}}
    page = render_run_page(result)
    assert '<span class="badge" id="verdict">PASS</span>' in page
    assert "no events and no timeline" in page and "chart-spec" not in page
    shards = page.split('id="shards"')[1].split("</section>")[0]
    assert shards.count("<tr><td") == 1


@pytest.mark.parametrize("make", [sentinel_result, cluster_result, persistence_result, error_result,
                                  hostile_result, messaging_result])
def test_the_figure_is_valid_for_plotly(make):
    """plotly.py's graph objects check every property name and value against plotly.js's
    schema: a typo in the figure fails here instead of being ignored by the browser."""
    from plotly import graph_objects as go

    fig = figure(render_run_page(make()))
    go.Figure(data=fig["data"], layout=fig["layout"])


def test_index_cells_show_a_message_run_s_own_figures():
    from orchestrator.htmlreport.index import cell_figures

    messaging = {"status": "pass", "metrics": {"published": 5000, "lost_messages": 2200, "duplicates": 0}}
    assert cell_figures(messaging) == "lost 2200 · duplicates 0"
    writes = {"status": "pass", "metrics": {"lost": 0, "unavailable_s": 3.3, "failover_s": 2.7}}
    assert cell_figures(writes) == "lost 0 · unavailable 3.3 s · failover 2.7 s"
