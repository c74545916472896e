"""Priority tiers, closed-loop clients and the autoscaler's cold start, end to end.

The mechanisms' unit behaviour is in tests/test_cluster.py; here each test
shows the effect a capacity planner relies on. Comparisons run paired seeds
(same arrivals, lengths and tiers in both arms) and require the mean log
ratio to clear both a margin and 3 standard errors of the paired differences.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import simulator
from simulator.engine.queue import TieredQueue
from simulator.scheduling.base import Scheduler
from simulator.workload import generate
from tests.conftest import run

SEEDS = range(5)


def _paired_log_ratio(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of log(a/b) over paired seeds and its standard error."""
    d = np.log(np.asarray(a)) - np.log(np.asarray(b))
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def _p99_ttft(r, tier: str) -> float:
    q = r.requests
    return float(np.percentile(q.loc[(q["tier"] == tier) & (q["status"] == "completed"), "ttft_s"], 99))


# -- shedding and per-tier queues ---------------------------------------------------------

#: one H100 at 30 req/s of chat traffic: about twice what it can serve
OVERLOAD = ["workload.rate=30", "workload.num_requests=1500"]
SAME_LINE = "++tiers={free: {share: 0.8}, enterprise: {share: 0.2}}"
SHED_FREE = "++tiers={free: {share: 0.8, max_wait_s: 1.0}, enterprise: {share: 0.2}}"


def test_shedding_the_free_tier_protects_enterprise_p99_ttft_in_overload():
    unprotected, protected = [], []
    for seed in SEEDS:
        a = run(*OVERLOAD, SAME_LINE, f"seed={seed}")
        b = run(*OVERLOAD, SHED_FREE, f"seed={seed}")
        assert (a.requests["status"] == "completed").all()  # nobody is shed: the queue grows
        shed = b.requests[b.requests["status"] == "rejected"]
        assert len(shed) > 0 and (shed["tier"] == "free").all() and (shed["reject_reason"] == "wait_too_long").all()
        unprotected.append(_p99_ttft(a, "enterprise"))
        protected.append(_p99_ttft(b, "enterprise"))
    mean, se = _paired_log_ratio(unprotected, protected)
    assert mean > np.log(3) and mean > 3 * se, (unprotected, protected)


def test_per_tier_queues_serve_the_higher_tier_first_under_saturation():
    tiers = "++tiers={free: {share: 0.8, priority: 0}, enterprise: {share: 0.2, priority: 2}}"
    free, enterprise = [], []
    for seed in SEEDS:
        r = run(*OVERLOAD, tiers, f"seed={seed}")
        free.append(_p99_ttft(r, "free"))
        enterprise.append(_p99_ttft(r, "enterprise"))
    mean, se = _paired_log_ratio(free, enterprise)
    assert mean > np.log(3) and mean > 3 * se, (free, enterprise)


def test_tiered_queue_orders_by_priority_then_arrival_and_tracks_work():
    q = TieredQueue(lambda r: r.cost, [0, 1, 2])
    reqs = [SimpleNamespace(id=i, priority=p, cost=c) for i, (p, c) in enumerate([(0, 1.0), (2, 2.0), (1, 4.0), (2, 8.0)])]
    for r in reqs:
        q.append(r)
    assert q[0] is reqs[1] and len(q) == 4
    assert q.work_ahead(2) == 10.0 and q.work_ahead(1) == 14.0 and q.work_ahead(0) == 15.0
    assert q.count_ahead(2) == 2 and q.count_ahead(1) == 3 and q.count_ahead(0) == 4
    first = q.popleft()
    q.appendleft(first)  # a preempted request returns to the head of its own tier
    assert [r.id for r in q] == [1, 3, 2, 0]
    assert [q.popleft().id for _ in range(4)] == [1, 3, 2, 0]
    assert not q and q.work_s == 0.0
    with pytest.raises(IndexError):
        q.popleft()


class _Running(dict):
    """Stand-in for the running set: its members and its newest request."""

    @property
    def members(self):
        return self

    def newest(self):
        return max(self.values(), key=lambda r: (r.arrival_s, r.id))


class _Policy(Scheduler):
    def plan(self):
        return None


def _victim(tiered: bool, running: list, prefilling: list):
    sched = _Policy.__new__(_Policy)
    sched.state = SimpleNamespace(
        tiered=tiered, running=_Running({r.id: r for r in running}), prefilling={r.id: r for r in prefilling}
    )
    return sched.victim()


def test_preemption_picks_the_newest_request_of_the_lowest_tier():
    def req(i, priority, arrival):
        return SimpleNamespace(id=i, priority=priority, arrival_s=arrival)

    old_free, new_free, newest_ent = req(0, 0, 1.0), req(1, 0, 2.0), req(2, 2, 9.0)
    prefilling_free = req(3, 0, 3.0)
    assert _victim(True, [old_free, newest_ent, new_free], []) is new_free
    assert _victim(True, [old_free, newest_ent], [prefilling_free]) is prefilling_free
    assert _victim(True, [newest_ent], []) is newest_ent  # only the top tier left: it goes
    # without tiers: vLLM's rule, the newest admitted request whatever its label
    assert _victim(False, [old_free, newest_ent, new_free], []) is newest_ent


