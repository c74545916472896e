"""Fast-forwarded decode runs give exactly what step-by-step simulation gives.

``simulator.engine.decode_run`` waits out a run of decode-only steps as one
event and replays the steps when anything could notice. Each scenario here
runs twice, fast-forward on and off, and every table and summary must be
equal to the last bit; the scenarios cover each policy, preemption, swapping,
prefix caching, routers and admission that read KV usage mid-run, the
autoscaler, replica failures mid-run, disaggregation, pipeline parallelism,
the levers that turn fast-forward off, and replicas that step ahead of the
event loop to their next request's arrival.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import simpy

import simulator
from simulator.engine import decode_run
from simulator.engine.request import Request
from simulator.engine.running import RunningSet
from tests.test_invariants import SCENARIOS

TRACES = Path(simulator.__file__).resolve().parents[1] / "traces"

CASES = {
    name: SCENARIOS[name]
    for name in (
        "default",
        "constant-batched",
        "memory-pressure",
        "swap",
        "chunked-pressure",
        "static",
        "reserve-pow2",
        "disaggregated-chunked-2x",
        "prefix-sessions-chunked-pressure",
        "least-kv-pressure",
        "shed-and-retry",
        "failure-retry",
        "failure-lost-chunked-pressure",
        "autoscale-failures-random",
    )
}
CASES["mooncake-sample-8"] = [
    "workload.arrival=trace", f"workload.trace.path={TRACES / 'sample_mooncake.jsonl'}", "memory.prefix_caching=true",
    "cluster.replicas=8", "scheduler=chunked_prefill",
]  # fmt: skip
CASES["long-decodes"] = ["workload.rate=2", "workload.output_tokens.dist=fixed", "workload.output_tokens.value=600"]
CASES["pipeline-pp2"] = ["cluster.pp=2", "workload.rate=8"]
CASES["beam-4"] = ["workload.beam_width=4", "workload.rate=4"]
# multi-step scheduling: a run stops at its group's end, where the scheduler decides again
CASES["multi-step-8"] = ["engine=vllm_v0", "scheduler.multi_step=8", "workload.rate=6"]
CASES["multi-step-4-fleet"] = ["scheduler.multi_step=4", "workload.rate=20", "cluster.replicas=2"]
CASES["multi-step-8-disaggregated"] = ["scheduler.multi_step=8", "cluster=disaggregated", "workload.rate=10"]
# exact ties: events at the very instant a step ends (a 0.25 s grid of arrivals and step times)
GRID = ["latency=constant", "latency.step_s=0.25", "workload.arrival=constant", "workload.rate=8", "workload.output_tokens.dist=fixed",
        "workload.output_tokens.value=64"]  # fmt: skip
CASES["ties-closed-loop"] = ["latency=constant", "workload.arrival=closed_loop", "workload.users=8", "workload.think_s=0", "cluster.replicas=2"]
CASES["ties-random-router"] = [*GRID, "cluster.replicas=4", "cluster.router=random"]
CASES["ties-least-kv"] = [*GRID, "cluster.replicas=4", "cluster.router=least_kv"]
CASES["ties-kv-watermark"] = [*GRID, "admission.kv_watermark=0.001"]
CASES["ties-failures"] = [*GRID, "workload.rate=2", "cluster.replicas=2", "cluster.failures.at_s=[3.875,4.0]", "cluster.failures.replica=[1,0]",
                          "cluster.failures.repair_s=1", "cluster.cold_start.provision_s=0.5"]  # fmt: skip
# round robin: each replica knows when its next request arrives, and a run ends just before it;
# with exact ties (a step ending at the very instant of an arrival), and with the hint made wrong
# by a rate limit that turns requests away before the router counts them
CASES["ties-round-robin"] = [*GRID, "cluster.replicas=4"]
CASES["round-robin-rate-limited"] = ["cluster.replicas=3", "workload.rate=12", "admission.rate_limit.tokens_per_s=4000",
                                     "workload.retry.max_attempts=2", "workload.retry.backoff_s=0.3"]  # fmt: skip
CASES["speculative"] = ["scheduler.speculative.method=draft", "scheduler.speculative.draft_model=llama-3.2-1b"]
# stepping ahead (round robin, a steady fleet, no retries): a busy fleet, chunked prefill, prompts that wait
# for memory, and a rate limit without retries (requests turned away before the router: hints too early)
CASES["ahead-fleet"] = ["cluster.replicas=8", "workload.rate=96"]
CASES["ahead-chunked-pressure"] = [*SCENARIOS["chunked-pressure"], "cluster.replicas=2"]
CASES["ahead-rate-limited"] = ["cluster.replicas=3", "workload.rate=12", "admission.rate_limit.tokens_per_s=4000"]


def _run(overrides: list[str], fast: bool, monkeypatch, requests: int = 200):
    monkeypatch.setattr(decode_run, "ENABLED", fast)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulator.run([*overrides, f"workload.num_requests={requests}", "output.console=false", "output.charts=false"])


@pytest.mark.parametrize("name", list(CASES))
def test_fast_forward_changes_nothing(name, monkeypatch):
    slow = _run(CASES[name], False, monkeypatch)
    fast = _run(CASES[name], True, monkeypatch)
    pd.testing.assert_frame_equal(slow.requests, fast.requests, check_exact=True)
    pd.testing.assert_frame_equal(slow.steps, fast.steps, check_exact=True)
    assert json.dumps(slow.summary, sort_keys=True, default=str) == json.dumps(fast.summary, sort_keys=True, default=str)
    assert slow.itl is not None and fast.itl is not None
    for a, b in ((slow.itl, fast.itl),):  # the same gaps, each as often (recorded in another order)
        ka, kb = np.lexsort((a[1], a[0])), np.lexsort((b[1], b[0]))
        np.testing.assert_array_equal(a[0][ka], b[0][kb])
        np.testing.assert_array_equal(a[1][ka], b[1][kb])


def test_fast_forward_waits_out_runs_in_far_fewer_events(monkeypatch):
    """Where decodes dominate, most steps are not SimPy events any more."""
    counts = {}
    real_step = simpy.Environment.step

    def counting_step(env):
        counts[key] = counts.get(key, 0) + 1
        return real_step(env)

    monkeypatch.setattr(simpy.Environment, "step", counting_step)
    for key in (False, True):
        res = _run(CASES["long-decodes"], key, monkeypatch, requests=100)
    steps = int(res.summary["engine"]["steps"])
    assert counts[False] > steps  # one event per step at least
    assert counts[True] < counts[False] / 3


def test_step_end_at_fires_at_exactly_the_time_asked_before_other_events_then():
    rng = random.Random(7)
    env = simpy.Environment(initial_time=0.0)
    fired = []

    def proc():
        for _ in range(2000):
            when = env.now + rng.expovariate(1 / 0.03) + rng.random() * 1e-9
            yield decode_run.step_end_at(env, when)
            fired.append((env.now, when))

    env.process(proc())
    env.run()
    assert len(fired) == 2000 and all(now == when for now, when in fired)
    # scheduled after an ordinary timeout for the same instant, it still comes first
    order = []
    env2 = simpy.Environment()
    env2.timeout(1.0).callbacks.append(lambda _: order.append("other"))
    decode_run.step_end_at(env2, 1.0).callbacks.append(lambda _: order.append("step end"))
    env2.run()
    assert order == ["step end", "other"]


def test_finished_requests_are_let_go():
    """Members that finish leave nothing behind in the running set, so finished requests (and
    their prefix keys) are not kept alive for the whole run; the preemption victim is the member
    that arrived last, the higher id of a tie, looked for among the members only."""
    import gc
    import inspect

    rs = RunningSet(block_size=16)
    first = None
    for i in range(3000):
        r = Request(i, float(i // 3), 100, 1)  # (three arrivals at each instant)
        first = first or r
        rs.add(r, 100)
        done, _ = rs.decode_done(float(i))  # its one decode step: it finishes
        assert done == [r]
        rs.remove(r)
        rs.fresh = []  # (as the replica does after each decode step)
    del r, done
    assert not rs.members and not rs._finish
    holders = [x for x in gc.get_referrers(first) if not inspect.isframe(x)]
    assert holders == []
    for i, t in enumerate((5.0, 7.0, 7.0, 6.0)):
        rs.add(Request(10_000 + i, t, 100, 50), 100)
    assert rs.newest().id == 10_002


def test_rows_recorded_out_of_order_come_out_in_time_order():
    from simulator.metrics.recorder import step_order

    arr = np.zeros((4, 20))
    arr[:, 0] = [1, 0, 1, 0]  # replica
    arr[:, 1] = [0, 0, 1, 1]  # step
    arr[:, 2] = [0.5, 0.5, 0.75, 0.6]  # start
    order = step_order(arr[:, 2], arr[:, 0], arr[:, 1])
    assert order is not None and order.tolist() == [1, 0, 3, 2]
    again = arr[order]
    assert step_order(again[:, 2], again[:, 0], again[:, 1]) is None


def test_the_step_order_is_the_three_key_sort_whatever_the_ties():
    """step_order sorts by start time and settles equal start times by (replica, step), as np.lexsort
    on the three keys does: rows recorded in shuffled blocks, many of them starting at the same instant."""
    from simulator.metrics.recorder import step_order

    rng = np.random.default_rng(7)
    for ties in (0.0, 0.3, 1.0):
        n = 5000
        start = np.round(np.cumsum(rng.exponential(1.0, n)), 1 if ties else 12)
        start[rng.random(n) < ties] = start[0]  # a share of the rows at one instant
        replica = rng.integers(0, 8, n).astype(np.float64)
        step = np.arange(n, dtype=np.float64)
        blocks = np.array_split(np.arange(n), 50)
        rng.shuffle(blocks)
        rec = np.concatenate(blocks)  # recorded out of order, a block (a caught-up run) at a time
        got = step_order(start[rec], replica[rec], step[rec])
        want = np.lexsort((step[rec], replica[rec], start[rec]))
        assert got is not None and got.tolist() == want.tolist(), ties


def test_the_mean_gap_does_not_depend_on_the_recording_order():
    from simulator.metrics.stats import weighted_stats

    rng = np.random.default_rng(3)
    gaps = rng.exponential(0.02, 5000)
    counts = rng.integers(1, 64, 5000)
    perm = rng.permutation(5000)
    a, b = weighted_stats(gaps, counts), weighted_stats(gaps[perm], counts[perm])
    assert a == b
    assert math.isclose(a["mean"], float(np.dot(gaps, counts) / counts.sum()), rel_tol=1e-12)


@pytest.mark.parametrize("overrides", [
    [], ["model=llama-3.1-70b", "cluster.tp=4", "hardware=h200"], ["model=mistral-7b"],
    ["latency.attention_efficiency=0.0001"],  # decode attention bound by its math, not its reads
])  # fmt: skip
def test_a_decode_runs_prices_are_step_times_exactly(overrides):
    """decode_times (a loop below 48 steps, numpy from 48 on) gives step_time's floats, bit for bit,
    whether memory bounds decode attention (the usual case) or its math does."""
    from simulator.latency import build_latency_model
    from simulator.latency.base import StepShape
    from simulator.specs import ModelSpec

    cfg = simulator.api.load_config(overrides)
    model = build_latency_model(cfg, ModelSpec.from_config(cfg.model, cfg.cluster.tp))
    for seqs, ctx, count in ((7, 9_000, 20), (64, 150_000, 48), (200, 2_000_000, 300)):
        want = [model.step_time(StepShape(decode_seqs=seqs, decode_ctx_tokens=ctx + i * seqs)) for i in range(count)]
        assert model.decode_times(seqs, ctx, count) == want


@pytest.mark.parametrize("overrides", [
    [], ["model=mistral-7b"], ["latency.attention_efficiency=0.0001"], ["latency=constant"],
    ["cluster.pp=2"], ["uncertainty.enabled=true"], ["model=llama-3.1-70b", "cluster.tp=4", "hardware=h200"],
    ["scheduler.speculative.method=draft", "scheduler.speculative.draft_model=llama-3.2-1b"],
    ["model=tiny-llama", "hardware=cpu", "latency.model=profile", "latency.profile.path=cpu-tiny-llama",
     "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256"],
])  # fmt: skip
def test_a_plain_decode_steps_price_is_its_step_time_exactly(overrides):
    """decode_step_time (how the engine prices a plain decode step, without building its shape) gives
    step_time's float for that shape, bit for bit, on every latency model, wrapped or not."""
    from simulator.latency import build_latency_model
    from simulator.latency.base import StepShape
    from simulator.specs import ModelSpec

    cfg = simulator.api.load_config(overrides)
    model = build_latency_model(cfg, ModelSpec.from_config(cfg.model, cfg.cluster.tp))
    for seqs, ctx in ((1, 17), (7, 9_000), (64, 150_000), (200, 2_000_000), (7, 9_007), (64, 150_000)):  # (cached again)
        assert model.decode_step_time(seqs, ctx) == model.step_time(StepShape(decode_seqs=seqs, decode_ctx_tokens=ctx))


