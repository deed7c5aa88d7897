"""The progress line: plain lines off a terminal (one per phase at most), a status line with the
time left for a suite, and colours only where wanted."""

from __future__ import annotations

import io
import itertools

from orchestrator.progress import Progress, verdict_text


class Pipe(io.StringIO):
    def isatty(self):
        return False


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_each_phase_is_one_plain_line():
    out = Pipe()
    progress = Progress(total=1, stream=out)
    for phase, acked in [("up", None), ("step 1/5: probe start", 0), ("step 1/5: probe start", 120),
                         ("step 2/5: wait 2s", 900), ("step 3/5: kill master", 5000), ("read-back", 9000),
                         ("teardown", 9000)]:
        progress.phase(0, "persistence kill-restart [rdb]", phase, acked)
    progress.close()
    assert out.getvalue().splitlines() == [
        "persistence kill-restart [rdb]: up",
        "persistence kill-restart [rdb]: step 1/5",
        "persistence kill-restart [rdb]: read-back (9000 acknowledged)",
        "persistence kill-restart [rdb]: teardown (9000 acknowledged)",
    ]


def test_a_suite_status_says_runs_done_and_time_left():
    ticks = itertools.count(0.0, 10.0)
    progress = Progress(total=10, stream=Pipe(), clock=lambda: next(ticks))
    progress.phase(0, "a", "up")
    progress.phase(1, "b", "step 2/6: kill master", 800)
    progress.finished(0, 12.0)
    progress.finished(2, 18.0)
    # 8 runs left x 15 s on average / 1 run going at once
    assert progress.estimate_left() == 120.0
    status = progress.status()
    assert status.startswith("2/10 runs done")
    assert "about 120 s left" in status and "b: step 2/6: kill master" in status


def test_a_single_run_status_shows_the_writes_acknowledged():
    ticks = itertools.count(0.0, 0.5)
    progress = Progress(total=1, stream=Pipe(), clock=lambda: next(ticks))
    progress.phase(0, "sentinel kill-master [aof-everysec]", "step 3/7: kill master", 4321)
    assert progress.status().endswith("· 4321 acknowledged")


def test_verdict_colours_only_on_a_terminal_without_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert verdict_text("PASS", Pipe()) == "PASS"
    assert verdict_text("FAIL", Terminal()) != "FAIL" and "FAIL" in verdict_text("FAIL", Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert verdict_text("ERROR", Terminal()) == "ERROR"
