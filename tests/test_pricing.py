"""Pricing tiers and spot instances (docs/pricing.md): the catalog, the tier a pool pays, spot interruptions.

* A tier changes only the price: the same run at reserved or spot (no interruptions) bills the same
  GPU-hours, so the bill moves by exactly the price ratio.
* The default tier is on-demand at the hardware's price_per_gpu_hour: every existing cost stays.
* Spot interruptions are replica failures announced ``notice_s`` ahead: counted in the cluster's
  failures, marked ``interrupted`` in replicas.parquet, at rate x serving replica-hours (Poisson).
* A notice long enough lets the replica finish what it holds: nothing is lost at the reclaim.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

import simulator
from simulator.config import catalog
from simulator.config.pricing import tier_price
from simulator.errors import ConfigError
from simulator.plan import cheapest

QUIET = ["output.charts=false", "output.console=false"]
SMALL = [*QUIET, "workload.num_requests=120", "workload.rate=8", "cluster.replicas=2"]
NO_SPOT_LOSS = ["pricing.spot.interruptions_per_hour=0", "pricing.hardware.h100-sxm.spot_interruptions_per_hour=0"]
FAST_REPAIR = ["cluster.failures.repair_s=0", "cluster.cold_start.provision_s=0", "cluster.cold_start.storage_gbps=1e6"]
CONSTANT = [
    "latency=constant",
    "latency.step_s=0.01",
    "workload.output_tokens.dist=fixed",
    "workload.output_tokens.value=16",
]


def _spot(rate_per_hour: float) -> list[str]:
    """Spot at this interruption rate for the h100-sxm (the catalog's per-GPU figure set to follow the snapshot's)."""
    return [
        "cluster.tier=spot",
        f"pricing.spot.interruptions_per_hour={rate_per_hour}",
        "pricing.hardware.h100-sxm.spot_interruptions_per_hour=null",
    ]


# -- the price of a tier ---------------------------------------------------------------


def test_reserved_and_spot_lower_the_bill_by_exactly_their_price_ratio():
    runs = {
        tier: simulator.run([*SMALL, *NO_SPOT_LOSS, f"cluster.tier={tier}"])
        for tier in ("on_demand", "reserved", "spot")
    }
    base = runs["on_demand"]
    prices = base.config.pricing.hardware["h100-sxm"]
    assert prices.reserved < prices.on_demand and prices.spot < prices.reserved
    for tier, r in runs.items():
        pd.testing.assert_frame_equal(r.requests, base.requests)  # the tier changed the price only
        cost = r.summary["cost"]
        price = getattr(prices, tier)
        assert cost["gpu_hours"] == base.summary["cost"]["gpu_hours"]
        assert cost["usd"] == pytest.approx(base.summary["cost"]["usd"] * price / prices.on_demand, rel=1e-12)
        assert cost["price_per_gpu_hour"] == price and cost["by_group"]["mixed"]["tier"] == tier
        assert cost["by_tier"] == {tier: {"gpu_hours": cost["gpu_hours"], "usd": cost["usd"]}}
        assert cost["mean_usd_per_hour"] == pytest.approx(cost["usd"] / (r.summary["window"]["end_s"] / 3600), rel=1e-12)
        assert cost["mean_usd_per_hour"] == pytest.approx(2 * price, rel=1e-12)  # a fixed fleet of 2 GPUs, billed throughout


def test_a_catalog_price_is_overridable():
    r = simulator.run([*SMALL, *NO_SPOT_LOSS, "cluster.tier=spot", "pricing.hardware.h100-sxm.spot=1.5"])
    assert r.summary["cost"]["price_per_gpu_hour"] == 1.5
    assert r.summary["cost"]["usd"] == pytest.approx(r.summary["cost"]["gpu_hours"] * 1.5, rel=1e-12)
    # on-demand: the catalog's figure when the hardware's is the shipped one; an explicit hardware price wins
    assert (
        simulator.run([*SMALL, "pricing.hardware.h100-sxm.on_demand=3.0"]).summary["cost"]["price_per_gpu_hour"] == 3.0
    )
    both = ["pricing.hardware.h100-sxm.on_demand=3.0", "hardware.price_per_gpu_hour=2.0"]
    assert simulator.run([*SMALL, *both]).summary["cost"]["price_per_gpu_hour"] == 2.0
    # a GPU the hardware catalog has no price for takes the pricing catalog's
    l40s = simulator.load_config(["hardware=l40s", "++pricing.hardware={l40s: {on_demand: 1.8, spot: 0.9}}"])
    assert tier_price(l40s) == 1.8


def test_default_tier_is_on_demand_at_the_hardware_price():
    """Every existing scenario pays on-demand, at hardware.price_per_gpu_hour, as before the catalog existed."""
    r = simulator.run(SMALL)
    cost, end = r.summary["cost"], r.summary["window"]["end_s"]
    assert r.config.cluster.tier == "on_demand"
    assert cost["gpu_hours"] == pytest.approx(2 * end / 3600, rel=1e-12)  # the pre-catalog bill: GPUs x window x price
    assert cost["usd"] == pytest.approx(2 * end / 3600 * 4.25, rel=1e-12) and cost["price_per_gpu_hour"] == 4.25
    assert set(cost["by_tier"]) == {"on_demand"} and r.summary["cluster"]["spot_interruptions"] == 0
    # the hardware entry wins over the catalog's on-demand figure (the old override keeps working)
    cheap = simulator.run([*SMALL, "hardware.price_per_gpu_hour=1.0"])
    assert cheap.summary["cost"]["usd"] == pytest.approx(cost["gpu_hours"] * 1.0, rel=1e-12)
    unpriced = simulator.run([*SMALL, "hardware.price_per_gpu_hour=null"])  # ... and so does its null
    assert unpriced.summary["cost"]["usd"] is None


def test_the_shipped_snapshot_agrees_with_the_hardware_catalog():
    """On-demand in the snapshot is the hardware catalog's figure; reserved and spot are cheaper; sources and dates given."""
    pricing = simulator.load_config([]).pricing
    assert pricing.hardware, "the default snapshot prices some GPUs"
    for hw, p in pricing.hardware.items():
        assert p.on_demand == catalog.load_hardware(hw).price_per_gpu_hour, hw
        for tier in ("on_demand", "reserved", "spot"):
            assert getattr(p, f"{tier}_source") and getattr(p, f"{tier}_date"), (hw, tier)
        assert 0 < p.spot < p.reserved < p.on_demand, hw
    assert pricing.reserved_term and pricing.spot.source and pricing.spot.notice_s > 0


