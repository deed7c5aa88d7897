"""How the chart looks: colours, patterns, names and sizes, shared by its parts.

Colours are Okabe-Ito (colour-blind safe); every fill also has its own hatch pattern and
every lane its own marker shape, so a black-and-white print tells them apart.
"""

import html

# Okabe-Ito: blue, vermillion, orange, reddish purple, sky blue, bluish green, yellow, black.
MAIN_COLOUR = "#0072B2"
OTHER_COLOURS = ("#D55E00", "#E69F00", "#CC79A7", "#56B4E9", "#009E73", "#F0E442", "#000000")
OTHER_PATTERNS = ("x", "\\", "|", "-", "+", ".", "/")
COUNT_LABELS = {  # legend entries for the probe's outcomes; other names are shown as sent
    "ok": "acknowledged",
    "fail": "failed (refused: not applied)",
    "info": "unknown (timed out or reset)",
}
COUNT_SHORT = {"ok": "acknowledged", "fail": "failed", "info": "unknown"}
LANES = {  # source: (lane title, marker symbol, colour)
    "tool": ("tool steps", "triangle-down", "#000000"),
    "server": ("server events", "diamond", "#009E73"),
    "client": ("client (probe)", "circle", "#CC79A7"),
}
WINDOW_FILL = "rgba(120,120,120,0.22)"
WINDOW_PATTERN = {"shape": "/", "fgcolor": "#666666", "bgcolor": WINDOW_FILL, "size": 7, "solidity": 0.15}
LOST_COLOUR = "#D55E00"
LEGEND_RANK = {"counts": 10, "window": 50, "outage": 60, "lost": 70, "lanes": 80}  # legend order

WIDTH_PX = 1100
MARGIN = {"l": 118, "r": 24, "t": 28, "b": 100}   # the legend sits under the x axis
ROW_PX = 16            # one text row in the event lanes
PANEL_PX = 170         # one series panel
RUG_PX = 44
GAP_PX = 14            # between the rows of the figure
FONT_PX = 11
LABEL_CHAR_PX = 6.4    # a digit at FONT_PX - 1
MAX_LABEL_ROWS = 4
MERGE_PX = 8           # markers of one lane closer than this share one label
SPOT_PX = 3            # markers closer than this share one hover
DOWN_SHARE = 0.45      # the downward stack's height relative to the upward one
HOVER_WRAP = 110       # characters per hover line


def plain(text) -> str:
    """Text for plotly.js, which reads a few HTML tags in any string: escaped, so a `<b>`
    or `<script>` in an event shows as typed."""
    return html.escape(str(text), quote=False)


def template_text(text) -> str:
    """Free text inside a plotly hovertemplate: escaped like `plain`, and "%{" broken by a
    zero-width space so a name can never read as a placeholder."""
    return plain(text).replace("%{", "%\u200b{")


def number_ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 7] -> "3–5,7"."""
    parts, run = [], []
    for n in sorted(numbers):
        if run and n != run[-1] + 1:
            parts.append(run)
            run = []
        run.append(n)
    if run:
        parts.append(run)
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in parts)


def layout_key(axis: str) -> str:
    """"x2" -> "xaxis2": the layout entry of an axis a trace names."""
    return f"{axis[0]}axis{axis[1:]}"
