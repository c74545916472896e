"""Levers in front of the GPUs: a response cache and a model cascade (docs/levers/cache_cascade.md).

Rates drawn per request are checked against their binomial standard error
(SE): a measured share k/n of a probability p lies within 4 SE =
4 sqrt(p(1 - p)/n) of p except with probability about 6e-5. A share of
*work* (tokens) removed by random hits has the weighted version of that SE,
sqrt(p(1 - p) sum w^2) / sum w, w the work of each request.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.api import load_config
from simulator.errors import ConfigError
from tests.conftest import ORACLE, SMALL, run

CASCADE = [
    "++cluster.groups={small: {replicas: 1, model: llama-3.2-1b}, large: {replicas: 1, model: llama-3.1-8b}}",
    "cluster.cascade.enabled=true",
]
#: a fixed step time and fixed output lengths: every attempt of o tokens takes exactly o steps
CONSTANT = ["latency=constant", "latency.step_s=0.01", "workload.output_tokens.dist=fixed", "workload.output_tokens.value=20"]


def _within_4_se(k: int, n: int, p: float) -> None:
    se = math.sqrt(p * (1 - p) / n)
    assert abs(k / n - p) <= 4 * se, f"{k}/{n} = {k / n:.4f}, expected {p} +- {4 * se:.4f} (4 SE)"


# -- the response cache -----------------------------------------------------------


def test_hit_rate_is_measured_within_four_standard_errors():
    r = run("workload.num_requests=2000", "latency=constant", "latency.step_s=0.005", "cluster.response_cache.hit_rate=0.3")
    rc = r.summary["response_cache"]
    hits = int((r.requests["served_by"] == "cache").sum())
    assert rc["hits"] == hits and rc["requests"] == 2000 and rc["measured_hit_rate"] == hits / 2000
    _within_4_se(hits, 2000, 0.3)


def _with_tenant_rates(rates: dict[str, float], *overrides: str) -> simulator.Result:
    """A run whose ``cluster.response_cache.hit_rate_by_tenant`` is ``rates``, set on the ScenarioConfig
    (composing a ``{name: rate}`` override is refused by the config's unknown-key check, see the report)."""
    cfg = load_config([*SMALL, *overrides])
    cfg.cluster.response_cache.hit_rate_by_tenant.update(rates)
    return simulator.run(config=cfg)


def test_each_tenant_has_its_own_hit_rate():
    r = _with_tenant_rates(
        {"tenant-0": 0.8}, "workload.num_requests=2000", "latency=constant", "latency.step_s=0.005", "workload.tenants=2",
        "cluster.response_cache.hit_rate=0.1",
    )
    df = r.requests
    for tenant, p in (("tenant-0", 0.8), ("tenant-1", 0.1)):
        mine = df[df["tenant"] == tenant]
        assert len(mine) > 500
        _within_4_se(int((mine["served_by"] == "cache").sum()), len(mine), p)


def test_thirty_percent_hits_take_thirty_percent_of_the_engine_busy_time():
    """M/D/1 (one request at a time, every request 100 steps): busy time is 100 steps per miss,
    so the busy fraction falls by exactly the share of hits, which lies within 4 SE of 30%."""
    base = [*ORACLE, "output.console=false", "workload.num_requests=1000", "workload.rate=1",
            "workload.output_tokens.dist=fixed", "workload.output_tokens.value=100"]
    off, on = run(base=base), run("cluster.response_cache.hit_rate=0.3", base=base)
    hits = on.summary["response_cache"]["hits"]
    assert on.steps["duration_s"].sum() == pytest.approx(off.steps["duration_s"].sum() * (1 - hits / 1000))
    fall = 1 - on.summary["engine"]["busy_fraction"] / off.summary["engine"]["busy_fraction"]
    assert abs(fall - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / 1000) + 0.002  # + a changed drain: the window's end may move


def test_thirty_percent_hits_take_thirty_percent_of_the_gpu_tokens():
    """Default roofline scenario: prefill + decode tokens processed fall by the hits' share of the work."""
    off, on = run("workload.num_requests=1000"), run("workload.num_requests=1000", "cluster.response_cache.hit_rate=0.3")
    assert off.summary["preemption"]["count"] == on.summary["preemption"]["count"] == 0  # no recompute: work = tokens asked

    def work(r):
        return int(r.steps["prefill_tokens"].sum() + r.steps["new_tokens"].sum())

    df = off.requests
    w = (df["prompt_tokens"] + df["output_tokens"]).to_numpy(dtype=float)
    hit = (on.requests["served_by"] == "cache").to_numpy()
    assert work(off) == w.sum() and work(on) == w[~hit].sum()  # the hits' work, exactly, is what the GPUs were spared
    se = math.sqrt(0.3 * 0.7 * (w**2).sum()) / w.sum()
    fall = 1 - work(on) / work(off)
    assert abs(fall - 0.3) <= 4 * se, f"GPU work fell by {fall:.3f}, expected 0.3 +- {4 * se:.3f}"


def test_a_hit_answers_after_exactly_its_latency_and_never_reaches_a_replica():
    r = run("cluster.response_cache.hit_rate=0.4", "cluster.response_cache.latency_s=0.05", "latency.request_overhead_s=0.01")
    hits = r.requests[r.requests["served_by"] == "cache"]
    assert len(hits) > 50
    assert np.allclose(hits["ttft_s"], 0.05, rtol=0, atol=1e-12) and np.allclose(hits["e2e_s"], 0.05, rtol=0, atol=1e-12)
    assert (hits["tpot_s"].dropna() == 0).all() and (hits["replica"] == -1).all()
    assert hits["queue_s"].isna().all() and (hits["status"] == "completed").all()
    misses = r.requests[r.requests["served_by"] != "cache"]
    assert (misses["served_by"] == "mixed").all() and (misses["ttft_s"] > 0.01).all()  # they pay the API server's time
    assert r.steps["new_tokens"].sum() == misses["output_tokens"].sum()


def test_closed_loop_users_get_their_hits_after_the_latency():
    r = run("workload.arrival=closed_loop", "workload.users=8", "workload.think_s=1", "cluster.response_cache.hit_rate=0.5")
    hits = r.requests[r.requests["served_by"] == "cache"]
    assert len(hits) > 100 and np.allclose(hits["e2e_s"], 0.02, rtol=0, atol=1e-12)
    ll = r.summary["littles_law"]
    assert ll["L_from_steps"] == pytest.approx(ll["lambda_times_W"], rel=0.05)


def test_hits_are_billed_and_counted_in_every_unit_cost():
    r = run("cluster.response_cache.hit_rate=0.3", "cluster.response_cache.usd_per_hit=0.001")
    cost, rc = r.summary["cost"], r.summary["response_cache"]
    gpu_usd = sum(g["usd"] for g in cost["by_group"].values())
    assert rc["usd"] == pytest.approx(rc["hits"] * 0.001) == cost["response_cache_usd"]
    assert cost["usd"] == pytest.approx(gpu_usd + rc["usd"])
    assert sum(t["usd"] for t in cost["by_tier"].values()) == pytest.approx(gpu_usd)  # the tier mix is of GPUs (docs/pricing.md)
    import io

    from rich.console import Console

    from simulator.report.console import render_summary

    buf = io.StringIO()
    render_summary(r.summary, None, Console(file=buf, width=200, highlight=False, soft_wrap=True))
    line = next(x for x in buf.getvalue().splitlines() if x.startswith("cost:"))  # the console says what is GPUs and what hits
    assert f"${cost['usd']:,.2f} (GPUs ${gpu_usd:,.2f} at $" in line and f"+ cache hits ${rc['usd']:,.2f})" in line
    done = r.requests[r.requests["status"] == "completed"]
    assert cost["usd_per_request"] == pytest.approx(cost["usd"] / len(done))
    tokens = done["prompt_tokens"].sum() + done["output_tokens"].sum()
    assert cost["usd_per_million_tokens"] == pytest.approx(cost["usd"] / tokens * 1e6)
    split = cost["usd_per_million_input_tokens"] * done["prompt_tokens"].sum() + cost["usd_per_million_output_tokens"] * done["output_tokens"].sum()
    assert split / 1e6 == pytest.approx(cost["usd"])


def test_levers_off_add_no_column_and_no_section(default_result):
    assert "served_by" not in default_result.requests.columns
    assert "response_cache" not in default_result.summary and "cascade" not in default_result.summary
    assert "response_cache_usd" not in default_result.summary["cost"]


# -- the cascade --------------------------------------------------------------------


def test_escalations_are_within_four_standard_errors_of_the_rate():
    r = run(*CASCADE, *CONSTANT, "workload.num_requests=1500", "cluster.cascade.escalation_rate=0.25", "cluster.cascade.share=0.6")
    c, df = r.summary["cascade"], r.requests
    assert c["sent_to_small"] + c["straight_to_large"] + c["by_overload"] == 1500 and c["by_overload"] == 0
    _within_4_se(c["sent_to_small"], 1500, 0.6)
    _within_4_se(c["escalated"], c["sent_to_small"], 0.25)  # every small attempt completed here
    assert c["answered_by_small"] + c["escalated"] == c["sent_to_small"]
    assert c["answered_by_large"] == c["straight_to_large"] + c["escalated"]
    assert (df.loc[df["escalated_s"].notna(), "served_by"] == "large").all()
    assert (df.loc[df["cascade_route"] == "large", "escalated_s"].isna()).all()
    assert (df["attempts"] == 1).all()  # an escalation is not a client retry
    assert r.summary["requests"]["retries"] == 0


def test_an_escalated_request_waits_for_its_small_attempt():
    r = run(*CASCADE, *CONSTANT, "workload.num_requests=400", "cluster.cascade.escalation_rate=0.3")
    df, steps, o = r.requests, r.steps, 20
    esc = df[df["escalated_s"].notna()]
    assert len(esc) > 50
    assert (esc["escalated_s"] - esc["arrival_s"] >= o * 0.01 - 1e-9).all()  # the small attempt: o steps at least
    assert (esc["first_scheduled_s"] >= esc["escalated_s"]).all()  # the large attempt starts after it
    assert (esc["e2e_s"] >= 2 * o * 0.01 - 1e-9).all() and (esc["ttft_s"] > esc["escalated_s"] - esc["arrival_s"]).all()
    assert esc["e2e_s"].mean() > df.loc[df["escalated_s"].isna(), "e2e_s"].mean()
    # both attempts' GPU work was spent: the small group generated every answer it gave, the escalated ones too
    small = steps[steps["pool"] == "small"]["new_tokens"].sum()
    large = steps[steps["pool"] == "large"]["new_tokens"].sum()
    assert small == df.loc[df["cascade_route"] == "small", "output_tokens"].sum()
    assert large == df.loc[df["served_by"] == "large", "output_tokens"].sum()
    assert r.summary["kv_cache"]["blocks_in_use_at_end"] == 0
    ll = r.summary["littles_law"]  # an escalated request stays in the system from its arrival to its large answer
    assert ll["L_from_steps"] == pytest.approx(ll["lambda_times_W"], rel=0.05)


def test_overload_sends_requests_straight_to_the_large_group():
    """The small group is one slow replica (an 8B model held to 4 sequences): with overload_queue=2,
    a request goes to it only while at most 2 wait there, so its queue never exceeds 3."""
    slow_small = [
        "++cluster.groups={small: {replicas: 1, scheduler: {max_batch_size: 4}}, large: {replicas: 2}}",
        "cluster.cascade.enabled=true", "cluster.cascade.escalation_rate=0", "workload.rate=20",
    ]
    free = run(*slow_small)
    capped = run(*slow_small, "cluster.cascade.overload_queue=2")
    small = capped.steps[capped.steps["pool"] == "small"]
    assert free.summary["cascade"]["by_overload"] == 0
    assert free.steps.loc[free.steps["pool"] == "small", "num_waiting"].max() > 10
    c, df = capped.summary["cascade"], capped.requests
    assert c["by_overload"] > 30 and small["num_waiting"].max() <= 3
    assert (df.loc[df["cascade_route"] == "overload", "served_by"] == "large").all()
    assert capped.summary["latency_s"]["ttft"]["p99"] < free.summary["latency_s"]["ttft"]["p99"]


def test_requests_outside_the_share_go_straight_to_the_large_group():
    r = run(*CASCADE, "cluster.cascade.share=0")
    assert r.summary["cascade"]["straight_to_large"] == 300
    assert set(r.requests["served_by"]) == {"large"} and not (r.steps["pool"] == "small").any()


def test_a_failed_small_replica_sends_its_requests_to_the_large_group():
    r = run(*CASCADE, "cluster.failures.at_s=[3]", "cluster.failures.replica=[0]", "cluster.failures.repair_s=5")
    df = r.requests
    assert (df["status"] == "completed").all()
    during = df[(df["arrival_s"] > 3.1) & (df["arrival_s"] < 5)]
    assert len(during) and (during["cascade_route"] == "overload").all()  # no small replica serves: overload


# -- both: determinism and configuration ------------------------------------------


def test_same_seed_gives_an_identical_requests_table():
    both = [*CASCADE, "cluster.response_cache.hit_rate=0.3", "cluster.cascade.escalation_rate=0.3", "cluster.router=random"]
    a, b, c = run(*both), run(*both), run(*both, "seed=1")
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.steps, b.steps)
    assert a.summary == b.summary
    assert not a.requests["served_by"].equals(c.requests["served_by"])


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["cluster.response_cache.hit_rate=1.5"], "cluster.response_cache.hit_rate must lie in [0, 1] (got 1.5)"),
        (["cluster.response_cache.latency_s=-1"], "cluster.response_cache.latency_s must be a finite number >= 0"),
        (["cluster.cascade.enabled=true"], "cluster.cascade.enabled=true needs two cluster.groups"),
        ([*CASCADE, "cluster.cascade.small=tiny"], "cluster.cascade.small='tiny' is not a group of cluster.groups; choose one of: small, large"),
        ([*CASCADE, "cluster.cascade.large=small"], "must name two different groups"),
        ([*CASCADE, "cluster.cascade.share=2"], "cluster.cascade.share must lie in [0, 1] (got 2.0)"),
        ([*CASCADE, "cluster.cascade.escalation_rate=-0.5"], "cluster.cascade.escalation_rate must lie in [0, 1] (got -0.5)"),
        ([*CASCADE, "cluster.cascade.overload_queue=-1"], "cluster.cascade.overload_queue must be an integer >= 0"),
        (["cluster=disaggregated", "cluster.cascade.enabled=true"], "is not supported with cluster.disaggregation.enabled=true"),
    ],
)
def test_config_errors_name_the_key_and_value(overrides, words):
    with pytest.raises(ConfigError) as e:
        run(*overrides, base=SMALL)
    assert words in str(e.value)