def test_a_replica_whose_runs_keep_being_cut_short_backs_off_twice_as_long_each_time():
    """note_ride only picks the cheaper path: after a short run the replica steps through PAUSE_STEPS
    eligible steps, then twice as many after each further short run in a row (up to 2**MAX_BACKOFF
    times), and a run that lasts starts the count again."""
    from types import SimpleNamespace

    from simulator.engine import decode_run as dr

    rep = SimpleNamespace(ff_steps=0.0, ff_pause=0, ff_misses=0)
    pauses = []
    for _ in range(dr.MAX_BACKOFF + 3):
        dr.note_ride(rep, SimpleNamespace(started=2))
        pauses.append(rep.ff_pause)
    assert pauses == [dr.PAUSE_STEPS << min(k, dr.MAX_BACKOFF) for k in range(dr.MAX_BACKOFF + 3)]
    for _ in range(20):  # runs that last: the average climbs past WORTH_STEPS, and no pause is set
        rep.ff_pause = 0
        dr.note_ride(rep, SimpleNamespace(started=50))
    assert rep.ff_misses == 0 and rep.ff_pause == 0 and rep.ff_steps >= dr.WORTH_STEPS
    rep.ff_steps = 0.0
    dr.note_ride(rep, SimpleNamespace(started=2))
    assert rep.ff_pause == dr.PAUSE_STEPS  # the count started again


