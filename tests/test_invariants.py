"""Conservation laws and invariants that must hold on every run."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.config.pools import pool_configs
from tests.conftest import run

PRESSURE = ["memory.activation_reserve_gb=54.5", "workload.rate=20"]

SCENARIOS = {
    "default": [],
    "constant-batched": ["latency=constant", "latency.step_s=0.02"],
    "memory-pressure": PRESSURE,
    "swap": PRESSURE + ["scheduler.preemption_mode=swap", "memory.swap_space_gb=0.5"],
    "tight-batch-limits": ["scheduler.max_batch_size=8", "scheduler.max_batch_tokens=8192", "workload.prompt_tokens.max=4096"],
    "gamma-bursty": ["workload.arrival=gamma", "workload.cv=3", "workload.rate=15"],
    "two-replicas": ["cluster.replicas=2", "workload.rate=20"],
    "static": ["scheduler=static", "memory.max_model_len=15360", "workload.rate=6"],
    "chunked": ["scheduler=chunked_prefill"],
    "chunked-pressure": ["scheduler=chunked_prefill"] + PRESSURE,
    "chunked-swap": ["scheduler=chunked_prefill", "scheduler.preemption_mode=swap"] + PRESSURE,
    "reserve-pow2": ["memory.allocation=reserve_pow2", "memory.activation_reserve_gb=50"],
    "reserve-exact": ["memory.allocation=reserve_exact", "memory.activation_reserve_gb=50"],
    "disaggregated": ["cluster=disaggregated", "workload.rate=16"],
    "disaggregated-chunked-2x": [
        "cluster=disaggregated", "cluster.disaggregation.decode.replicas=2",
        "cluster.disaggregation.prefill.scheduler.policy=chunked_prefill", "workload.rate=20",
    ],
    "disaggregated-pressure": ["cluster=disaggregated", "memory.activation_reserve_gb=54.5", "workload.rate=12"],
    "prefix-system-prompts": [
        "memory.prefix_caching=true", "workload.prefix.system_prompts=3", "workload.prefix.system_tokens=1000",
        "workload.prompt_tokens.max=4096", "workload.output_tokens.max=1024",
    ],
    "prefix-sessions-chunked-pressure": [
        "memory.prefix_caching=true", "scheduler=chunked_prefill", "workload.prefix.sessions=20",
        "workload.prefix.turns=4", "workload.prompt_tokens.max=2048", "workload.output_tokens.max=512",
        "memory.activation_reserve_gb=54.5",
    ],
    "prefix-swap-pressure": [
        "memory.prefix_caching=true", "workload.prefix.system_prompts=2", "workload.prefix.system_tokens=512",
        "scheduler.preemption_mode=swap", "workload.prompt_tokens.max=4096", "workload.output_tokens.max=1024", *PRESSURE,
    ],
    "prefix-disaggregated": [
        "memory.prefix_caching=true", "cluster=disaggregated", "workload.prefix.system_prompts=2",
        "workload.prefix.system_tokens=512", "workload.prompt_tokens.max=4096", "workload.output_tokens.max=1024",
    ],
    "disaggregated-pressure-small-batch": [
        "cluster=disaggregated", "memory.activation_reserve_gb=54.5", "workload.rate=12", "scheduler.max_batch_size=8",
    ],
    "disaggregated-swap": [
        "cluster=disaggregated", "memory.activation_reserve_gb=54.5", "workload.rate=12", "scheduler.preemption_mode=swap",
    ],
    # the cluster: routers, admission control, retries, failures, autoscaling, groups
    "jsq-3": ["cluster.replicas=3", "cluster.router=jsq", "workload.rate=40"],
    "power-of-two-3": ["cluster.replicas=3", "cluster.router=power_of_two", "workload.rate=40"],
    "least-kv-pressure": ["cluster.replicas=2", "cluster.router=least_kv", *PRESSURE],
    "shed-and-retry": [
        "workload.rate=30", "admission.max_queue=4", "admission.kv_watermark=0.8",
        "workload.retry.max_attempts=3", "workload.retry.backoff_s=0.5",
    ],
    "slo-aware": ["workload.rate=30", "admission.slo_aware=true", "admission.max_wait_s=2"],
    "rate-limited-retry": ["admission.rate_limit.tokens_per_s=20000", "workload.retry.max_attempts=2"],
    "failure-retry": ["cluster.replicas=2", "workload.rate=20", "cluster.failures.at_s=[5,12]", "cluster.failures.repair_s=3",
                      "cluster.cold_start.provision_s=1", "cluster.cold_start.storage_gbps=50"],
    "failure-lost-chunked-pressure": [
        "scheduler=chunked_prefill", "cluster.replicas=2", "cluster.failures.at_s=[8]",
        "cluster.failures.in_flight=lost", *PRESSURE,
    ],
    "failure-swap": ["scheduler.preemption_mode=swap", "cluster.replicas=2", "cluster.failures.at_s=[6,6.01]", *PRESSURE],
    "autoscale": [
        "workload.rate=35", "cluster.autoscaler.enabled=true", "cluster.autoscaler.metric=requests",
        "cluster.autoscaler.target=16", "cluster.autoscaler.interval_s=2", "cluster.autoscaler.down_window_s=4",
        "cluster.cold_start.provision_s=2",
    ],
    "autoscale-failures-random": [
        "workload.rate=25", "cluster.autoscaler.enabled=true", "cluster.autoscaler.metric=kv_usage",
        "cluster.autoscaler.target=0.5", "cluster.autoscaler.interval_s=2", "cluster.cold_start.provision_s=1",
        "cluster.cold_start.storage_gbps=50", "cluster.failures.mtbf_gpu_hours=0.004", "cluster.failures.repair_s=2",
        "workload.retry.max_attempts=4",
    ],
    "groups-static-failure": [
        "++cluster.groups={a: {replicas: 2, scheduler: {policy: static}}, b: {replicas: 1, hardware: a100-80gb}}",
        "memory.max_model_len=15360", "cluster.router=least_tokens", "workload.rate=15", "cluster.failures.at_s=[4]",
    ],
}

#: scenarios whose failed replicas lose work in progress (tokens made then lost)
LOSES_WORK = {k for k, v in SCENARIOS.items() if any("failures." in o for o in v)}


@pytest.fixture(scope="module", params=list(SCENARIOS), ids=list(SCENARIOS))
def result(request):
    r = run(*SCENARIOS[request.param])
    r.key = request.param
    return r


def test_every_request_ends_exactly_once(result):
    df = result.requests
    n = result.config.workload.num_requests
    assert sorted(df["request_id"]) == list(range(n))
    assert (df["attempts"] >= 1).all()
    if result.key not in LOSES_WORK:  # a failed replica's requests are re-sent without counting against the client
        assert (df["attempts"] <= result.config.workload.retry.max_attempts).all()
    assert set(df["status"]) <= {"completed", "rejected"}
    rejected = df[df["status"] == "rejected"]
    assert (rejected["reject_reason"] != "").all()
    done = df[df["status"] == "completed"]
    assert (done["reject_reason"] == "").all()
    assert done[["first_token_s", "finish_s"]].notna().all().all()


def test_the_requests_in_the_system_are_counted_request_by_request(result):
    """window.in_system_*: the requests arrived and not yet ended halfway to the last arrival and at it."""
    df, win = result.requests, result.summary["window"]
    for key, t in (("in_system_midway", win["last_arrival_s"] / 2), ("in_system_at_last_arrival", win["last_arrival_s"])):
        held = [r for r in df.itertuples() if r.arrival_s <= t and not r.finish_s <= t]
        assert win[key] == len(held)


def test_tokens_produced_equal_tokens_requested(result):
    # Every completed prefill yields a token, every decoding sequence one more.
    done = result.requests[result.requests["status"] == "completed"]
    if result.key in LOSES_WORK:  # lost attempts made tokens too
        assert result.steps["new_tokens"].sum() >= done["output_tokens"].sum()
        return
    assert result.steps["new_tokens"].sum() == done["output_tokens"].sum()
    assert (result.steps["new_tokens"] >= result.steps["decode_seqs"]).all()


def test_timestamps_are_ordered(result):
    done = result.requests[result.requests["status"] == "completed"]
    assert (done["first_scheduled_s"] >= done["arrival_s"]).all()
    assert (done["first_token_s"] > done["first_scheduled_s"]).all()
    assert (done["finish_s"] >= done["first_token_s"]).all()
    assert (done["last_token_s"] >= done["first_token_s"]).all()
    assert (done["finish_s"] >= done["last_token_s"]).all()
    assert (done["prefill_done_s"] <= done["first_token_s"]).all()
    one = done["output_tokens"] == 1
    assert (done.loc[one, "last_token_s"] == done.loc[one, "first_token_s"]).all()
    assert done.loc[one, "tpot_s"].isna().all()
    if "static" not in {pcfg.scheduler.policy for _, pcfg in pool_configs(result.config)}:
        assert (done["finish_s"] == done["last_token_s"]).all()  # only static batching holds finished requests


def test_kv_blocks_never_negative_and_all_returned(result):
    st = result.steps
    assert (st["kv_blocks_used"] >= 0).all()
    assert (st["kv_blocks_used"] <= st["kv_blocks_total"]).all()
    assert result.summary["kv_cache"]["blocks_in_use_at_end"] == 0


def test_batch_limits_respected(result):
    for name, pcfg in pool_configs(result.config):  # each pool (group) has its own scheduler
        st = result.steps[result.steps["pool"] == name] if "pool" in result.steps else result.steps
        sch = pcfg.scheduler
        assert (st["batch_size"] <= sch.max_batch_size).all()
        if sch.policy == "continuous":
            # One prefill may exceed the token budget only when it runs alone (a recompute).
            over = st[st["prefill_tokens"] > sch.max_batch_tokens]
            assert (over["prefill_seqs"] == 1).all()
        if sch.policy in ("continuous", "static"):
            # A step is either all prefill or all decode.
            assert ((st["prefill_seqs"] == 0) | (st["decode_seqs"] == 0)).all()
        if sch.policy == "chunked_prefill":
            # Decodes and prompt chunks share one token budget.
            assert (st["prefill_tokens"] + st["decode_seqs"] <= sch.max_batch_tokens).all()
            if name != "prefill":  # a prefill pool never decodes
                assert ((st["prefill_seqs"] > 0) & (st["decode_seqs"] > 0)).any()  # mixed steps happen


def test_steps_are_back_to_back_per_replica(result):
    for _, st in result.steps.groupby("replica"):
        end = (st["start_s"] + st["duration_s"]).to_numpy()[:-1]
        assert (st["start_s"].to_numpy()[1:] >= end - 1e-9).all()


def test_littles_law(result):
    """L (time-average number in system, from the engine's per-step state)
    equals lambda*W (from request timestamps) up to the time a request spends
    on a replica that is not stepping: under one step after arrival, and
    under disaggregation, a KV copy into an idle decode replica."""
    ll = result.summary["littles_law"]
    window = result.summary["window"]["end_s"]
    df = result.requests
    # each attempt that reached a replica may wait up to a step before the engine counts it
    entered = df.loc[df["finish_s"] > df["arrival_s"], "attempts"].sum()
    lag = result.steps["duration_s"].max()
    if "kv_transfer" in result.summary:
        done = result.requests
        lag += (done["first_token_s"] - done["prefill_done_s"]).max()
    max_lag = entered * lag / window
    assert 0 <= ll["lambda_times_W"] - ll["L_from_steps"] <= max_lag + 1e-9
    assert ll["L_from_steps"] == pytest.approx(ll["lambda_times_W"], rel=0.05)


def test_memory_pressure_preempts_and_still_finishes():
    r = run(*SCENARIOS["memory-pressure"])
    assert r.summary["requests"]["preemptions"] > 0
    assert (r.requests["status"] == "completed").all()
    assert r.requests["preemptions"].max() >= 1
    assert r.summary["kv_cache"]["peak_usage"] > 0.9


def test_request_that_can_never_fit_is_rejected_not_deadlocked():
    # About 4,800 KV tokens; some requests grow beyond that and can never run.
    r = run(
        "memory.activation_reserve_gb=60.28",
        "workload.prompt_tokens.dist=uniform",
        "workload.prompt_tokens.low=100",
        "workload.prompt_tokens.high=8000",
        "workload.num_requests=200",
    )
    df = r.requests
    tokens = r.summary["kv_cache"]["tokens_per_replica"]
    too_big = df["prompt_tokens"] + df["output_tokens"] - 1 > tokens * 0.99
    assert too_big.any() and (~too_big).any()
    assert (df.loc[too_big, "reject_reason"] == "kv_capacity").all()
    assert (df.loc[~too_big, "status"] == "completed").all()


def test_prompt_longer_than_batch_token_budget_is_rejected():
    # Bounded prompt lengths above the budget are a config error; an unbounded
    # distribution can still draw one, which is then rejected at arrival.
    r = run("scheduler.max_batch_tokens=1024", "workload.num_requests=200",
            "workload.prompt_tokens.dist=exponential", "workload.prompt_tokens.mean=500")
    df = r.requests
    long = df["prompt_tokens"] > 1024
    assert long.any()
    assert (df.loc[long, "reject_reason"] == "prompt_exceeds_max_batch_tokens").all()
    assert (df.loc[~long, "status"] == "completed").all()


def test_itl_distribution_covers_every_decode_token(result):
    gaps, counts = result.itl
    done = result.requests[result.requests["status"] == "completed"]
    if result.key in LOSES_WORK:  # attempts cut short by a failure made gaps too
        assert counts.sum() >= (done["output_tokens"] - 1).sum()
        return
    assert counts.sum() == (done["output_tokens"] - 1).sum()
    assert (gaps > 0).all()
    # A request's gaps add up to last token - first token, preemptions or not.
    total = (done["last_token_s"] - done["first_token_s"]).sum()
    assert float(np.dot(gaps, counts)) == pytest.approx(total, rel=1e-9)
