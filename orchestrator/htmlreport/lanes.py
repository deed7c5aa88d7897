"""The chart's top rows: one lane of numbered markers per event source, then the fault
windows as hatched bars and the outage as a span.

Labels: markers of one lane closer than MERGE_PX share one label ("9–19 +sdown, +odown":
the numbers of the event list, then the names of up to two key events), placed on the
lowest free row above the lane. Hover: markers drawn on one spot (within SPOT_PX) share one
hover listing every event there, as the mouse can only reach the topmost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .look import (FONT_PX, HOVER_WRAP, LABEL_CHAR_PX, LANES, LEGEND_RANK, MAX_LABEL_ROWS, MERGE_PX, SPOT_PX,
                   WINDOW_FILL, WINDOW_PATTERN, layout_key, number_ranges, plain)
from .result import Marker


@dataclass
class _Cluster:
    """Markers of one lane that share a label; `row` is the label's row above the lane,
    `align` where the label sits: centred on the marker, or ending ("left") or starting
    ("right") at it near the plot's edges."""
    markers: list
    row: int = 0
    align: str = "center"

    @property
    def t(self) -> float:
        return self.markers[0].t

    @property
    def label(self) -> str:
        """The numbers, then the names of up to two distinct key events: "9–19 +sdown, +odown"."""
        names = list(dict.fromkeys(m.label for m in self.markers if m.key))
        numbers = number_ranges([m.number for m in self.markers])
        if not names:
            return numbers
        return f"{numbers} {', '.join(names[:2])}{'…' if len(names) > 2 else ''}"


def clusters(lane: list[Marker], seconds_per_px: float, x_range: tuple[float, float]) -> list[_Cluster]:
    """Markers closer than MERGE_PX share a label; each label takes the lowest row where it
    does not overlap the one before it (widths estimated from the character count)."""
    clusters: list[_Cluster] = []
    for m in lane:
        if clusters and (m.t - clusters[-1].markers[-1].t) / seconds_per_px <= MERGE_PX:
            clusters[-1].markers.append(m)
        else:
            clusters.append(_Cluster([m]))
    row_end = [-math.inf] * MAX_LABEL_ROWS
    for c in clusters:
        width = (len(c.label) * LABEL_CHAR_PX + 8) * seconds_per_px
        start, end = c.t - width / 2, c.t + width / 2
        if end > x_range[1]:
            c.align, start, end = "left", c.t - width, c.t
        elif start < x_range[0]:
            c.align, start, end = "right", c.t, c.t + width
        free = [r for r in range(MAX_LABEL_ROWS) if row_end[r] < start]
        c.row = free[0] if free else min(range(MAX_LABEL_ROWS), key=lambda r: row_end[r])
        row_end[c.row] = end
    return clusters


def _hover(marker: Marker) -> str:
    """"<b>25</b> 4.972 s  +switch-master ..." wrapped at HOVER_WRAP, then who reported it."""
    text, lines = f"{marker.t:.3f} s  {marker.text}", []
    while text:
        cut = len(text) if len(text) <= HOVER_WRAP else (text.rfind(" ", 0, HOVER_WRAP) + 1 or HOVER_WRAP)
        lines.append(plain(text[:cut]))
        text = text[cut:]
    lines[0] = f"<b>{marker.number}</b>  {lines[0]}"
    if marker.reporters:
        lines.append("<i>reported by " + plain(", ".join(marker.reporters)) + "</i>")
    return "<br>".join(lines)


def _spots(lane: list[Marker], seconds_per_px: float) -> list[list[Marker]]:
    """Markers drawn on one spot (within SPOT_PX of the first): one hover shows them all, as
    the mouse can only ever reach the topmost."""
    spots: list[list[Marker]] = []
    for m in lane:
        if spots and (m.t - spots[-1][0].t) / seconds_per_px <= SPOT_PX:
            spots[-1].append(m)
        else:
            spots.append([m])
    return spots


