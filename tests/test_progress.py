"""The progress bar (simulator.progress): when it shows, and that it changes nothing."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from simulator import ConfigError, progress
from tests.conftest import FLEET, run

BASE = ["workload.num_requests=150", "output.charts=false", "output.console=false"]


class Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120)


@pytest.fixture
def quiet_env(monkeypatch):
    for name in progress.QUIET_ENV:
        monkeypatch.delenv(name, raising=False)


def test_auto_shows_only_on_a_terminal_outside_ci(quiet_env, monkeypatch):
    assert progress.enabled("auto", stream=Stream(True), environ={})
    assert not progress.enabled("auto", stream=Stream(False), environ={})
    assert not progress.enabled("auto", stream=Stream(True), environ={"CI": "true"})
    assert not progress.enabled("auto", stream=Stream(True), environ={"SERVESIM_NO_PROGRESS": "1"})
    assert progress.enabled("auto", stream=Stream(True), environ={"CI": ""})  # set but empty: not set
    assert not progress.enabled("auto", stream=object(), environ={})  # no isatty at all
    # the defaults: sys.stderr and os.environ
    monkeypatch.setattr("sys.stderr", Stream(True))
    assert progress.enabled("auto")
    monkeypatch.setenv("CI", "true")
    assert not progress.enabled("auto")


def test_on_and_off_ignore_the_terminal():
    for tty in (True, False):
        for env in ({}, {"CI": "1"}):
            assert progress.enabled("on", stream=Stream(tty), environ=env)
            assert not progress.enabled("off", stream=Stream(tty), environ=env)


def test_mode_values():
    assert [progress.mode(v) for v in ("auto", "ON", "off", True, False, "yes", "0")] == [
        "auto",
        "on",
        "off",
        "on",
        "off",
        "on",
        "off",
    ]
    with pytest.raises(ConfigError, match=r"output.progress='sometimes' is invalid; choose one of: auto, on, off"):
        progress.mode("sometimes")


SCENARIOS = {
    "default": [],
    "fleet": [  # extra processes: an autoscaler, a failure and its repair, retries
        *FLEET,
        "admission.max_queue=4",
        "workload.retry.max_attempts=3",
    ],
    "closed_loop": ["workload.arrival=closed_loop", "workload.users=8"],
    "disaggregated": ["cluster=disaggregated"],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_results_identical_with_the_bar_on_or_off(name):
    off = run(*SCENARIOS[name], "output.progress=off", base=BASE)
    with progress.use_console(console()) as bars:
        on = run(*SCENARIOS[name], "output.progress=on", base=BASE)
    assert len(bars) == 1  # it really ran the stepped loop
    pd.testing.assert_frame_equal(on.requests, off.requests, check_exact=True)
    pd.testing.assert_frame_equal(on.steps, off.steps, check_exact=True)
    pd.testing.assert_frame_equal(on.replicas, off.replicas, check_exact=True)
    assert on.summary == off.summary


def test_bar_reaches_100_percent():
    out = console()
    with progress.use_console(out) as bars:
        result = run("output.progress=on", base=BASE)
    (bar,) = bars
    assert bar.finished and bar.fraction == 1.0
    assert bar.total == pytest.approx(result.requests["arrival_s"].max())  # simulated time to the last arrival
    assert bar.done == bar.total_requests == len(result.requests)
    # an event per arrival at least (a fast-forwarded run of decode steps is one event, so not one per step)
    assert bar.events > len(result.requests)
    text = out.file.getvalue()
    assert "100%" in text and f"{len(result.requests)}/{len(result.requests)} req" in text and "events/s" in text


def test_closed_loop_counts_requests():
    with progress.use_console(console()) as bars:
        result = run("workload.arrival=closed_loop", "workload.users=4", "output.progress=on", base=BASE)
    (bar,) = bars
    assert bar.total_s is None and bar.total == len(result.requests)
    assert bar.completed == bar.total and bar.fraction == 1.0


def test_off_draws_nothing():
    with progress.use_console(console()) as bars:
        run("output.progress=off", base=BASE)
    assert bars == []


def test_auto_follows_the_injected_console():
    with progress.use_console(console()) as bars:
        run("output.progress=auto", base=BASE)
    assert len(bars) == 1


def test_bad_value_is_one_sentence():
    with pytest.raises(ConfigError, match="output.progress"):
        run("output.progress=sometimes", base=BASE)
