"""A response (or semantic) cache in front of the GPUs (``cluster.response_cache``).

Each request is a *hit* with probability ``hit_rate`` (or its tenant's rate
in ``hit_rate_by_tenant``), drawn once per request from the seeded stream
``response_cache``: one uniform per request, by request id, so the same
seed gives the same hits, and the hits at a lower rate are a subset of the
hits at a higher one (common random numbers: runs at different rates differ
only by the rate).

A hit never reaches the API server, the rate limiter, the router or a
replica: it is answered ``latency_s`` after it arrives, every output token
at once, so its TTFT and e2e are ``latency_s`` and its TPOT 0. It has no
queue delay or prefill (``queue_s``, ``first_scheduled_s`` and
``prefill_done_s`` are empty), its ``replica`` is -1 and its ``served_by``
is ``cache``. A miss goes on as if there were no cache. Each hit costs
``usd_per_hit``, added to the cost section (see :mod:`simulator.metrics.cost`).

What is not modelled: staleness (a cached answer is always acceptable),
the quality of a semantic match, the cache's own capacity, eviction and
warm-up (the hit rate is constant from the first request), and the
lookup's cost for misses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.request import Request
    from simulator.workload import Workload

#: the ``served_by`` of a request the cache answered
CACHE = "cache"


def cache_active(cfg: ScenarioConfig) -> bool:
    """Whether any request can hit: a positive ``hit_rate`` or a positive per-tenant rate."""
    rc = cfg.cluster.response_cache
    return float(rc.hit_rate) > 0 or any(float(v) > 0 for v in rc.hit_rate_by_tenant.values())


class ResponseCache:
    """Which requests hit (decided before the run, per request id), and how a hit is answered."""

    def __init__(self, cfg: ScenarioConfig, workload: Workload) -> None:
        rc = cfg.cluster.response_cache
        self.latency_s = float(rc.latency_s)
        n = len(workload)
        rate = np.full(n, float(rc.hit_rate))
        if rc.hit_rate_by_tenant and workload.tenant is not None:
            tenants = np.asarray(workload.tenant, dtype=object)
            for name, r in rc.hit_rate_by_tenant.items():
                rate[tenants == str(name)] = float(r)
        u = stream(int(cfg.seed), "response_cache").random(n)
        #: per request id: answered by the cache
        self.hit: list[bool] = (u < rate).tolist()
        self.hits = 0

    def answer(self, req: Request) -> None:
        """``req`` hit: every token arrives ``latency_s`` after its arrival (call at that time)."""
        done = req.arrival_s + self.latency_s
        req.first_token_s = req.last_token_s = req.finish_s = done
        req.status = "completed"
        req.pool = CACHE
        self.hits += 1