# -- closed-loop clients ----------------------------------------------------------------------

CLOSED = ["workload.arrival=closed_loop", "workload.users=12", "workload.think_s=2.0", "workload.num_requests=1200"]


def test_closed_loop_users_never_have_more_than_one_request_in_flight():
    r = run(*CLOSED)
    q = r.requests.sort_values("arrival_s")
    assert (q["status"] == "completed").all()
    # requests in the system at each arrival (those that arrived earlier and had not finished)
    arrive, finish = q["arrival_s"].to_numpy(), np.sort(q["finish_s"].to_numpy())
    in_flight = np.arange(1, len(q) + 1) - np.searchsorted(finish, arrive, side="right")
    assert in_flight.max() <= 12
    assert in_flight.max() >= 10  # and the users do overlap


def test_closed_loop_users_spend_their_time_thinking_or_waiting():
    """The interactive response-time law X = N / (Z + R), without its boundary slack.

    Each of the N users alternates think (Z_i) and wait (R_i) from t=0 until
    no request is left, so the users' end times sum to sum(Z) + sum(R). No
    user ends before the last request is sent, and the last user ends within
    one cycle of it, so N x (T - C) <= sum(Z) + sum(R) <= N x T, with T the
    run's last finish and C its longest think + response cycle.
    """
    cfg = simulator.load_config(CLOSED)
    think = generate(cfg).think_s
    q = run(*CLOSED).requests.sort_values("request_id")
    cycles = think + q["e2e_s"].to_numpy()
    T, total = float(q["finish_s"].max()), float(cycles.sum())
    assert 12 * (T - cycles.max()) <= total <= 12 * T + 1e-6


# -- the autoscaler's cold start -----------------------------------------------------------

SPIKE = [
    "workload.rate_schedule=[[0,4],[60,30]]", "workload.num_requests=null", "workload.duration_s=150",
    "cluster.autoscaler.enabled=true", "cluster.autoscaler.metric=requests", "cluster.autoscaler.target=16",
    "cluster.autoscaler.interval_s=5", "cluster.autoscaler.max_replicas=4",
]


def _ttft_by_arrival(r, lo: float, hi: float) -> np.ndarray:
    q = r.requests
    return q.loc[(q["arrival_s"] >= lo) & (q["arrival_s"] < hi) & (q["status"] == "completed"), "ttft_s"].to_numpy()


def test_autoscaler_cold_start_shows_up_as_a_ttft_spike():
    cold = run(*SPIKE, "cluster.cold_start.provision_s=40", "cluster.cold_start.storage_gbps=2")
    warm = run(*SPIKE, "cluster.cold_start.provision_s=0", "cluster.cold_start.storage_gbps=1e6")
    start = 40 + 16.06e9 / 2e9  # provisioning + Llama-3.1-8B weights at 2 GB/s
    ev = cold.replicas
    up = ev[(ev["event"] == "provisioning") & (ev["time_s"] > 0)]
    assert len(up) >= 1 and 60 <= up["time_s"].min() <= 70  # the first check after the spike begins
    served = ev[ev["event"] == "serving"].set_index("replica")["time_s"]
    assert served[up["replica"].iloc[0]] == pytest.approx(up["time_s"].iloc[0] + start)
    # during the cold start: the requests that arrive queue on the old replica
    gap = (up["time_s"].min(), up["time_s"].min() + start)
    cold_gap, warm_gap = _ttft_by_arrival(cold, *gap), _ttft_by_arrival(warm, *gap)
    assert np.median(cold_gap) > 5 * np.median(warm_gap), (np.median(cold_gap), np.median(warm_gap))
    # before the spike both runs are the same run
    assert np.array_equal(_ttft_by_arrival(cold, 0, 60), _ttft_by_arrival(warm, 0, 60))


# -- what the summary says about such runs ---------------------------------------------------


def test_summary_names_the_schedule_the_users_and_the_changing_fleet():
    from rich.console import Console

    from simulator.report.console import render_summary

    scaled = run(*SPIKE, "cluster.cold_start.provision_s=40")
    s = scaled.summary
    assert s["scenario"]["rate_schedule"] == [[0.0, 4.0], [60.0, 30.0]]
    # the offered rate is the arrivals' own: (n - 1) / last arrival, between the pieces' rates
    a = np.sort(scaled.requests["arrival_s"].to_numpy())
    assert s["scenario"]["rate_rps"] == pytest.approx((len(a) - 1) / a[-1]) and 4 < s["scenario"]["rate_rps"] < 30
    # busy fraction over the replica-seconds actually serving, not the final count x window
    assert 0 < s["engine"]["busy_fraction"] <= 1 and s["pools"][0]["replicas"] == 1
    console = Console(width=100, record=True)
    render_summary(s, console=console)
    text = console.export_text()
    assert "1–4x h100-sxm" in text and "poisson at 4→30 req/s (schedule" in text and "GPUs billed: mean" in text

    closed = run(*CLOSED).summary
    assert closed["scenario"]["users"] == 12 and closed["scenario"]["think_s"] == 2.0
    console = Console(width=100, record=True)
    render_summary(closed, console=console)
    assert "closed loop, 12 users thinking 2 s on average" in console.export_text()