def test_a_replica_knows_when_its_next_request_arrives_under_round_robin(monkeypatch):
    """The gateway's hint (Gateway.next_arrival_s) is the arrival time of the request the
    router will hand the replica next: checked at every submit of a 3-replica fleet. The runs
    it shapes end before the arrival, so none is cut short by one."""
    from simulator.cluster.gateway import Gateway
    from simulator.engine.replica import Replica

    hints: dict[int, float] = {}
    checked = []
    real_submit, real_enter = Replica.submit, Gateway.enter
    fleet = []

    def submit(rep, req):
        if rep.index in hints:
            checked.append((hints[rep.index], req.arrival_s))
        real_submit(rep, req)
        if rep not in fleet:
            fleet.append(rep)

    def enter(gateway, req):
        real_enter(gateway, req)
        for rep in fleet:  # what each replica is told once the request is routed
            hints[rep.index] = rep.next_arrival(rep)

    woken = []
    real_note = decode_run.note_ride

    def note(rep, run):
        woken.append(run.woken)
        real_note(rep, run)

    monkeypatch.setattr(Replica, "submit", submit)
    monkeypatch.setattr(Gateway, "enter", enter)
    monkeypatch.setattr(decode_run, "note_ride", note)
    res = _run(["cluster.replicas=3", "workload.rate=6"], True, monkeypatch, requests=120)
    assert res.summary["requests"]["completed"] == 120
    assert len(checked) == 117 and all(h == t for h, t in checked)
    assert woken and not any(woken)