def test_a_tenant_hit_rate_outside_zero_to_one_is_refused():
    with pytest.raises(ConfigError, match=r"cluster\.response_cache\.hit_rate_by_tenant\.a must lie in \[0, 1\] \(got -0\.1\)"):
        _with_tenant_rates({"a": -0.1})


def test_a_hit_has_no_tpot_so_tpot_describes_the_gpu_served_requests():
    r = simulator.run(["cluster.response_cache.hit_rate=0.3", "workload.num_requests=300"])
    hits = r.requests[r.requests["served_by"] == "cache"]
    assert len(hits) and hits["tpot_s"].isna().all()
    served = r.requests[(r.requests["served_by"] != "cache") & (r.requests["output_tokens"] > 1)]
    assert served["tpot_s"].notna().all()


def test_per_tenant_rates_must_name_tenants_the_workload_has():
    from simulator.errors import ConfigError

    with pytest.raises(ConfigError, match="the workload has none"):
        simulator.load_config(["++cluster.response_cache.hit_rate_by_tenant={tenant-0: 0.8}"])
    with pytest.raises(ConfigError, match="names nosuch, which the workload never labels; its tenants are: tenant-0, tenant-1"):
        simulator.load_config(["++cluster.response_cache.hit_rate_by_tenant={nosuch: 0.8}", "workload.tenants=2"])
