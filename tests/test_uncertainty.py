"""uncertainty=on: each run draws the latency model's measured error; replications give intervals."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.errors import ConfigError
from simulator.latency.uncertainty import MIN_CASES, MODEL_ERROR, gpu_family
from simulator.plan import maxrate

QUIET = ["output.console=false", "output.charts=false"]
PUBLISHED = Path(simulator.__file__).resolve().parents[1] / "docs" / "published" / "published.csv"


def _run(*overrides: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulator.run([*QUIET, *overrides])


def test_the_model_error_table_is_the_published_suites_held_out_errors():
    """MODEL_ERROR is what docs/published/published.csv gives: log(real / predicted step time)
    per GPU family over the held-out cases (throughput: predicted / measured; latency: the inverse)."""
    d = pd.read_csv(PUBLISHED)
    d = d[d["skipped"].isna() & (d["split"] == "holdout")]
    log_c = np.where(d["family"] == "throughput", np.log1p(d["error"]), -np.log1p(d["error"]))
    fam = d["hardware"].map(gpu_family).to_numpy()
    for family, (mean, sd, cases) in MODEL_ERROR.items():
        sel = np.ones(len(d), bool) if family == "pooled" else fam == family
        assert cases == sel.sum() >= MIN_CASES
        assert mean == pytest.approx(log_c[sel].mean(), abs=5e-5) and sd == pytest.approx(log_c[sel].std(ddof=1), abs=5e-5)


def test_a_run_scales_every_step_time_by_its_draw():
    one = ["workload.num_requests=1", "seed=3"]
    off, on = _run(*one), _run(*one, "uncertainty=on")
    factor = on.summary["uncertainty"]["pools"]["mixed"]["factor"]
    mean, sd, _ = MODEL_ERROR["hopper"]
    assert factor == pytest.approx(math.exp(mean + sd * on.summary["uncertainty"]["z"]))
    assert factor != pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(on.steps["duration_s"].to_numpy(), off.steps["duration_s"].to_numpy() * factor, rtol=1e-12)
    assert "uncertainty" not in off.summary


def _width(result, figure: str) -> float:
    f = result.summary["replications"]["figures"][figure]
    return f["interval_high"] - f["interval_low"]


def test_the_interval_widens_with_model_error_and_the_ci_narrows_with_replications():
    base = ["uncertainty=on", "workload.num_requests=150", "latency.error_log_mean=0"]
    exact = _run(*base, "latency.error_log_sd=0", "replications=12")
    loose = _run(*base, "latency.error_log_sd=0.3", "replications=12")
    assert _width(loose, "ttft_p50_s") > 1.5 * _width(exact, "ttft_p50_s")  # seed noise alone vs with model error
    many = _run(*base, "latency.error_log_sd=0.3", "replications=36")
    ci = lambda r: r.summary["replications"]["figures"]["ttft_p50_s"]["ci95_high"] - r.summary["replications"]["figures"]["ttft_p50_s"]["ci95_low"]  # noqa: E731
    assert ci(many) < ci(loose)  # the mean is pinned down by more runs; the interval is not


def test_max_rate_with_confidence_asks_that_share_of_replications(monkeypatch, tmp_path):
    """A stand-in for the simulation: replication k of a probe at rate r has TTFT p99 r x 0.01 x (1 + k / 10).
    At 80% confidence of 10 replications the 8th slowest must pass: r <= 1 / 0.017 = 58.8."""

    def fake(overrides, seeds, run_dir):
        rate = float([o for o in overrides if o.startswith("workload.rate=")][-1].split("=")[1])  # the probe's
        rows = [{"ttft_p99_s": rate * 0.01 * (1 + k / 10), "rejection_rate": 0.0} for k in range(len(seeds))]
        return {"figures": {"ttft_p99_s": float(np.mean([r["ttft_p99_s"] for r in rows])), "rejection_rate": 0.0},
                "per_seed": rows, "wall_s": 0.0}  # fmt: skip

    monkeypatch.setattr(maxrate, "_run_point", fake)
    kw = {"replications": 10, "lo": 10.0, "rel_tol": 0.001, "requests": 10, "out_dir": tmp_path}
    sure = maxrate.max_rate(["workload.rate=20"], "ttft_p99_s<=1", confidence=0.8, **kw)
    mean = maxrate.max_rate(["workload.rate=20"], "ttft_p99_s<=1", **kw)
    assert sure.rate == pytest.approx(1 / 0.017, rel=0.002)
    assert mean.rate == pytest.approx(1 / 0.0145, rel=0.002)  # the mean replication is 1.45 x 0.01
    assert "in 80% of replications" in sure.answer


@pytest.mark.parametrize(("overrides", "message"), [
    (["uncertainty.interval=1.5"], "uncertainty.interval"),
    (["latency.error_log_sd=-0.1"], "latency.error_log_sd"),
])  # fmt: skip
def test_bad_uncertainty_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _run(*overrides, "workload.num_requests=5")


def test_confidence_needs_replications(tmp_path):
    with pytest.raises(ConfigError, match="replications"):
        maxrate.max_rate(["workload.num_requests=5"], "ttft_p99_s<=1", confidence=0.9, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="share of replications"):
        maxrate.max_rate(["workload.num_requests=5"], "ttft_p99_s<=1", confidence=1.5, replications=4, out_dir=tmp_path)


def test_too_few_replications_give_no_interval():
    """A central 90% interval needs 10 replications (on average one value beyond it); with 2 there is
    only the mean's confidence interval."""
    from simulator.metrics.replications import min_runs, spread

    assert min_runs(0.9) == 10 and min_runs(0.5) == 2
    two = spread([0.16, 0.17])
    assert two["interval_low"] is None and two["ci95_low"] is not None
    ten = spread([float(v) for v in range(10)])
    assert ten["interval_low"] == pytest.approx(0.45) and ten["interval_high"] == pytest.approx(8.55)


def test_cheapest_with_confidence_sizes_to_that_share_of_replications(monkeypatch, tmp_path):
    """A stand-in simulation: replication k of n replicas has TTFT p99 (1 + k / 10) / n. The mean of 10
    replications (1.45 / n) meets 0.5 s from 3 replicas; 80% of them (the 8th slowest, 1.7 / n) from 4."""
    import importlib

    from simulator.plan import candidates

    cheapest_module = importlib.import_module("simulator.plan.cheapest")

    def fake(overrides, seeds, run_dir):
        n = int([o for o in overrides if o.startswith("cluster.replicas=")][-1].split("=")[1])
        rows = [{"ttft_p99_s": (1 + k / 10) / n, "rejection_rate": 0.0, "goodput_rps": 1.0} for k in range(len(seeds))]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        return {"figures": mean, "per_seed": rows, "wall_s": 0.0}

    monkeypatch.setattr(candidates, "_evaluate", lambda rows, batch, d, seeds, jobs: [fake(rows[i]["_overrides"], seeds, None) for i in batch])
    kw = {"replications": 10, "requests": 10, "max_replicas": 8}
    sure = cheapest_module.cheapest(1.0, "ttft_p99_s<=0.5", confidence=0.8, out_dir=tmp_path / "sure", **kw)
    mean = cheapest_module.cheapest(1.0, "ttft_p99_s<=0.5", out_dir=tmp_path / "mean", **kw)
    assert (sure.best["replicas"], mean.best["replicas"]) == (4, 3)
    assert sure.best["met_share"] == pytest.approx(1.0)