def test_replicas_step_ahead_to_their_next_arrival_only_where_the_hint_is_exact(monkeypatch):
    """Under round robin on a steady fleet with nothing retried, a replica applies the steps that
    end before its next request arrives without waiting for SimPy: most steps of a busy fleet are
    then no events. A failure, the autoscaler, retries or disaggregation make the hint a guess
    (the serving replicas or the requests they get change), and nobody steps ahead."""
    ends: list[int] = []
    real = decode_run.StepEnd.__init__

    def count(self, env, delay):
        ends.append(1)
        real(self, env, delay)

    monkeypatch.setattr(decode_run.StepEnd, "__init__", count)
    busy = ["cluster.replicas=8", "workload.rate=96"]
    res = _run(busy, True, monkeypatch, requests=400)
    steps = res.summary["engine"]["steps"]
    assert len(ends) < 0.4 * steps, (len(ends), steps)  # (0.315; decode runs alone leave 0.54)
    ends.clear()
    _run(busy, False, monkeypatch, requests=400)  # as SERVESIM_FAST_FORWARD=0: a step, an event
    assert len(ends) >= steps
    for lever in (["cluster.failures.at_s=[5.0]"], ["cluster.autoscaler.enabled=true"], ["workload.retry.max_attempts=2"],
                  ["cluster.disaggregation.enabled=true"]):  # fmt: skip
        ends.clear()
        res = _run([*busy, *lever], True, monkeypatch, requests=400)
        assert len(ends) > 0.45 * res.summary["engine"]["steps"], lever  # (0.50-0.54, disaggregated 1.0)


def test_a_step_end_lands_on_a_time_no_delay_reaches():
    """From 0.01403755105107312, no float delay makes ``now + delay`` equal 0.10026501753848192
    (``now`` has bits below that time's last place): step_end_at puts the event there itself."""
    now, when = 0.01403755105107312, 0.10026501753848192
    d = when - now
    reachable = set()
    for k in range(-50, 51):
        x = d
        for _ in range(abs(k)):
            x = math.nextafter(x, math.inf if k > 0 else -math.inf)
        reachable.add(now + x)
    assert when not in reachable
    env = simpy.Environment()
    got = []

    def proc():
        yield env.timeout(now)
        yield decode_run.step_end_at(env, when)
        got.append(env.now)

    env.process(proc())
    env.run()
    assert got == [when]
