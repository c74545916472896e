"""Per-tier / per-tenant breakdowns, the replica timeline and its cost, the
cluster timeline chart and the console tier table, on small hand-made tables."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from simulator.config.schema import ScenarioConfig, SLOConfig, TierConfig
from simulator.metrics.breakdown import breakdown, label_order, replica_figures
from simulator.metrics.summary import slo_met, slo_targets
from simulator.report.console import cluster_line, render_summary, tier_table
from simulator.report.timeline import cluster_timeline_chart, wants_cluster_timeline

SLO = SLOConfig(ttft_s=1.0, tpot_s=0.1)
TIERS = {
    "free": TierConfig(priority=0, ttft_s=2.0),
    "pro": TierConfig(priority=1, ttft_s=0.5),
    "basic": TierConfig(priority=0),  # inherits slo.ttft_s = 1 s
    "idle": TierConfig(priority=5, ttft_s=0.1),  # configured, gets no traffic
}


def _requests(rows: list[tuple]) -> pd.DataFrame:
    """rows: (tier, tenant, status, reason, ttft_s, tpot_s, attempts); arrival = index, 10 output tokens."""
    cols = ["tier", "tenant", "status", "reject_reason", "ttft_s", "tpot_s", "attempts"]
    df = pd.DataFrame(rows, columns=cols)
    df["request_id"] = np.arange(len(df))
    df["arrival_s"] = df["request_id"].astype(float)
    df["output_tokens"] = 10
    df["prompt_tokens"] = 100
    done = df["status"] == "completed"
    df["first_token_s"] = (df["arrival_s"] + df["ttft_s"]).where(done)
    df["finish_s"] = np.where(done, df["first_token_s"] + 9 * df["tpot_s"], df["arrival_s"] + 1.0)
    df["e2e_s"] = (df["finish_s"] - df["arrival_s"]).where(done)
    for c in ("tier", "tenant", "status", "reject_reason"):
        df[c] = df[c].astype("string")
    return df


REQ = _requests(
    [
        ("free", "acme", "completed", "", 1.5, 0.05, 1),  # meets free's 2 s, would miss the global 1 s
        ("free", "acme", "completed", "", 2.5, 0.05, 1),  # misses free's 2 s
        ("free", "zeta", "rejected", "queue_full", np.nan, np.nan, 3),
        ("free", "zeta", "rejected", "rate_limited", np.nan, np.nan, 1),
        ("pro", "beta", "completed", "", 0.4, 0.05, 1),  # meets pro's 0.5 s
        ("pro", "beta", "completed", "", 0.7, 0.05, 2),  # misses pro's 0.5 s, would meet the global 1 s
        ("pro", "beta", "completed", "", 0.2, 0.2, 1),  # misses the inherited TPOT 0.1 s
        ("basic", "acme", "completed", "", 0.9, 0.05, 1),  # meets the inherited 1 s
        ("basic", "acme", "rejected", "queue_full", np.nan, np.nan, 1),
    ]
)


def test_slo_targets_take_the_tier_value_else_the_global_one():
    ttft, tpot = slo_targets(REQ, SLO, TIERS)
    assert list(ttft) == [2.0] * 4 + [0.5] * 3 + [1.0] * 2
    assert (tpot == 0.1).all()
    # without tiers (or without a tier column) everyone gets slo.*
    assert (slo_targets(REQ, SLO)[0] == 1.0).all()
    assert (slo_targets(REQ.drop(columns="tier"), SLO, TIERS)[0] == 1.0).all()


def test_slo_met_is_tier_aware():
    met = slo_met(REQ, SLO, TIERS)
    assert list(met) == [True, False, False, False, True, False, False, True, False]
    # the global SLO alone judges rows 0 and 5 the other way round
    assert list(slo_met(REQ, SLO)) == [False, False, False, False, True, True, False, True, False]


def test_tier_breakdown_counts_attainment_goodput_and_order():
    b = breakdown(REQ, "tier", window_s=10.0, slo=SLO, tiers=TIERS)
    assert list(b) == ["idle", "pro", "basic", "free"]  # priority, then name; untrafficked tiers listed
    assert b["idle"]["requests"] == 0 and b["idle"]["slo_attainment"] is None
    free, pro, basic = b["free"], b["pro"], b["basic"]
    assert (free["requests"], free["completed"], free["rejected"]) == (4, 2, 2)
    assert free["rejected_by_reason"] == {"queue_full": 1, "rate_limited": 1}
    assert free["rejection_rate"] == 0.5
    assert free["slo_attainment"] == pytest.approx(1 / 4)
    assert free["goodput_rps"] == pytest.approx(0.1)
    assert free["throughput"]["requests_per_s"] == pytest.approx(0.2)
    assert free["mean_attempts"] == pytest.approx(6 / 4)
    assert (free["ttft_s"], free["tpot_s"], free["priority"]) == (2.0, 0.1, 0)
    assert pro["slo_attainment"] == pytest.approx(1 / 3) and pro["rejected"] == 0
    assert pro["latency_s"]["ttft"]["p50"] == pytest.approx(0.4)
    assert basic["ttft_s"] == 1.0 and basic["slo_attainment"] == 0.5
    # the tiers add up to the whole run
    assert sum(d["requests"] for d in b.values()) == len(REQ)
    assert sum(d["goodput_rps"] for d in b.values()) == pytest.approx(slo_met(REQ, SLO, TIERS).sum() / 10.0)


def test_tenant_breakdown_is_sorted_by_name_and_judged_by_tier_slos():
    b = breakdown(REQ, "tenant", window_s=10.0, slo=SLO, tiers=TIERS)
    assert list(b) == ["acme", "beta", "zeta"]
    assert b["acme"]["requests"] == 4 and b["acme"]["slo_attainment"] == pytest.approx(2 / 4)
    assert b["beta"]["tier"] == "pro" and "tier" not in b["acme"]  # acme spans two tiers
    assert b["zeta"]["rejected_by_reason"] == {"queue_full": 1, "rate_limited": 1}
    assert b["zeta"]["latency_s"]["ttft"]["p99"] is None


def test_label_order_puts_unconfigured_labels_last():
    assert label_order({"pro", "", "x"}, "tier", TIERS) == ["idle", "pro", "basic", "free", "", "x"]
    assert label_order({"b", "a"}, "tenant", TIERS) == ["a", "b"]


def _events(rows):
    return pd.DataFrame(rows, columns=["time_s", "replica", "group", "event", "gpus", "serving", "billed_gpus"])


def test_gpu_hours_integrate_the_billed_gpus():
    # 1 GPU for 0-100 s, 2 GPUs for 100-200 s -> 300 GPU-seconds
    ev = _events(
        [
            (0.0, 0, "g", "provisioning", 1, 0, 1),
            (0.0, 0, "g", "serving", 1, 1, 1),
            (100.0, 1, "g", "provisioning", 1, 1, 2),
            (130.0, 1, "g", "serving", 1, 2, 2),
        ]
    )
    cluster, cost = replica_figures(ev, 200.0, static_replicas=1, static_gpus={"g": 1}, prices={"g": 3.6})
    assert cost["gpu_hours"] == pytest.approx(300 / 3600)
    assert cost["usd"] == pytest.approx(300 / 3600 * 3.6) and cost["price_per_gpu_hour"] == 3.6
    assert cluster["serving_replicas"] == {"min": 1, "max": 2, "mean": pytest.approx((130 * 1 + 70 * 2) / 200)}
    assert cluster["billed_gpus"]["max"] == 2
    assert (cluster["scale_ups"], cluster["scale_downs"], cluster["failures"]) == (1, 0, 0)


def test_cluster_counts_and_per_group_prices():
    ev = _events(
        [
            (0.0, 0, "big", "provisioning", 2, 0, 2),
            (0.0, 0, "big", "serving", 2, 1, 2),
            (0.0, 1, "small", "provisioning", 1, 1, 3),
            (0.0, 1, "small", "serving", 1, 2, 3),
            (10.0, 2, "small", "provisioning", 1, 2, 4),  # scale-up
            (20.0, 2, "small", "serving", 1, 3, 4),
            (30.0, 0, "big", "failed", 2, 2, 4),  # still billed until replaced
            (40.0, 0, "big", "provisioning", 2, 2, 4),  # the replacement
            (50.0, 0, "big", "serving", 2, 3, 4),
            (60.0, 2, "small", "draining", 1, 2, 4),
            (70.0, 2, "small", "removed", 1, 2, 3),
        ]
    )
    cluster, cost = replica_figures(
        ev, 100.0, static_replicas=2, static_gpus={"big": 2, "small": 1}, prices={"big": 10.0, "small": 1.0}
    )
    assert (cluster["scale_ups"], cluster["scale_downs"], cluster["failures"], cluster["replacements"]) == (1, 1, 1, 1)
    assert cluster["failure_times_s"] == [30.0]
    assert cluster["serving_replicas"]["min"] == 2 and cluster["serving_replicas"]["max"] == 3
    big, small = cost["by_group"]["big"], cost["by_group"]["small"]
    assert big["gpu_hours"] == pytest.approx(2 * 100 / 3600)
    assert small["gpu_hours"] == pytest.approx((100 + 60) / 3600)  # replica 1 all along, replica 2 for 10-70 s
    assert cost["gpu_hours"] == pytest.approx(big["gpu_hours"] + small["gpu_hours"])
    assert cost["usd"] == pytest.approx(big["gpu_hours"] * 10 + small["gpu_hours"] * 1)
    assert cost["price_per_gpu_hour"] is None  # two prices


def test_without_replica_events_the_static_pools_are_billed_for_the_window():
    for table in (None, _events([])):
        cluster, cost = replica_figures(
            table, 7200.0, static_replicas=3, static_gpus={"mixed": 6}, prices={"mixed": 2.0}
        )
        assert cost["gpu_hours"] == pytest.approx(12.0) and cost["usd"] == pytest.approx(24.0)
        assert cluster["serving_replicas"] == {"min": 3, "max": 3, "mean": 3.0}
        assert cluster["scale_ups"] == cluster["failures"] == 0
    _, unpriced = replica_figures(None, 3600.0, static_replicas=1, static_gpus={"mixed": 1}, prices={"mixed": None})
    assert unpriced["usd"] is None and unpriced["gpu_hours"] == pytest.approx(1.0)


def _config(tiers: bool = True) -> ScenarioConfig:
    cfg = ScenarioConfig()
    cfg.slo = SLO
    if tiers:
        cfg.tiers = {k: v for k, v in TIERS.items() if k != "idle"}
    return cfg


def test_wants_cluster_timeline():
    cfg = _config(tiers=False)
    assert not wants_cluster_timeline(cfg)
    assert wants_cluster_timeline(_config())
    cfg.cluster.autoscaler.enabled = True
    assert wants_cluster_timeline(cfg)
    cfg = _config(tiers=False)
    cfg.cluster.failures.at_s = [30.0]
    assert wants_cluster_timeline(cfg)
    cfg = _config(tiers=False)
    cfg.cluster.failures.mtbf_gpu_hours = 1000.0
    assert wants_cluster_timeline(cfg)


def _result(events: bool = True):
    ev = _events(
        [
            (0.0, 0, "mixed", "provisioning", 1, 0, 1),
            (0.0, 0, "mixed", "serving", 1, 1, 1),
            (3.0, 1, "mixed", "provisioning", 1, 1, 2),
            (4.0, 1, "mixed", "serving", 1, 2, 2),
            (6.0, 0, "mixed", "failed", 1, 1, 2),
        ]
    )
    if not events:
        ev = ev.iloc[:0]
    end = 12.0
    cluster, cost = replica_figures(ev, end, static_replicas=1, static_gpus={"mixed": 1}, prices={"mixed": 4.25})
    steps = pd.DataFrame(
        {
            "replica": [0, 0, 1, 1, 1],
            "start_s": [0.5, 2.0, 4.0, 6.0, 8.0],
            "duration_s": [0.5, 0.5, 1.0, 1.0, 1.0],
            "num_waiting": [0, 2, 5, 3, 0],
            "kv_blocks_used": [10, 50, 80, 60, 20],
            "kv_blocks_total": [100] * 5,
        }
    )
    cfg = _config()
    summary = {
        "scenario": {"model": "tiny", "hardware": "h100", "tp": 1, "replicas": 2, "scheduler": "continuous",
                     "arrival": "poisson", "rate_rps": 1.0, "seed": 0},
        "window": {"end_s": end},
        "cluster": cluster,
        "cost": {"gpus": 1, "peak_gpus": cluster["billed_gpus"]["max"], **cost},
        "tiers": breakdown(REQ, "tier", window_s=end, slo=SLO, tiers=cfg.tiers),
    }
    return SimpleNamespace(config=cfg, requests=REQ, steps=steps, summary=summary, replicas=ev)


@pytest.mark.parametrize("events", [True, False])
def test_timeline_chart_is_a_byte_reproducible_png(tmp_path, events):
    a = cluster_timeline_chart(_result(events), tmp_path / "a.png")
    b = cluster_timeline_chart(_result(events), tmp_path / "b.png")
    data = a.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert data == b.read_bytes()


def test_timeline_tells_spot_reclaims_and_notices_from_failures():
    """A failure after its replica's spot notice is a reclaim; another replica's failure stays a failure."""
    from simulator.report.timeline import _Outages, _title

    ev = _events(
        [
            (0.0, 0, "mixed", "serving", 1, 3, 3),
            (0.0, 1, "mixed", "serving", 1, 3, 3),
            (0.0, 2, "mixed", "serving", 1, 3, 3),
            (2.0, 0, "mixed", "interrupted", 1, 2, 3),
            (3.0, 1, "mixed", "failed", 1, 1, 3),
            (4.0, 2, "mixed", "interrupted", 1, 0, 3),
            (5.0, 0, "mixed", "failed", 1, 0, 3),
            (5.5, 2, "mixed", "failed", 1, 0, 3),  # a hardware failure during replica 2's notice
            (9.0, 0, "mixed", "serving", 1, 1, 3),
            (10.0, 0, "mixed", "failed", 1, 0, 3),
        ]
    )
    out = _Outages.of(ev, notice_s=3.0)
    assert out.notices.tolist() == [2.0, 4.0] and out.reclaims.tolist() == [5.0]
    assert out.failures.tolist() == [3.0, 5.5, 10.0]
    top = [label for *_, label in out.lines(top=True) if label]
    assert top == ["replica failure", "spot reclaim"]  # each labelled once
    below = {(t, style) for t, _, style, _ in out.lines(top=False)}
    assert (2.0, "-") in below and (5.0, "-.") not in below  # below the top panel: notices, not reclaims
    r = _result()
    title = _title(r.summary, REQ, SimpleNamespace(has_tiers=False, names=[]), out)
    assert title.endswith("3 failures, 1 spot reclaim")


def test_console_tier_table_and_cluster_line_fit_80_columns():
    r = _result()
    console = Console(width=80, record=True)
    console.print(tier_table(r.summary["tiers"]))
    line = cluster_line(r.summary)
    assert line is not None and "1 failure" in line and "1–2 replicas" in line
    console.print(line)
    text = console.export_text()
    assert max(len(row) for row in text.splitlines()) <= 80
    lines = text.splitlines()
    order = [next(i for i, row in enumerate(lines) if row.startswith(t)) for t in ("pro", "basic", "free")]
    assert order == sorted(order)  # highest priority first
    assert "50.0% queue, rate" in text  # free: rejected share and top reasons
    assert "queue = queue_full" in text
    # a fixed fleet prints no cluster line
    assert cluster_line(_result(events=False).summary) is None


def test_render_summary_prints_tiers_within_80_columns(default_result):
    summary = dict(default_result.summary)
    r = _result()
    summary["tiers"], summary["cluster"] = r.summary["tiers"], r.summary["cluster"]
    console = Console(width=80, record=True)
    render_summary(summary, console=console)
    text = console.export_text()
    assert "SLO met" in text and "TTFT per tier" in text and "1 failure" in text and "GPUs billed: mean" in text
    assert max(len(row) for row in text.splitlines()) <= 80


def test_summary_of_a_fixed_cluster(default_result):
    s = default_result.summary
    assert s["cluster"]["serving_replicas"] == {"min": 1, "max": 1, "mean": 1.0}
    assert s["cluster"]["scale_ups"] == s["cluster"]["failures"] == 0
    assert s["cost"]["gpu_hours"] == pytest.approx(s["cost"]["gpus"] * s["window"]["end_s"] / 3600)
    assert s["requests"]["retries"] == 0
    assert "tiers" not in s and "tenants" not in s


def test_a_failed_replica_removed_before_serving_again_is_not_replaced():
    ev = _events(
        [
            (0.0, 0, "g", "provisioning", 1, 0, 1),
            (0.0, 0, "g", "serving", 1, 1, 1),
            (0.0, 1, "g", "provisioning", 1, 1, 2),
            (0.0, 1, "g", "serving", 1, 2, 2),
            (30.0, 0, "g", "failed", 1, 1, 2),
            (40.0, 0, "g", "provisioning", 1, 1, 2),  # repair starts ...
            (45.0, 0, "g", "draining", 1, 1, 2),  # ... but the autoscaler removes it before it serves
            (45.0, 0, "g", "removed", 1, 1, 1),
        ]
    )
    cluster, _ = replica_figures(ev, 100.0, static_replicas=2, static_gpus={"g": 2}, prices={"g": 1.0})
    assert cluster["failures"] == 1 and cluster["replacements"] == 0 and cluster["scale_ups"] == 0