def test_groups_pay_their_own_tiers_and_the_mix_adds_up():
    groups = "++cluster.groups={base: {replicas: 1}, burst: {replicas: 2, tier: spot}}"
    small = [o for o in SMALL if not o.startswith("cluster.replicas=")]  # the groups hold the replicas
    r = simulator.run([*small, *NO_SPOT_LOSS, groups, "cluster.router=jsq"])
    cost = r.summary["cost"]
    base, burst = cost["by_group"]["base"], cost["by_group"]["burst"]
    assert (base["tier"], burst["tier"]) == ("on_demand", "spot")
    assert (base["price_per_gpu_hour"], burst["price_per_gpu_hour"]) == (4.25, 2.125)
    assert cost["by_tier"]["spot"]["usd"] == pytest.approx(burst["gpu_hours"] * 2.125, rel=1e-12)
    assert cost["by_tier"]["on_demand"]["gpu_hours"] == base["gpu_hours"]
    assert cost["usd"] == pytest.approx(sum(t["usd"] for t in cost["by_tier"].values()), rel=1e-12)
    assert cost["price_per_gpu_hour"] is None  # two prices
    assert [p["tier"] for p in r.summary["pools"]] == ["on_demand", "spot"]


# -- spot interruptions ----------------------------------------------------------------


def _spot_exposure_s(replicas: pd.DataFrame, end_s: float) -> float:
    """Replica-seconds spent serving (the state spot interruptions strike), from the lifecycle events."""
    total = 0.0
    for _, ev in replicas.sort_values("time_s", kind="stable").groupby("replica"):
        since = None
        for t, kind in zip(ev["time_s"], ev["event"].astype(str)):
            if kind == "serving":
                since = t
            elif since is not None:  # interrupted, failed, draining or removed: no longer exposed
                total += t - since
                since = None
        if since is not None:
            total += end_s - since
    return total


