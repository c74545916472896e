"""Token-length distributions for prompts and outputs.

Each distribution is a function ``(spec, rng, n) -> np.ndarray[int64]`` of
``n`` lengths >= 1, registered under its ``dist`` name, with the parameters it
reads listed in :data:`PARAMS` (used for validation and error messages).
"""

from __future__ import annotations

import numpy as np

from simulator.registry import Registry

LENGTHS: Registry = Registry("dist", "length distribution")

#: The parameters each distribution requires, by name.
PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma", "min", "max"),
    "exponential": ("mean",),
}


@LENGTHS.register("fixed")
def fixed(spec, rng, n):
    return np.full(n, int(spec.value), dtype=np.int64)


@LENGTHS.register("uniform")
def uniform(spec, rng, n):
    """Integers drawn uniformly from [low, high], both inclusive."""
    return rng.integers(int(spec.low), int(spec.high), size=n, endpoint=True, dtype=np.int64)


@LENGTHS.register("lognormal")
def lognormal(spec, rng, n):
    """exp(N(ln median, sigma)), rounded, clipped to [min, max]."""
    x = rng.lognormal(np.log(spec.median), spec.sigma, size=n)
    return np.clip(np.rint(x), spec.min, spec.max).astype(np.int64)


@LENGTHS.register("exponential")
def exponential(spec, rng, n):
    """Geometric on {1, 2, ...} with the given mean: the discrete exponential."""
    if spec.mean <= 1:
        return np.ones(n, dtype=np.int64)
    return rng.geometric(1.0 / spec.mean, size=n).astype(np.int64)


def upper_bound(spec) -> float:
    """The largest length the distribution can produce (inf if unbounded)."""
    return {
        "fixed": lambda: spec.value,
        "uniform": lambda: spec.high,
        "lognormal": lambda: spec.max,
        "exponential": lambda: float("inf"),
    }[spec.dist]()


def mean(spec) -> float:
    """The distribution's mean, before clipping (used for load estimates)."""
    if spec.dist == "fixed":
        return float(spec.value)
    if spec.dist == "uniform":
        return (spec.low + spec.high) / 2.0
    if spec.dist == "lognormal":
        return float(spec.median * np.exp(spec.sigma**2 / 2))
    return float(max(spec.mean, 1.0))
