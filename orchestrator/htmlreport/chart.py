"""The run's timeline as a plotly figure, drawn in the browser by plotly.js; this module only
writes the figure's JSON (plotly's schema), so it imports no plotting code.

From top to bottom, on one time axis (seconds since the lab was ready; drag to zoom in,
double-click to zoom out):
- event lanes: tool steps, server events and what the client saw, one marker per event
  whose hover shows its full text; markers closer than a few pixels share one number label
  ("10–19"), matching the numbered event list on the page; below them the fault-to-heal
  windows as hatched bars and the outage (`unavailable_s`) as a span;
- one panel per series (the whole probe, or one cluster shard): acknowledged attempts per
  bucket upwards, the other outcomes (failed, unknown; or whatever counts the workload
  sends) stacked downwards on a scale of their own, so a handful of refusals stays visible
  beside thousands of acknowledgements; fault windows hatched, outage edges dotted;
- a rug of the completion times of the acknowledged writes that were lost.

The parts are drawn by lanes.py (the top rows) and panels.py (the rest); look.py holds
colours, patterns and sizes.
"""

from __future__ import annotations

from .lanes import clusters, draw_lanes
from .look import FONT_PX, GAP_PX, LANES, MARGIN, PANEL_PX, ROW_PX, RUG_PX, WIDTH_PX, layout_key
from .panels import draw_rug, draw_series
from .result import Marker, Series, lost_acks, markers, outage, series, windows


def time_range(result: dict, lines: list[Series], events: list[Marker]) -> tuple[float, float]:
    """The x range: every bucket, event, window and lost ack, with 2 % margin."""
    points = [0.0]
    for s in lines:
        points += [s.start_t, s.end_t]
    points += [m.t for m in events]
    for w in windows(result):
        points += [w["from"]] + ([w["to"]] if w.get("to") is not None else [])
    span = outage(result)
    if span:
        points += [span["from"], span["to"]]
    rug = lost_acks(result)
    if rug:
        points += [min(rug), max(rug)]
    low, high = min(points), max(points)
    pad = max(0.05, (high - low) * 0.02)
    return low - pad, high + pad


class _Traces:
    """The figure's traces as the plain dicts plotly.js reads. plotly.py's graph objects
    would validate each property as it is set, at about 0.1 s a page plus 0.2 s of import;
    the unit tests run that validation over every fixture instead (go.Figure(spec))."""

    def __init__(self):
        self.data: list[dict] = []

    def add_scatter(self, **trace) -> None:
        self.data.append({"type": "scatter", **trace})


def chart_spec(result: dict) -> dict | None:
    """{data, layout, config} for Plotly.newPlot; None when the result has neither events
    nor a timeline. Raises nothing for missing fields: what is absent is not drawn."""
    lines = series(result)
    events = markers(result)
    if not lines and not events:
        return None
    x_low, x_high = time_range(result, lines, events)
    plot_px = WIDTH_PX - MARGIN["l"] - MARGIN["r"]
    seconds_per_px = (x_high - x_low) / plot_px
    lanes = {src: clusters([m for m in events if m.source == src], seconds_per_px, (x_low, x_high))
             for src in LANES}
    lanes = {src: cl for src, cl in lanes.items() if cl}
    spans = windows(result)
    span = outage(result)
    lane_units = sum(max(c.row for c in cl) + 2 for cl in lanes.values()) + 2 * (len(spans) + bool(span))
    heights = [max(2, lane_units) * ROW_PX] + [PANEL_PX] * len(lines) + [RUG_PX]
    plot_height = sum(heights) + GAP_PX * (len(heights) - 1)
    domains, top = [], plot_height
    for h in heights:
        domains.append((max(0.0, (top - h) / plot_height), top / plot_height))
        top -= h + GAP_PX

    fig = _Traces()
    axes = [_axis_names(i) for i in range(len(heights))]
    layout = {
        "width": WIDTH_PX, "height": plot_height + MARGIN["t"] + MARGIN["b"], "margin": MARGIN,
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
                 "size": FONT_PX, "color": "#222222"},
        "plot_bgcolor": "white", "paper_bgcolor": "white", "hovermode": "closest", "dragmode": "zoom",
        "legend": {"orientation": "h", "x": 0, "y": 0, "yanchor": "bottom", "xanchor": "left",
                   "yref": "container", "traceorder": "normal", "font": {"size": FONT_PX}},
        "showlegend": True, "shapes": [], "annotations": [],
    }
    for i, (x_name, y_name) in enumerate(axes):
        last = i == len(axes) - 1
        layout[layout_key(x_name)] = {
            "domain": [0, 1], "anchor": y_name, "range": [x_low, x_high], "showticklabels": last,
            "ticks": "outside" if last else "", "showgrid": not last and i > 0, "gridcolor": "#e4e4e4",
            "gridwidth": 1, "automargin": True,
            "zeroline": False, "showline": last, "linecolor": "#444444",
            **({"matches": "x"} if i else {}),
            **({"title": {"text": "seconds since the lab was ready", "standoff": 8}} if last else {}),
        }
        layout[layout_key(y_name)] = {"domain": list(domains[i]), "anchor": x_name, "fixedrange": True,
                                       "zeroline": False, "showgrid": False}

    draw_lanes(fig, layout, axes[0], lanes, spans, span, result, x_high, seconds_per_px)
    legend_done: set = set()
    for i, line in enumerate(lines):
        draw_series(fig, layout, axes[i + 1], line, spans, span, x_high, legend_done)
    draw_rug(fig, layout, axes[-1], lost_acks(result), (result.get("metrics") or {}).get("lost"), spans,
             x_low, x_high)
    return {
        "data": fig.data,
        "layout": layout,
        "config": {"displaylogo": False, "responsive": False, "scrollZoom": False,
                   "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
                   "toImageButtonOptions": {"format": "svg"}},
    }


def _axis_names(i: int) -> tuple[str, str]:
    return ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}")
