"""The engine as a textbook queue.

With ``latency.model=constant``, ``scheduler.max_batch_size=1`` and Poisson
arrivals, a replica is an M/G/1 FCFS queue: a request's service time is its
output length times the step time (one prefill step that yields the first
token, then one decode step per further token). Its mean queueing delay must
match Pollaczek-Khinchine, Wq = lambda E[S^2] / (2 (1 - rho)).

Tolerance comes from the sampling error: R independent replications (seeds)
give a mean and a standard error (SE). The test demands that the estimate
lies within 3 SE of the formula *and* within 5% of it, and that the
experiment is precise enough for the 5% bound to mean something
(SE <= 2.5% of Wq). The sizes below give SE of about 1.5% of Wq at both
utilisations. Seeds are fixed, so the outcome is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.latency.constant import ConstantLatency
from tests.conftest import ORACLE

STEP = 0.01
MEAN_OUT = 4


def _moments(dist: str) -> tuple[float, float]:
    """E[S], E[S^2] for S = output_tokens x STEP."""
    if dist == "fixed":
        return MEAN_OUT * STEP, (MEAN_OUT * STEP) ** 2
    p = 1.0 / MEAN_OUT  # geometric on {1, 2, ...}: E[O^2] = (2 - p) / p^2
    return MEAN_OUT * STEP, (2 - p) / p**2 * STEP**2


def _output(dist: str) -> list[str]:
    if dist == "fixed":
        return ["workload.output_tokens.dist=fixed", f"workload.output_tokens.value={MEAN_OUT}"]
    return ["workload.output_tokens.dist=exponential", f"workload.output_tokens.mean={MEAN_OUT}"]


def measure(dist: str, rho: float, replications: int, n: int) -> tuple[float, float, float]:
    """(estimated Wq, its standard error, Pollaczek-Khinchine Wq)."""
    es, es2 = _moments(dist)
    lam = rho / es
    pk = lam * es2 / (2 * (1 - rho))
    means = []
    for seed in range(replications):
        r = simulator.run(
            ORACLE
            + _output(dist)
            + [f"seed={seed}", f"workload.rate={lam}", f"workload.num_requests={n}", "output.console=false"]
        )
        q = r.requests["queue_s"].to_numpy()
        means.append(q[n // 100 :].mean())  # drop the first 1% (empty-system start)
    means = np.asarray(means)
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(replications)), pk


# (distribution, utilisation, replications, requests per replication)
CASES = [
    ("fixed", 0.5, 10, 8_000),
    ("exponential", 0.5, 10, 16_000),
    ("fixed", 0.8, 10, 45_000),
    ("exponential", 0.8, 10, 60_000),
]


@pytest.mark.parametrize("dist,rho,reps,n", CASES, ids=[f"{d}-rho{r}" for d, r, _, _ in CASES])
def test_mean_queueing_delay_matches_pollaczek_khinchine(dist, rho, reps, n):
    est, se, pk = measure(dist, rho, reps, n)
    assert se <= 0.025 * pk, f"experiment too noisy to test 5%: SE {se:.5f} vs Wq {pk:.5f}"
    assert abs(est - pk) <= 3 * se, f"Wq {est:.5f} s vs P-K {pk:.5f} s (SE {se:.5f})"
    assert abs(est - pk) <= 0.05 * pk


def test_oracle_detects_service_time_counted_twice(monkeypatch):
    """Mutation check: if every step took twice as long, the oracle must fail."""
    monkeypatch.setattr(ConstantLatency, "step_time", lambda self, shape: 2 * self.step_s)
    est, se, pk = measure("fixed", 0.4, 4, 4_000)  # true utilisation becomes 0.8
    assert abs(est - pk) > 3 * se and abs(est - pk) > 0.05 * pk


def test_ttft_is_queue_plus_one_step():
    """Without batching, TTFT is exactly the queueing delay plus the prefill step."""
    r = simulator.run(ORACLE + _output("fixed") + ["workload.rate=5", "workload.num_requests=500", "output.console=false"])
    df = r.requests
    np.testing.assert_allclose(df["ttft_s"], df["queue_s"] + STEP, rtol=0, atol=1e-9)
    np.testing.assert_allclose(df["e2e_s"] - df["ttft_s"], (MEAN_OUT - 1) * STEP, atol=1e-9)
    np.testing.assert_allclose(df["tpot_s"], STEP, atol=1e-9)