@pytest.mark.parametrize("tp", [1, 2])
def test_spot_interruptions_show_up_as_failures_at_the_rate(tp):
    """Interruptions hit replicas (instances), not GPUs: the count is within 4 Poisson standard
    deviations of rate x serving replica-hours at TP 1 and TP 2 alike; each is a failure notice_s later."""
    rate, notice = 40.0, 30.0  # per replica-hour: about 45 in the run
    r = simulator.run([
        *QUIET, *CONSTANT, *_spot(rate), *FAST_REPAIR, f"pricing.spot.notice_s={notice}", f"cluster.tp={tp}",
        "cluster.replicas=4", "cluster.router=jsq", "workload.rate=0.5", "workload.num_requests=600",
    ])  # fmt: skip
    ev, end = r.replicas, r.summary["window"]["end_s"]
    notices = ev[ev["event"] == "interrupted"]
    failed = ev[ev["event"] == "failed"]
    expected = rate * _spot_exposure_s(ev, end) / 3600
    assert expected > 30
    assert abs(len(notices) - expected) <= 4 * math.sqrt(expected), (len(notices), expected)
    cluster = r.summary["cluster"]
    assert cluster["spot_interruptions"] == len(notices) and cluster["failures"] == len(failed)
    # every reclaim is a failure notice_s after its replica's notice (those still in notice at the end are not yet)
    reclaims = notices.assign(time_s=notices["time_s"] + notice)
    reclaims = reclaims[reclaims["time_s"] <= end]
    pd.testing.assert_frame_equal(
        reclaims[["time_s", "replica"]].reset_index(drop=True),
        failed[["time_s", "replica"]].reset_index(drop=True),
        check_exact=False,
    )
    assert cluster["replacements"] >= len(failed) - 4  # each comes back after repair and cold start


def test_no_spot_interruptions_without_spot():
    r = simulator.run(
        [
            *QUIET,
            *CONSTANT,
            "pricing.spot.interruptions_per_hour=1000",
            "cluster.tier=reserved",
            "workload.num_requests=200",
        ]
    )
    assert r.summary["cluster"]["spot_interruptions"] == 0 and r.summary["cluster"]["failures"] == 0


def test_a_long_enough_notice_keeps_in_flight_work():
    """With in-flight work lost at a failure, a reclaim without notice loses requests; with a notice longer
    than any request, the replica finishes what it holds first and nothing is lost."""
    common = [*QUIET, *CONSTANT, *_spot(60.0), *FAST_REPAIR, "cluster.failures.in_flight=lost", "cluster.replicas=4",
              "cluster.router=jsq", "workload.rate=4", "workload.num_requests=2400"]  # fmt: skip
    lost = {}
    for notice in (0, 60):
        r = simulator.run([*common, f"pricing.spot.notice_s={notice}"])
        assert r.summary["cluster"]["spot_interruptions"] > 10
        reasons = r.summary["requests"]["rejected_by_reason"]
        lost[notice] = reasons.get("replica_failure", 0)
        if notice:
            assert (
                r.requests.loc[r.requests["status"] == "completed", "e2e_s"].max() < notice
            )  # every request fits in a notice
    assert lost[0] > 0 and lost[60] == 0, lost


# -- bad configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,match",
    [
        (
            ["cluster.tier=preemptible"],
            r"cluster.tier='preemptible' is not a pricing tier; choose one of: on_demand, reserved, spot",
        ),
        (["++cluster.groups={a: {replicas: 1, tier: cheap}}"], r"cluster.groups.a.tier='cheap' is not a pricing tier"),
        (["pricing.hardware.h100-sxm.spot=-1"], r"pricing.hardware.h100-sxm.spot=-1.0 must be a price or rate >= 0"),
        (["pricing.spot.notice_s=-5"], r"pricing.spot.notice_s=-5.0 must be"),
        (["pricing.spot.interruptions_per_hour=-0.1"], r"pricing.spot.interruptions_per_hour=-0.1 must be"),
        (["++pricing.hardware={h100: {spot: 1.0}}"], r"pricing.hardware.h100 names no hardware; .*h100-sxm"),
        (
            ["hardware=l40s", "cluster.tier=spot"],
            r"cluster.tier=spot but the pricing catalog \(cloud-2025\) has no spot price for l40s",
        ),
        (["cluster=disaggregated", "cluster.tier=spot"], r"spot interruptions work on colocated replicas"),
    ],
)
def test_bad_pricing_config_is_a_clear_error(overrides, match):
    with pytest.raises(ConfigError, match=match):
        simulator.load_config(overrides)


def test_spot_pricing_without_interruptions_works_disaggregated():
    cfg = simulator.load_config(["cluster=disaggregated", "cluster.tier=spot", *NO_SPOT_LOSS])
    assert cfg.cluster.tier == "spot"


