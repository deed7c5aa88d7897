"""The pages' one stylesheet (inline in every page: no request when opened).

Verdicts are told apart three ways: the word (PASS/FAIL/ERROR), an Okabe-Ito tint, and the
border (thin solid, thick solid, thick dashed), so they survive a black-and-white print and
colour blindness. System fonts only: no web font is fetched.
"""

CSS = """
:root {
  --pass: #009E73; --pass-bg: #dff3ea; --fail: #D55E00; --fail-bg: #fbe3d3;
  --error: #9a6b00; --error-bg: #fdf0c8; --ink: #1f2328; --muted: #59636e; --rule: #d8dee4;
}
* { box-sizing: border-box; }
body { margin: 0 auto; padding: 16px 24px 40px; max-width: 1180px; color: var(--ink);
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 1.5em; margin: .2em 0 .3em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .5em; padding-bottom: .2em; border-bottom: 1px solid var(--rule); }
a { color: #0a58a6; }
code { font: .92em ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f4f6; padding: 0 .25em;
       border-radius: 3px; }
.muted, .hint { color: var(--muted); }
.hint { font-size: .88em; margin: .2em 0 .6em; }
.crumbs { margin: 0; font-size: .9em; }
.mode { font-weight: normal; color: var(--muted); font-size: .8em; }
.badge { display: inline-block; padding: .05em .5em; border-radius: 4px; font-weight: 700;
         letter-spacing: .03em; border: 2px solid; }
.verdict-pass .badge, .badge.pass { color: #00573f; background: var(--pass-bg); border: 1px solid var(--pass); }
.verdict-fail .badge, .badge.fail { color: #8a3200; background: var(--fail-bg); border: 3px solid var(--fail); }
.verdict-error .badge, .badge.error { color: #5c4000; background: var(--error-bg); border: 3px dashed var(--error); }
header.verdict { border-left: 6px solid var(--pass); padding: .3em 0 .4em 1em; }
header.verdict-fail { border-left: 6px solid var(--fail); }
header.verdict-error { border-left: 6px dashed var(--error); }
.summary { margin: .2em 0; font-size: 1.05em; }
.facts { margin: .2em 0; color: var(--muted); font-size: .9em; }
.error-box { margin: .8em 0 0; padding: .6em .8em; background: var(--error-bg); border: 2px dashed var(--error); }
.failed-checks { margin: .6em 0 0; padding: .5em .8em; background: var(--fail-bg); border: 2px solid var(--fail); }
.headline { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 0; padding: 0; list-style: none; }
.headline li { border: 1px solid var(--rule); border-radius: 6px; padding: .35em .8em; min-width: 120px; }
.headline .value { display: block; font-size: 1.35em; font-weight: 650; }
.headline .name { font-size: .82em; color: var(--muted); }
.chart-scroll { overflow-x: auto; }
.chart { width: 1100px; min-height: 200px; }   /* look.WIDTH_PX */
.nojs { padding: .6em; border: 1px dashed var(--rule); }
table { border-collapse: collapse; margin: .3em 0; }
th, td { text-align: left; padding: .25em .7em .25em 0; border-bottom: 1px solid var(--rule); vertical-align: top; }
th { font-size: .85em; color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.verdict-pass { color: #00573f; font-weight: 600; }
td.verdict-fail { color: #8a3200; font-weight: 700; }
td.verdict-none { color: #5c4000; font-weight: 700; }
table.events { font-size: .86em; width: 100%; }
table.events td:last-child { width: 100%; }
table.events td.t { white-space: nowrap; font-variant-numeric: tabular-nums; text-align: right; }
table.events td.n { font-weight: 700; text-align: right; }
table.events .who { color: var(--muted); }
table.events td.src { white-space: nowrap; }
.src-tool .glyph { color: #000; } .src-server .glyph { color: #009E73; } .src-client .glyph { color: #CC79A7; }
tr:target { background: #fff6bf; }
details summary { cursor: pointer; color: var(--muted); font-size: .85em; }
details p { margin: .2em 0 .4em; font-size: .9em; }
.print-only { display: none; }
.explain { max-width: 78ch; }
dl.roles { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1em; margin: .3em 0; }
dl.roles dt { font-weight: 600; } dl.roles dd { margin: 0; }
footer { margin-top: 2.5em; font-size: .8em; color: var(--muted); }
/* index */
table.matrix th, table.matrix td { padding: .3em; }
table.matrix td.cell { min-width: 150px; }
.run { display: block; text-decoration: none; color: inherit; border-radius: 5px; padding: .3em .5em; margin: 2px 0; }
.run.pass { background: var(--pass-bg); border: 1px solid var(--pass); }
.run.fail { background: var(--fail-bg); border: 3px solid var(--fail); }
.run.error { background: var(--error-bg); border: 3px dashed var(--error); }
.run:hover, .run:focus { outline: 2px solid #0a58a6; }
.run .word { font-weight: 700; font-size: .85em; letter-spacing: .03em; }
.run .nums { display: block; font-size: .82em; font-variant-numeric: tabular-nums; }
.na { color: var(--muted); font-size: .85em; }
th.lab { padding-top: 1em; font-size: .95em; color: var(--ink); }
ul.problems li { margin: .2em 0; }
@media print {
  @page { size: A4 landscape; margin: 10mm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  .hint, .modebar-container, .nojs { display: none !important; }
  .chart-scroll { overflow: visible; }
  .chart { zoom: 0.82; }   /* 1100 px wide: fits A4 landscape beside the page header */
  a { color: inherit; text-decoration: none; }
  details summary { display: none; }
  details p { display: none; }
  .print-only { display: block; font-size: .85em; color: #333; margin: .1em 0 .3em; }
  .chart-scroll, .headline, header, tr, h2 { break-inside: avoid; }
  h2 { break-after: avoid; }
  tr:target { background: none; }
}
"""
