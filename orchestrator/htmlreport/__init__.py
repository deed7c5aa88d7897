"""HTML pages from saved run results: one page per run (timeline chart, numbered events,
expectations, metrics, shards, roles) and an index for verify/compare (a scenario x mode
matrix coloured by verdict).

Input is the dict `lab ... --json` writes for one run. The chart is a plotly.js figure
written as JSON; plotly.js itself comes from the plotly package, as one file beside the
pages or inlined. Importing this package costs jinja2 only; plotly.offline (the bundle
and its version) is imported when a page with a chart is rendered. It imports nothing else
of `orchestrator`.
"""

from .files import page_name, page_names, write_report, write_run_page
from .index import render_index
from .page import render_run_page

__all__ = ["render_run_page", "render_index", "write_run_page", "write_report", "page_name", "page_names"]