def test_pricing_is_its_own_config_group():
    """The catalog is a hydra group: a snapshot is chosen by name, like hardware or model."""
    assert "cloud-2025" in catalog.names("pricing")
    cfg = simulator.load_config(["pricing=cloud-2025"])
    assert OmegaConf.structured(cfg).pricing.name == "cloud-2025"


# -- the planner -------------------------------------------------------------------------------


def test_cheapest_compares_tiers_and_states_the_choice(tmp_path):
    overrides = [
        *CONSTANT,
        "workload.output_tokens.value=4",
        "scheduler.max_batch_size=1",
        *NO_SPOT_LOSS,
    ]  # 40 ms a request
    res = cheapest(
        30,
        "ttft_mean_s<=0.5",
        replicas=[1, 2],
        tier=["on_demand", "spot"],
        overrides=overrides,
        requests=300,
        out_dir=tmp_path,
    )
    c = res.candidates
    assert set(c["tier"]) == {"on_demand", "spot"}
    spot = c[c["tier"] == "spot"]
    assert (spot["usd_per_hour"] == spot["gpus"] * 2.125).all() and spot["config"].str.endswith("-spot").all()
    b = res.best
    assert b is not None and b["tier"] == "spot" and b["usd_per_hour"] == pytest.approx(b["gpus"] * 2.125)
    assert (
        f"({int(b['gpus'])} GPU{'' if int(b['gpus']) == 1 else 's'}, ${b['usd_per_hour']:.2f}/h), all spot, $" in res.answer
        and "per 1M tokens" in res.answer
    )
    with pytest.raises(ConfigError, match="tier=cheap is not known"):
        cheapest(30, "ttft_mean_s<=0.5", replicas=[1], tier=["cheap"], overrides=overrides, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="conflicts with the search"):
        cheapest(30, "ttft_mean_s<=0.5", replicas=[1], overrides=[*overrides, "cluster.tier=spot"], out_dir=tmp_path)


def test_the_autoscaler_never_drains_the_last_serving_replica_for_ones_under_notice():
    """Spot replicas under notice are leaving and cannot be drained, so the autoscaler does not count
    them: a scale-down drains only what it can spare, never the serving replicas while reclaimed ones
    stay counted (under a stress rate of 30 interruptions per replica-hour)."""
    import simulator

    r = simulator.run([
        "cluster.tier=spot", "cluster.autoscaler.enabled=true", "cluster.autoscaler.max_replicas=6", "cluster.replicas=2",
        "cluster.router=jsq", "workload.rate=25", "workload.num_requests=8000", "pricing.spot.interruptions_per_hour=30",
        "pricing.hardware.h100-sxm.spot_interruptions_per_hour=null", "seed=5", "cluster.failures.repair_s=60",
        "output.console=false", "output.charts=false",
    ])  # fmt: skip
    events = r.replicas
    assert (events["event"] == "interrupted").any()
    assert (events.loc[events["event"] == "draining", "serving"] >= 1).all()


@pytest.mark.parametrize(
    "failure,want",
    [
        (["cluster.failures.at_s=[170]", "cluster.failures.replica=[2]"], (2, 1, 1)),  # a reclaim and a failure
        # a failure during replica 1's notice (no reclaim), then another replica's notice and its reclaim
        (["cluster.failures.at_s=[110]", "cluster.failures.replica=[1]"], (2, 2, 1)),
    ],
)
def test_the_summary_tells_spot_reclaims_from_hardware_failures(failure, want):
    """Replica 1 gets its notice at 103 s (seed 0); its reclaim comes notice_s (30 s) later unless a
    hardware failure strikes it first, which is then a failure and the reclaim never comes."""
    r = simulator.run([
        "cluster.tier=spot", "cluster.replicas=3", "cluster.router=jsq", "workload.rate=20", "workload.num_requests=4000",
        "pricing.spot.interruptions_per_hour=20", "pricing.hardware.h100-sxm.spot_interruptions_per_hour=null",
        "pricing.spot.notice_s=30", *failure, "output.charts=false", "output.console=false",
    ])  # fmt: skip
    cl = r.summary["cluster"]
    assert (cl["failures"], cl["spot_interruptions"], cl["spot_reclaims"]) == want
    from simulator.report.console import cluster_line

    line = cluster_line(r.summary)
    notices = f"{want[1]} spot notice" + ("s" if want[1] > 1 else "")
    assert line is not None and f"{want[0]} failures (1 spot reclaim" in line and line.endswith(notices)