def draw_lanes(fig, layout, axis, lanes, spans, span, result, x_high, seconds_per_px) -> None:
    """Event lanes top-down (y counts rows downwards from 0), then one row per fault window
    and one for the outage."""
    x_name, y_name = axis
    y = 0.0
    ticks, names = [], []
    for source, clusters in lanes.items():
        title, symbol, colour = LANES[source]
        rows = max(c.row for c in clusters) + 1
        base = y - rows - 0.6
        ticks.append(base)
        names.append(title)
        lane_markers = [m for c in clusters for m in c.markers]
        fig.add_scatter(
            x=[m.t for m in lane_markers], y=[base] * len(lane_markers), xaxis=x_name, yaxis=y_name,
            mode="markers", name=title, legendgroup=f"lane-{source}", meta=f"markers-{source}",
            legendrank=LEGEND_RANK["lanes"] + list(LANES).index(source),
            customdata=[m.number for m in lane_markers], hoverinfo="skip",
            marker={"symbol": symbol, "size": 9, "color": colour, "line": {"color": "black", "width": 0.6}})
        spots = _spots(lane_markers, seconds_per_px)
        fig.add_scatter(
            x=[spot[0].t for spot in spots], y=[base] * len(spots), xaxis=x_name, yaxis=y_name, mode="markers",
            showlegend=False, meta=f"hover-{source}", customdata=[[m.number for m in spot] for spot in spots],
            hovertext=["<br>".join(_hover(m) for m in spot) for spot in spots], hoverinfo="text",
            hoverlabel={"align": "left", "bgcolor": "white", "bordercolor": colour, "font": {"color": "#222222"}},
            marker={"symbol": "square", "size": 12, "opacity": 0})
        leads_x, leads_y = [], []
        for c in clusters:
            if c.row:
                leads_x += [c.t, c.t, None]
                leads_y += [base + 0.35, base + c.row + 0.45, None]
        if leads_x:
            fig.add_scatter(x=leads_x, y=leads_y, xaxis=x_name, yaxis=y_name, mode="lines", hoverinfo="skip",
                            showlegend=False, line={"color": "#888888", "width": 0.7})
        fig.add_scatter(
            x=[c.t for c in clusters], y=[base + 0.55 + c.row for c in clusters], xaxis=x_name, yaxis=y_name,
            mode="text", text=[plain(c.label) for c in clusters], textposition=[f"top {c.align}" for c in clusters],
            showlegend=False,
            hoverinfo="skip", meta=f"labels-{source}", textfont={"size": FONT_PX - 1})
        y -= rows + 1
    for window in spans:
        base = y - 1.1
        end = window["to"] if window.get("to") is not None else x_high
        healed = "" if window.get("to") is not None else " (not healed)"
        what = plain(str(window.get("what") or "fault") + healed)
        fig.add_scatter(
            x=[window["from"], end, end, window["from"], window["from"]],
            y=[base - 0.45, base - 0.45, base + 0.45, base + 0.45, base - 0.45], xaxis=x_name, yaxis=y_name,
            mode="lines", fill="toself", fillcolor=WINDOW_FILL, fillpattern=WINDOW_PATTERN,
            line={"color": "#555555", "width": 0.8}, name="fault window (fault to heal)",
            legendgroup="window", showlegend=False, meta="fault-window",
            hoverinfo="text", hoveron="fills+points", hovertext=f"{what}<br>{window['from']:.3f} – "
            + (f"{window['to']:.3f} s" if window.get("to") is not None else "end"))
        layout["annotations"].append({"x": window["from"], "y": base, "xref": x_name, "yref": y_name,
                                      "text": what, "showarrow": False, "xanchor": "left", "xshift": 4,
                                      "font": {"size": FONT_PX - 1}, "bgcolor": "rgba(255,255,255,0.8)"})
        ticks.append(base)
        names.append("fault window")
        y -= 2
    if span:
        base = y - 1.0
        metric = str(span.get("metric") or "unavailable_s")
        value = (result.get("metrics") or {}).get(metric)
        seconds = value if isinstance(value, (int, float)) else span["to"] - span["from"]
        label = plain(f"{metric} {seconds:.3f} s")
        fig.add_scatter(
            x=[span["from"], span["to"]], y=[base, base], xaxis=x_name, yaxis=y_name, mode="lines+markers",
            line={"color": "black", "width": 2}, marker={"symbol": "line-ns-open", "size": 12, "color": "black",
                                                           "line": {"width": 2}},
            name="outage: last ack before the fault to first ack after", showlegend=True, meta="outage",
            legendrank=LEGEND_RANK["outage"],
            hoverinfo="text",
            hovertext=f"{label}<br>{span['from']:.3f} – {span['to']:.3f} s")
        layout["annotations"].append({"x": span["to"], "y": base, "xref": x_name, "yref": y_name, "text": label,
                                      "showarrow": False, "xanchor": "left", "xshift": 8,
                                      "font": {"size": FONT_PX - 1}})
        ticks.append(base)
        names.append("outage")
        y -= 2
    layout[layout_key(y_name)].update(range=[y + 0.2, 0.3], tickvals=ticks, ticktext=names, ticks="")
