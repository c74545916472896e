"""replications=N: independent seeds, and the spread of every headline figure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rich.console import Console

from simulator.errors import ConfigError
from simulator.metrics.headline import headline
from simulator.metrics.replications import spread, t975
from simulator.report.console import render_summary
from tests.conftest import run

POINT = ["workload.num_requests=200", "workload.rate=10"]


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.706) and t975(4) == pytest.approx(2.776) and t975(30) == pytest.approx(2.042)
    assert t975(500) == 1.96
    with pytest.raises(ValueError):
        t975(0)


def test_spread_is_the_student_t_interval_of_the_mean():
    d = spread([1.0, 2.0, 3.0, 4.0])
    half = 3.182 * math.sqrt(np.var([1, 2, 3, 4], ddof=1)) / 2  # t(0.975, 3 dof)
    assert d["mean"] == 2.5 and d["ci95_low"] == pytest.approx(2.5 - half) and d["ci95_high"] == pytest.approx(2.5 + half)
    # missing values are left out of the figures and kept as None in the list
    d = spread([1.0, float("nan"), 3.0])
    assert d["mean"] == 2.0 and d["values"] == [1.0, None, 3.0]
    assert spread([float("nan")])["mean"] is None
    assert spread([5.0])["ci95_low"] is None  # one value: no interval
    assert spread([0.0, 0.0, 1.0])["ci95_low"] == 0.0  # a figure that cannot be negative


def test_each_replication_is_the_run_with_its_own_seed(tmp_path):
    r = run(*POINT, "replications=3", "seed=7")
    block = r.summary["replications"]
    assert block["n"] == 3 and block["seeds"] == [7, 8, 9]
    assert [o.config.seed for o in r.replications] == [8, 9]
    for k, seed in enumerate(block["seeds"]):
        alone = headline(run(*POINT, f"seed={seed}").summary)
        assert block["figures"]["ttft_p99_s"]["values"][k] == alone["ttft_p99_s"]
        assert block["figures"]["goodput_rps"]["values"][k] == alone["goodput_rps"]
    # the first replication is the run itself
    assert r.summary["latency_s"]["ttft"]["p99"] == block["figures"]["ttft_p99_s"]["values"][0]
    # saved: the first run's files, and each other replication's data beside them
    out = r.save(tmp_path / "run", charts=False)
    for k in (1, 2):
        saved = json.loads((out / f"replication-{k}" / "summary.json").read_text())
        assert saved["scenario"]["seed"] == 7 + k and "replications" not in saved
    assert json.loads((out / "summary.json").read_text())["replications"]["seeds"] == [7, 8, 9]


def test_replications_are_deterministic_and_printed():
    a, b = run(*POINT, "replications=2"), run(*POINT, "replications=2")
    assert a.summary["replications"] == b.summary["replications"]
    console = Console(width=100, record=True)
    render_summary(a.summary, console=console)
    text = console.export_text()
    assert "replications: 2 seeds (0–1)" in text and "p99 TTFT" in text and "±" in text
    assert max(len(line) for line in text.splitlines() if "replications" in line or "±" in line) <= 80


def test_one_replication_adds_nothing():
    r = run(*POINT)
    assert "replications" not in r.summary and r.replications == []


def test_replications_must_be_positive():
    with pytest.raises(ConfigError, match="replications must be an integer >= 1"):
        run(*POINT, "replications=0")


def test_headline_names_are_the_published_list():
    from simulator.metrics.headline import FIGURES

    assert tuple(headline(run(*POINT).summary)) == FIGURES
