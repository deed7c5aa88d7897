"""The HTML report in a real browser: headless Chromium (Debian's `chromium`) opens a run
page and an index page from file://, and the test reads back what it rendered.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: fd 3
in, fd 4 out, NUL-terminated JSON), so no port is opened and nothing beyond the standard
library is needed. Through it the test sees every console message, uncaught exception,
browser log entry and network request of the page, queries the DOM after plotly.js drew the
chart, and takes screenshots (screen and print media) and a PDF print under tmp_path.

Skipped when chromium is missing, except under CI=true, where it fails instead.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.htmlreport import write_report, write_run_page
from ..htmlreport_fixtures import cluster_result, error_result, hostile_result, sentinel_result

WIDTH, HEIGHT = 1280, 2000
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--remote-debugging-pipe")


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    reason = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI"):   # as tests/integration/conftest.py: CI must run it
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _moved_above_9(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium and one page, driven over the DevTools pipe. Every event the
    page sends is kept in `events`; `call` waits for its answer up to `timeout_s`."""

    def __init__(self, user_data_dir: Path, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child's ends move to fds >= 10, so mapping them onto 3 and 4 never clobbers one.
        to_chrome_r, from_chrome_w = (_moved_above_9(fd) for fd in (to_chrome_r, from_chrome_w))
        exe = chromium_path()
        # bash (dash refuses fd numbers above 9) maps our pipe ends onto the fds 3 and 4 the
        # protocol uses, closes the originals and execs chromium.
        script = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", script, exe, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=(user_data_dir.parent / "chromium.log").open("wb"))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                  mobile=False)

    def _send(self, message: dict) -> None:
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._receive(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    def open(self, path: Path) -> None:
        """Navigate to `path` and wait for its load event (plotly draws during the load)."""
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def print_pdf(self, path: Path) -> Path:
        data = self.call("Page.printToPDF", landscape=True, printBackground=False)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and browser log entries."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('text')} "
                             f"{details.get('exception', {}).get('description', '')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError, ConnectionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def browser(tmp_path):
    chromium_path()
    profile = tmp_path / "profile"
    profile.mkdir()
    instance = Browser(profile)
    yield instance
    instance.close()


# What plotly.js drew, read from the DOM: each trace's rendered marker points and text labels,
# keyed by the `meta` the figure gave it (plotly tags a trace's <g> with class "trace<uid>").
RENDERED = """(() => {
  const el = document.getElementById('chart');
  if (!el || !el._fullData) return null;
  const traces = {};
  for (const t of el._fullData) {
    const g = el.querySelector('g.trace' + t.uid);
    const entry = traces[t.meta] || (traces[t.meta] = {points: 0, texts: [], paths: 0});
    if (!g) continue;
    entry.points += g.querySelectorAll('path.point').length;
    entry.paths += g.querySelectorAll('path').length;
    g.querySelectorAll('text').forEach(x => entry.texts.push(x.textContent));
  }
  return {traces, svgs: el.querySelectorAll('svg.main-svg').length,
          legend: [...el.querySelectorAll('.legendtext')].map(x => x.textContent),
          annotations: [...el.querySelectorAll('.annotation-text')].map(x => x.textContent),
          width: el.getBoundingClientRect().width, docWidth: document.documentElement.scrollWidth};
})()"""


def only_local(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(("file://", "data:"))]


def test_a_run_page_draws_its_chart_and_markers_without_console_errors(browser, tmp_path):
    result = sentinel_result()
    page = write_run_page(result, tmp_path / "out" / "failover.html")
    browser.open(page)
    drawn = browser.evaluate(RENDERED)
    assert drawn, "plotly.js drew no chart"
    events = result["events"]
    tool_steps = sum(e["source"] == "tool" for e in events)
    client_events = sum(e["source"] == "client" for e in events)
    server_rows = browser.evaluate("document.querySelectorAll('#events tr.src-server').length")
    assert drawn["traces"]["markers-tool"]["points"] == tool_steps
    assert drawn["traces"]["markers-client"]["points"] == client_events
    assert drawn["traces"]["markers-server"]["points"] == server_rows > 0
    assert any("kill master" in text for text in drawn["traces"]["labels-tool"]["texts"])
    assert any("+switch-master" in text for text in drawn["traces"]["labels-server"]["texts"])
    assert drawn["traces"]["outage"]["points"] == 2
    assert drawn["traces"]["fault-window"]["paths"] >= 3
    assert "unavailable_s 3.303 s" in drawn["annotations"]
    assert "acknowledged" in drawn["legend"] and "fault window (fault to heal)" in drawn["legend"]
    assert drawn["width"] <= drawn["docWidth"] <= WIDTH     # fits a 1280 px laptop screen
    assert browser.problems() == []
    assert only_local(browser.requested_urls()) == []
    shot = browser.screenshot(tmp_path / "failover.png")
    assert shot.stat().st_size > 50_000

    browser.call("Emulation.setEmulatedMedia", media="print")
    assert browser.evaluate("getComputedStyle(document.querySelector('.hint')).display") == "none"
    assert browser.evaluate("getComputedStyle(document.querySelector('.print-only')).display") == "block"
    browser.screenshot(tmp_path / "failover-print.png")
    pdf = browser.print_pdf(tmp_path / "failover.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000


def test_hostile_text_stays_text_in_the_browser(browser, tmp_path):
    page = write_run_page(hostile_result("<img src=x onerror=console.error('pwned')><b>bold</b>"),
                          tmp_path / "hostile.html")
    browser.open(page)
    assert browser.evaluate("document.querySelectorAll('img, b').length") == 0
    title = browser.evaluate("document.querySelector('h1').textContent")
    assert "<img src=x onerror=console.error('pwned')><b>bold</b>" in title
    drawn = browser.evaluate(RENDERED)
    assert any("<b>bold</b>" in text for text in drawn["annotations"])   # shown as typed in the chart
    assert browser.problems() == []
    assert only_local(browser.requested_urls()) == []


def test_the_index_links_every_run_and_its_pages_open(browser, tmp_path):
    results = [sentinel_result(), cluster_result(), error_result(), hostile_result()]
    index = write_report(results, tmp_path / "report")
    browser.open(index)
    cells = browser.evaluate("""[...document.querySelectorAll('a.run')].map(a => ({
        cls: a.className, href: a.getAttribute('href'), bg: getComputedStyle(a).backgroundColor,
        border: getComputedStyle(a).borderTopStyle + ' ' + getComputedStyle(a).borderTopWidth}))""")
    assert len(cells) == len(results)
    by_verdict = {c["cls"].split()[1]: c for c in cells}
    assert set(by_verdict) == {"pass", "fail", "error"}
    assert len({c["bg"] for c in by_verdict.values()}) == 3          # one colour per verdict
    assert len({c["border"] for c in by_verdict.values()}) == 3      # and one border, for print
    assert browser.problems() == []
    browser.screenshot(tmp_path / "index.png")
    for cell in cells:
        target = index.parent / cell["href"]
        assert target.is_file()
        browser.open(target)
        drawn = browser.evaluate(RENDERED)
        assert drawn and drawn["traces"]["markers-tool"]["points"] > 0, cell["href"]
        assert browser.problems() == [], cell["href"]
        assert only_local(browser.requested_urls()) == [], cell["href"]
    browser.screenshot(tmp_path / "cluster-or-last.png")


def test_the_checks_see_console_errors_exceptions_and_requests(browser, tmp_path):
    """The harness itself: a page that logs an error, throws and loads a sibling file is
    caught by problems() and requested_urls(), so an empty list above means a clean page."""
    (tmp_path / "style.css").write_text("body { color: black; }")
    page = tmp_path / "noisy.html"
    page.write_text('<!doctype html><link rel="icon" href="data:,"><link rel="stylesheet" href="style.css">'
                    '<script>console.error("boom"); console.warn("careful")</script>'
                    '<script>throw new Error("thrown")</script>')
    browser.open(page)
    problems = " ".join(browser.problems())
    assert "boom" in problems and "careful" in problems and "thrown" in problems
    assert [u.rsplit("/", 1)[-1] for u in browser.requested_urls()] == ["noisy.html", "style.css"]
