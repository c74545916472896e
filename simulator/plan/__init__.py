"""Capacity planning on top of the simulator: ``servesim-plan``.

    >>> from simulator.plan import max_rate, cheapest, Requirement
    >>> max_rate([], ["ttft_p99_s<=2"]).rate                    # doctest: +SKIP
    >>> cheapest(40, ["ttft_p99_s<=2"]).best                       # doctest: +SKIP

See :mod:`simulator.plan.search` and docs/plan.md.
"""

from simulator.plan.search import (
    FIGURES,
    MAX_REJECTION,
    MAX_REPLICAS,
    MIN_DURATION_S,
    CheapestResult,
    MaxRateResult,
    Requirement,
    SearchError,
    cheapest,
    describe,
    max_rate,
    probe_requests,
)

__all__ = [
    "Requirement",
    "FIGURES",
    "max_rate",
    "MaxRateResult",
    "cheapest",
    "CheapestResult",
    "SearchError",
    "probe_requests",
    "describe",
    "MIN_DURATION_S",
    "MAX_REJECTION",
    "MAX_REPLICAS",
]
