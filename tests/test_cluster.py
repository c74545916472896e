"""The cluster: routers, admission control, retries, failures, autoscaling, groups.

Conservation laws for these features run in tests/test_invariants.py (every
request ends exactly once, KV returns to zero, Little's law); this module
checks that each mechanism does what its documentation says.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from simulator.cluster.routers import ROUTERS
from simulator.errors import ConfigError
from tests.conftest import run

# -- routers, on stand-in replicas ------------------------------------------------


def _replicas(*loads, tokens=None, kv=None):
    return [
        SimpleNamespace(
            index=i,
            load=load,
            state="serving",
            outstanding_tokens=(tokens or loads)[i],
            kv_usage=(kv or [0.0] * len(loads))[i],
        )
        for i, load in enumerate(loads)
    ]


def _router(name, **cluster):
    cfg = SimpleNamespace(seed=0, cluster=SimpleNamespace(affinity_slack=2.0, **cluster))
    return ROUTERS.get(name)(cfg)


def _req(session="", affinity=None):
    return SimpleNamespace(session=session, affinity=affinity)


def test_round_robin_takes_turns():
    reps = _replicas(5, 0, 9)
    r = _router("round_robin")
    assert [r.choose(_req(), reps).index for _ in range(6)] == [0, 1, 2, 0, 1, 2]


def test_jsq_least_tokens_and_least_kv_read_their_own_figure():
    reps = _replicas(3, 1, 2, tokens=[10, 900, 50], kv=[0.9, 0.5, 0.2])
    assert _router("jsq").choose(_req(), reps).index == 1
    assert _router("least_tokens").choose(_req(), reps).index == 0
    assert _router("least_kv").choose(_req(), reps).index == 2


def test_power_of_two_never_picks_the_most_loaded_of_its_pair():
    reps = _replicas(0, 10, 20, 30)
    r = _router("power_of_two")
    picks = [r.choose(_req(), reps).index for _ in range(2000)]
    counts = np.bincount(picks, minlength=4)
    assert counts[3] == 0  # the most loaded loses every pair it is drawn into
    # replica k wins the pairs it makes with each of the 3 - k busier ones: 3:2:1:0 of 6
    expected = np.array([3, 2, 1, 0]) / 6 * 2000
    sigma = np.sqrt(expected * (1 - expected / 2000))
    assert (np.abs(counts[:3] - expected[:3]) <= 4 * sigma[:3]).all()


def test_affinity_sticks_until_the_home_replica_is_overloaded():
    reps = _replicas(0, 0)
    r = _router("session_affinity")
    home = r.choose(_req("s1"), reps).index
    reps[home].load = 2  # 2 <= 2 x (0 + 1): still home
    assert r.choose(_req("s1"), reps).index == home
    reps[home].load = 3  # 3 > 2 x (0 + 1): it moves to the least loaded
    assert r.choose(_req("s1"), reps).index != home
    reps = _replicas(1, 1)
    r = _router("prefix_affinity")
    first = r.choose(_req(affinity=42), reps).index
    reps[first].load = 4  # 4 <= 2 x (1 + 1): still home
    assert r.choose(_req(affinity=42), reps).index == first
    assert r.choose(_req(), reps).index == 1 - first  # no key: least loaded


# -- routing on the full simulator ----------------------------------------------------

def test_round_robin_cycles_over_replicas_in_a_run():
    r = run("cluster.replicas=3", "workload.num_requests=60")
    assert (r.requests["replica"] == r.requests["request_id"] % 3).all()


def test_power_of_two_beats_random_on_tail_latency():
    """Heterogeneous load (lognormal prompts and outputs) on 4 replicas at
    about 93% utilisation (one replica saturates at ~13.7 req/s): over 8 paired seeds, the log of p99 TTFT under
    random routing over power-of-two must exceed 3 standard errors."""
    logs = []
    for seed in range(8):
        common = [f"seed={seed}", "cluster.replicas=4", "workload.rate=51", "workload.num_requests=1500"]
        rand = run(*common, "cluster.router=random").summary["latency_s"]["ttft"]["p99"]
        p2c = run(*common, "cluster.router=power_of_two").summary["latency_s"]["ttft"]["p99"]
        logs.append(math.log(rand / p2c))
    d = np.array(logs)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert d.mean() > 3 * se, (d, se)


def test_prefix_affinity_raises_cache_hits_across_replicas():
    """32 system prompts of 2,000 tokens (64k tokens) against about 45k KV
    tokens per replica: spread round-robin, every replica thrashes its LRU
    cache; routed by prefix, each replica keeps its 8 prompts."""
    common = [
        "cluster.replicas=4", "workload.rate=30", "memory.prefix_caching=true", "workload.prefix.system_prompts=32",
        "workload.prefix.system_tokens=2000", "workload.prompt_tokens.max=2048", "workload.output_tokens.max=512",
        "workload.num_requests=1500", "memory.activation_reserve_gb=50",
    ]
    rr = run(*common, "cluster.router=round_robin").summary["prefix_cache"]["token_hit_rate"]
    aff = run(*common, "cluster.router=prefix_affinity").summary["prefix_cache"]["token_hit_rate"]
    assert aff > rr + 0.05, (rr, aff)


def test_session_affinity_keeps_a_conversation_on_one_replica():
    r = run(
        "cluster.replicas=3", "cluster.router=session_affinity", "cluster.affinity_slack=1000",
        "workload.prefix.sessions=12", "workload.prefix.turns=4", "workload.num_requests=240",
        "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256",
    )
    per_session = r.requests.groupby("session")["replica"].nunique()
    assert len(per_session) >= 12 and (per_session == 1).all()


# -- admission control and retries --------------------------------------------------

OVERLOAD = ["workload.rate=51", "workload.num_requests=800"]  # 2.7x one H100's ~19 req/s


def test_queue_limit_sheds_only_under_load():
    light = run("admission.max_queue=4", "workload.rate=4")
    assert (light.requests["status"] == "completed").all()
    heavy = run("admission.max_queue=4", *OVERLOAD)
    reasons = set(heavy.requests["reject_reason"]) - {""}
    assert reasons == {"queue_full"}
    assert heavy.summary["requests"]["rejected"] > 50


def test_kv_watermark_sheds_new_work_and_caps_usage():
    free = run(*OVERLOAD)
    shed = run("admission.kv_watermark=0.5", *OVERLOAD)
    assert set(shed.requests["reject_reason"]) - {""} == {"kv_pressure"}
    # admission stops at 50%; admitted requests then grow by their outputs only
    assert shed.summary["kv_cache"]["mean_usage"] < free.summary["kv_cache"]["mean_usage"]
    assert shed.summary["latency_s"]["ttft"]["p99"] < free.summary["latency_s"]["ttft"]["p99"]


def test_slo_aware_admission_turns_overload_into_goodput():
    """Overload at 2.7x capacity: without admission control the queue grows
    and only the first requests (17%) meet the 1 s TTFT; rejecting at the
    gateway whatever is predicted to miss keeps most admitted requests on
    time (66%) and multiplies goodput by ~5. (The predictor ignores decode
    steps interleaved with prefills, so it runs optimistic and some admitted
    requests still miss.)"""
    free = run(*OVERLOAD)
    aware = run("admission.slo_aware=true", *OVERLOAD)
    assert set(aware.requests["reject_reason"]) - {""} == {"slo_unattainable"}

    def on_time(r):
        done = r.requests[r.requests["status"] == "completed"]
        return (done["ttft_s"] <= r.config.slo.ttft_s).mean()

    assert on_time(aware) > 0.5 and on_time(aware) > 3 * on_time(free)
    assert aware.summary["slo"]["goodput_rps"] > 4 * free.summary["slo"]["goodput_rps"]


def test_token_bucket_bounds_accepted_tokens():
    rate, burst = 30_000.0, 60_000.0
    r = run(f"admission.rate_limit.tokens_per_s={rate}", f"admission.rate_limit.burst_tokens={burst}", *OVERLOAD)
    df = r.requests
    assert set(df["reject_reason"]) - {""} == {"rate_limited"}
    acc = df[df["status"] == "completed"]
    # every window [0, t] admits at most burst + rate x t tokens
    acc = acc.sort_values("arrival_s")
    cum = (acc["prompt_tokens"] + acc["output_tokens"]).cumsum().to_numpy()
    assert (cum <= burst + rate * acc["arrival_s"].to_numpy() + 1e-6).all()
    # and it is not idle: what is admitted comes close to the limit
    assert cum[-1] >= 0.8 * rate * acc["arrival_s"].max()


def test_each_tier_has_its_own_buckets_even_without_tenants():
    tiers = "++tiers={free: {share: 0.5, tokens_per_s: 3000}, pro: {share: 0.5, priority: 1, tokens_per_s: 3000}}"
    shared = run(tiers, "workload.rate=4")  # one tenant label per tier ("")
    split = run(tiers, "workload.rate=4", "workload.tenants=1")  # free-0, pro-0: the same buckets
    assert shared.requests["status"].tolist() == split.requests["status"].tolist()
    # the two tiers' buckets are independent: each admits up to its own rate
    for tier in ("free", "pro"):
        acc = shared.requests[(shared.requests["tier"] == tier) & (shared.requests["status"] == "completed")]
        tokens = float((acc["prompt_tokens"] + acc["output_tokens"]).sum())
        assert tokens <= 3000 * (1 + acc["arrival_s"].max()) + 1e-6
        assert tokens >= 0.5 * 3000 * acc["arrival_s"].max()


def test_a_request_larger_than_the_bucket_is_rejected_once_and_for_all():
    r = run("admission.rate_limit.tokens_per_s=500", "workload.retry.max_attempts=3", "workload.rate=1")
    df = r.requests
    big = df["prompt_tokens"] + df["output_tokens"] > 500
    assert big.any() and (df.loc[big, "reject_reason"] == "exceeds_burst").all()
    assert (df.loc[big, "attempts"] == 1).all() and (df.loc[big, "finish_s"] == df.loc[big, "arrival_s"]).all()


def test_max_queue_zero_admits_when_nothing_waits_ahead():
    light = run("admission.max_queue=0", "latency=constant", "latency.step_s=0.001", "workload.arrival=constant", "workload.rate=1")
    assert (light.requests["status"] == "completed").all()
    heavy = run("admission.max_queue=0", *OVERLOAD)
    assert (heavy.requests["reject_reason"] == "queue_full").sum() > 0


def test_retries_back_off_exponentially_then_give_up():
    r = run(
        "admission.slo_aware=true", "slo.ttft_s=1e-6",  # no request can ever meet it
        "workload.retry.max_attempts=4", "workload.retry.backoff_s=0.5",
        "workload.retry.multiplier=3", "workload.retry.jitter=0", "workload.num_requests=50",
    )
    df = r.requests
    assert (df["status"] == "rejected").all() and (df["attempts"] == 4).all()
    # 0.5 + 1.5 + 4.5 s of backoff, then the last rejection
    assert np.allclose(df["finish_s"] - df["arrival_s"], 6.5)
    assert r.summary["requests"]["retries"] == 150


def test_retries_turn_rejections_into_completions():
    once = run("admission.max_queue=2", *OVERLOAD)
    retry = run("admission.max_queue=2", "workload.retry.max_attempts=5", *OVERLOAD)
    assert retry.summary["requests"]["completed"] > once.summary["requests"]["completed"]
    assert retry.requests["attempts"].max() > 1


def test_permanent_rejections_are_not_retried():
    r = run("scheduler.max_batch_tokens=1024", "workload.prompt_tokens.dist=exponential", "workload.prompt_tokens.mean=500",
            "workload.retry.max_attempts=5", "workload.num_requests=200")
    long = r.requests[r.requests["reject_reason"] == "prompt_exceeds_max_batch_tokens"]
    assert len(long) > 0 and (long["attempts"] == 1).all()


# -- failures -----------------------------------------------------------------------

FAST_START = ["cluster.cold_start.provision_s=10", "cluster.cold_start.storage_gbps=16"]  # 10 s + 1 s load


def test_failure_loses_in_flight_requests_at_that_instant():
    r = run("cluster.replicas=2", "workload.rate=20", "cluster.failures.at_s=[10]", "cluster.failures.replica=[1]",
            "cluster.failures.in_flight=lost", "cluster.failures.repair_s=5", "workload.num_requests=800", *FAST_START)
    lost = r.requests[r.requests["reject_reason"] == "replica_failure"]
    assert len(lost) > 5
    assert (lost["finish_s"] == 10).all() and (lost["replica"] == 1).all()
    ev = r.replicas[r.replicas["replica"] == 1]["event"].tolist()
    assert ev == ["provisioning", "serving", "failed", "provisioning", "serving"]
    times = r.replicas[r.replicas["replica"] == 1]["time_s"].to_numpy()
    repair, cold = r.config.cluster.failures.repair_s, 10 + 16.06e9 / 16e9
    assert times[2:] == pytest.approx([10, 10 + repair, 10 + repair + cold], rel=1e-3)
    assert (r.requests.loc[r.requests["status"] == "completed", "replica"] == 1).sum() > 0


def test_failure_retries_in_flight_requests_elsewhere():
    r = run("cluster.replicas=2", "workload.rate=20", "cluster.failures.at_s=[10]", "cluster.failures.replica=[1]",
            *FAST_START)
    assert (r.requests["status"] == "completed").all()
    moved = r.requests[r.requests["attempts"] == 2]
    assert len(moved) > 5 and (moved["replica"] == 0).all()
    # TTFT counts from the first arrival, so it includes the attempt lost
    assert (moved["first_token_s"] > 10).all()


@pytest.mark.parametrize("tp", [1, 2])
def test_a_tp_group_fails_as_a_whole_at_tp_times_the_gpu_rate(tp):
    """Random failures: each GPU fails at 1/MTBF, so the replica fails at
    tp/MTBF. Repairs are instant, so exposure is the whole window; the count
    must be within 4 Poisson standard deviations of window x tp / MTBF."""
    mtbf_h = 0.0075  # 27 s: about 45 failures of a TP-1 replica in 1,200 s
    r = run(
        f"cluster.tp={tp}", f"cluster.failures.mtbf_gpu_hours={mtbf_h}", "cluster.failures.repair_s=0",
        "cluster.cold_start.provision_s=0", "cluster.cold_start.storage_gbps=1e6", "workload.rate=0.5",
        "workload.num_requests=600", "latency=constant", "latency.step_s=0.001",
    )
    failures = (r.replicas["event"] == "failed").sum()
    expected = r.summary["window"]["end_s"] * tp / (mtbf_h * 3600)
    assert expected > 30
    assert abs(failures - expected) <= 4 * math.sqrt(expected), (failures, expected)


# -- autoscaling ----------------------------------------------------------------------

SCALE = [
    "cluster.autoscaler.enabled=true", "cluster.autoscaler.metric=requests", "cluster.autoscaler.target=16",
    "cluster.autoscaler.interval_s=5", "cluster.autoscaler.max_replicas=4", *FAST_START,
]


def test_new_replicas_serve_after_provisioning_plus_weight_load():
    r = run(*SCALE, "workload.rate=40", "workload.num_requests=1500")
    ev = r.replicas
    added = ev[(ev["event"] == "provisioning") & (ev["time_s"] > 0)]
    assert len(added) >= 1
    served = ev[ev["event"] == "serving"].set_index("replica")["time_s"]
    cold = 10 + 16.06e9 / 16e9  # provision_s + Llama-3.1-8B bf16 weights at 16 GB/s
    for _, row in added.iterrows():
        assert served[row["replica"]] - row["time_s"] == pytest.approx(cold, rel=1e-3)
    assert (r.requests.loc[r.requests["replica"] == added["replica"].iloc[0], "first_scheduled_s"] >= added["time_s"].iloc[0] + cold).all()


def test_scale_down_drains_then_removes_and_bills_less():
    r = run(*SCALE, "cluster.replicas=4", "cluster.autoscaler.down_window_s=10", "workload.rate=4", "workload.num_requests=400")
    ev = r.replicas
    assert (ev["event"] == "draining").sum() == 3 and (ev["event"] == "removed").sum() == 3
    assert ev["serving"].iloc[-1] == 1
    window = r.summary["window"]["end_s"]
    assert r.summary["cost"]["gpu_hours"] < 0.5 * 4 * window / 3600
    # a draining replica took no new requests after the drain began
    for _, row in ev[ev["event"] == "draining"].iterrows():
        after = r.requests[(r.requests["replica"] == row["replica"]) & (r.requests["arrival_s"] > row["time_s"])]
        assert after.empty


# -- heterogeneous groups ----------------------------------------------------------------


def test_heterogeneous_groups_each_run_their_own_hardware_and_count():
    r = run("++cluster.groups={fast: {replicas: 2, hardware: h200}, slow: {replicas: 1, hardware: a100-80gb, tp: 2}}",
            "cluster.router=least_tokens", "workload.rate=30", "workload.num_requests=900")
    pools = {p["name"]: p for p in r.summary["pools"]}
    assert pools["fast"]["hardware"] == "h200" and pools["fast"]["replicas"] == 2
    assert pools["slow"]["hardware"] == "a100-80gb" and pools["slow"]["gpus"] == 2
    assert r.summary["cost"]["gpus"] == 4
    assert set(r.steps["pool"]) == {"fast", "slow"}
    assert (r.requests["status"] == "completed").all()


# -- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, words",
    [
        ("cluster.router=fastest", "cluster.router"),
        ("cluster.autoscaler.metric=cpu", "cluster.autoscaler.metric"),
        ("cluster.failures.in_flight=drop", "cluster.failures.in_flight"),
        ("cluster.failures.replica=[5]", "cluster.failures.replica"),
        ("admission.kv_watermark=1.5", "admission.kv_watermark"),
        ("cluster.cold_start.storage_gbps=0", "cluster.cold_start.storage_gbps"),
        ("++cluster.groups={prefill: {replicas: 1}}", "reserved"),
        ("++cluster.groups={a: {hardware: tpu}}", "cluster.groups.a.hardware"),
    ],
)
def test_cluster_config_errors_are_one_sentence(override, words):
    args = [override, "cluster.failures.at_s=[1]"] if "failures.replica" in override else [override]
    if "autoscaler.metric" in override:
        args.append("cluster.autoscaler.enabled=true")
    with pytest.raises(ConfigError) as e:
        run(*args)
    assert words in str(e.value) and str(e.value).count(". ") == 0


@pytest.mark.parametrize("overrides,says", [
    (["cluster=disaggregated", "cluster.tp=2", "cluster.replicas=4"],
     r"cluster\.replicas=4 and cluster\.tp=2 are not used by this layout: set the pools' cluster\.disaggregation\.prefill"),
    (["++cluster.groups={fast: {replicas: 1}}", "cluster.tp=2"],
     r"cluster\.tp=2 is not used by this layout: set each group's cluster\.groups\.<name>\.replicas and \.tp"),
])  # fmt: skip
def test_replicas_and_tp_beside_a_layout_of_their_own_are_said_to_be_unused(overrides, says):
    import simulator

    with pytest.warns(UserWarning, match=says):
        simulator.load_config(overrides)
