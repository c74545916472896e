"""The console summary: the lines a user reads first (simulator/report/console.py)."""

from __future__ import annotations

import io

from rich.console import Console

import simulator
from simulator.report.console import _ms, overload_note, render_summary

QUICK = ["workload.num_requests=200", "output.charts=false", "output.console=false"]


def text(summary: dict, outdir: str | None = None) -> str:
    buf = io.StringIO()
    render_summary(summary, outdir, Console(file=buf, width=200, highlight=False, soft_wrap=True))
    return buf.getvalue()


def test_overload_is_named_with_what_the_run_served():
    r = simulator.run([*QUICK, "workload.rate=40"])  # one H100 serves ~14 req/s
    out = text(r.summary)
    assert "note: overloaded: 40 req/s offered" in out and "servesim-plan max-rate" in out
    assert overload_note(simulator.run([*QUICK, "workload.rate=4"]).summary) is None


def test_large_latencies_name_their_unit():
    assert _ms(0.0421) == "42.1" and _ms(2.435) == "2,435.0"
    assert _ms(12.5) == "12.5 s" and _ms(2435.258) == "40.6 min"


def test_closed_loop_says_users_not_offered_zero():
    r = simulator.run([*QUICK, "workload.arrival=closed_loop", "workload.users=8"])
    out = text(r.summary)
    assert "closed loop, 8 users" in out and "offered 0" not in out


def test_a_perfetto_file_is_mentioned(tmp_path):
    r = simulator.run([*QUICK, "output.perfetto=true"])
    r.save(tmp_path)
    assert f"timeline: {tmp_path / 'timeline.perfetto.json'} (open it at ui.perfetto.dev)" in text(r.summary, str(tmp_path))
