"""The chart's lower rows: one panel of attempts per bucket for each series, and the rug of
lost acknowledged writes."""

from __future__ import annotations

import math

from .look import (COUNT_LABELS, COUNT_SHORT, DOWN_SHARE, FONT_PX, LEGEND_RANK, LOST_COLOUR, MAIN_COLOUR,
                   OTHER_COLOURS, OTHER_PATTERNS, WINDOW_FILL, WINDOW_PATTERN, layout_key, plain, template_text)
from .result import Series


def _nice_top(value: float) -> float:
    """The smallest 1/2/5 x 10^k at or above `value` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def draw_series(fig, layout, axis, line: Series, spans, span, x_high, legend_done: set) -> None:
    """Main count upwards on its scale, the rest stacked downwards on theirs; hover shows
    the real counts of each bucket."""
    x_name, y_name = axis
    names = list(line.counts)
    main, others = names[0], names[1:]
    length = max(len(v) for v in line.counts.values())
    edges = [round(line.start_t + i * line.bucket_s, 6) for i in range(length + 1)]

    def padded(values):
        return list(values) + [0] * (length - len(values))

    top = _nice_top(max(line.counts[main], default=0))
    other_sum = [sum(vals) for vals in zip(*(padded(line.counts[n]) for n in others))] if others else []
    bottom = _nice_top(max(other_sum, default=0))
    scale = top * DOWN_SHARE / bottom
    for window in spans:
        end = window["to"] if window.get("to") is not None else x_high
        low, high = -top * DOWN_SHARE * 1.05, top * 1.08
        fig.add_scatter(
            x=[window["from"], end, end, window["from"], window["from"]], y=[low, low, high, high, low],
            xaxis=x_name, yaxis=y_name, mode="lines", fill="toself", fillcolor=WINDOW_FILL,
            fillpattern=WINDOW_PATTERN, line={"width": 0}, hoverinfo="skip", name="fault window (fault to heal)",
            legendgroup="window", showlegend="window" not in legend_done, meta="fault-window",
            legendrank=LEGEND_RANK["window"])
        legend_done.add("window")
    floor = [0.0] * length
    for i, name in enumerate(names):
        counts = padded(line.counts[name])
        if i == 0:
            heights = [float(v) for v in counts]
            colour, pattern = MAIN_COLOUR, None
        else:
            heights = [f - v * scale for f, v in zip(floor, counts)]
            colour = OTHER_COLOURS[(i - 1) % len(OTHER_COLOURS)]
            pattern = OTHER_PATTERNS[(i - 1) % len(OTHER_PATTERNS)]
        label = plain(COUNT_LABELS.get(name, name))
        fig.add_scatter(
            x=edges, y=[*heights, heights[-1]], xaxis=x_name, yaxis=y_name, mode="lines",
            line={"shape": "hv", "width": 0.6 if i else 0, "color": "black" if i else colour},
            fill="tozeroy" if i <= 1 else "tonexty", fillcolor=colour,
            **({"fillpattern": {"shape": pattern, "fgcolor": "black", "bgcolor": colour, "size": 6,
                                "solidity": 0.25}} if pattern else {}),
            name=label, legendgroup=f"count-{name}", showlegend=name not in legend_done, meta=f"count-{name}",
            legendrank=LEGEND_RANK["counts"] + i,
            customdata=[[n, end] for n, end in zip([*counts, counts[-1]], [*edges[1:], edges[-1]])],
            hovertemplate=f"%{{customdata[0]}} {template_text(COUNT_LABELS.get(name, name))}<br>"
            f"%{{x:.1f}} – %{{customdata[1]:.1f}} s<extra>{template_text(line.name)}</extra>")
        legend_done.add(name)
        floor = heights if i else floor
    if span:
        for t in (span["from"], span["to"]):
            layout["shapes"].append({"type": "line", "xref": x_name, "yref": f"{y_name} domain", "x0": t, "x1": t,
                                     "y0": 0, "y1": 1, "line": {"color": "black", "width": 1, "dash": "dot"}})
    down_ticks = [bottom] if others else []
    layout[layout_key(y_name)].update(
        range=[-top * DOWN_SHARE * 1.05, top * 1.08],
        tickvals=[0, top / 2, top, *[-v * scale for v in down_ticks]],
        ticktext=["0", f"{top / 2:g}", f"{top:g}", *[f"{v:g}" for v in down_ticks]])
    layout["shapes"].append({"type": "line", "xref": f"{x_name} domain", "yref": y_name, "x0": 0, "x1": 1,
                             "y0": 0, "y1": 0, "line": {"color": "black", "width": 0.8}})
    layout["annotations"].append({"x": 0.003, "y": 0.99, "xref": f"{x_name} domain", "yref": f"{y_name} domain",
                                  "text": f"<b>{plain(line.name)}</b>  attempts per {line.bucket_s:g} s: "
                                  f"{plain(COUNT_SHORT.get(main, main))} ↑"
                                  + (f", {plain(', '.join(COUNT_SHORT.get(n, n) for n in others))} ↓"
                                     if others else ""),
                                  "showarrow": False, "xanchor": "left",
                                  "yanchor": "top", "bgcolor": "rgba(255,255,255,0.85)"})


def _rug_note(lost) -> str:
    """What an empty rug means, from the `lost` metric: none lost, not measured, or lost
    writes whose times the result does not carry."""
    if lost == 0:
        return "<i>no acknowledged write was lost</i>"
    if not isinstance(lost, (int, float)):
        return "<i>lost writes were not measured in this run</i>"
    return f"<i>{lost:g} acknowledged writes lost; the result does not carry their times</i>"


def draw_rug(fig, layout, axis, times: list[float], lost, spans, x_low: float, x_high: float) -> None:
    """One tick per distinct completion time of a lost acknowledged write at about a pixel's
    resolution, so thousands of losses stay a small drawing; hover gives the count. Without
    times, a note says why (see _rug_note)."""
    x_name, y_name = axis
    layout[layout_key(y_name)].update(range=[0, 1], tickvals=[0.5], ticktext=["lost acks"], ticks="")
    for window in spans:
        end = window["to"] if window.get("to") is not None else x_high
        fig.add_scatter(x=[window["from"], end, end, window["from"], window["from"]], y=[0, 0, 1, 1, 0],
                        xaxis=x_name, yaxis=y_name, mode="lines", fill="toself", fillcolor=WINDOW_FILL,
                        fillpattern=WINDOW_PATTERN, line={"width": 0}, hoverinfo="skip", showlegend=False,
                        legendgroup="window", meta="fault-window")
    if not times:
        layout["annotations"].append({"x": 0.5, "y": 0.5, "xref": f"{x_name} domain", "yref": f"{y_name} domain",
                                      "text": _rug_note(lost), "showarrow": False})
        return
    resolution = (x_high - x_low) / 2000
    ticks: dict[float, int] = {}
    for t in times:
        key = round(round(t / resolution) * resolution, 4)
        ticks[key] = ticks.get(key, 0) + 1
    fig.add_scatter(
        x=list(ticks), y=[0.5] * len(ticks), xaxis=x_name, yaxis=y_name, mode="markers",
        marker={"symbol": "line-ns-open", "size": 22, "color": LOST_COLOUR, "line": {"width": 1.2,
                                                                                      "color": LOST_COLOUR}},
        name="lost acknowledged write", meta="lost-rug", customdata=list(ticks.values()),
        legendrank=LEGEND_RANK["lost"],
        hovertemplate="%{customdata} lost write(s) acknowledged at %{x:.3f} s<extra></extra>")
    layout["annotations"].append({
        "x": 1, "y": 1, "xref": f"{x_name} domain", "yref": f"{y_name} domain", "xanchor": "right",
        "yanchor": "bottom", "showarrow": False, "font": {"size": FONT_PX - 1},
        "text": f"{len(times)} lost, acknowledged between {min(times):.3f} and {max(times):.3f} s"})
