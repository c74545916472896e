"""Arrival processes: inter-arrival times at ``workload.rate`` requests/s.

Each process is a function ``(cfg, rng, n) -> np.ndarray`` of ``n`` positive
inter-arrival gaps in seconds, registered under its ``workload.arrival`` name.
"""

from __future__ import annotations

import numpy as np

from simulator.registry import Registry

ARRIVALS: Registry = Registry("workload.arrival", "arrival process")


@ARRIVALS.register("poisson")
def poisson(wl, rng: np.random.Generator, n: int) -> np.ndarray:
    """Exponential gaps (coefficient of variation 1)."""
    return rng.exponential(1.0 / wl.rate, size=n)


@ARRIVALS.register("gamma")
def gamma(wl, rng: np.random.Generator, n: int) -> np.ndarray:
    """Gamma gaps with mean 1/rate and coefficient of variation ``workload.cv``.

    cv > 1 gives bursty traffic, cv < 1 smoother than Poisson, cv = 1 is Poisson.
    """
    shape = 1.0 / (wl.cv * wl.cv)
    return rng.gamma(shape, 1.0 / (wl.rate * shape), size=n)


@ARRIVALS.register("constant")
def constant(wl, rng: np.random.Generator, n: int) -> np.ndarray:
    """Evenly spaced arrivals, one every 1/rate seconds (the first at 1/rate)."""
    return np.full(n, 1.0 / wl.rate)
