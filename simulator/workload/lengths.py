"""Token-length distributions for prompts and outputs.

Each distribution is a function ``(spec, rng, n) -> np.ndarray[int64]`` of
``n`` lengths >= 1, registered under its ``dist`` name, with the parameters it
reads listed in :data:`PARAMS` (used for validation and error messages).

``empirical`` reproduces a measured distribution: ``quantiles`` (cumulative
probabilities from 0 to 1) and ``tokens`` (the lengths at them) define a
piecewise-linear inverse CDF, sampled by inversion. :func:`fit_empirical`
builds that table from observed lengths (``servesim-trace fit`` prints it
for a trace), so a synthetic workload keeps a trace's body and tail.
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
    "empirical": ("quantiles", "tokens"),
}

#: The cumulative probabilities :func:`fit_empirical` records by default:
#: every 5% in the body, closer in both tails, and the maximum. On the Azure
#: 2023 conversation trace, 400k draws from the fitted table lie within 0.033
#: (Kolmogorov-Smirnov distance) of the trace's prompt lengths and 0.026 of
#: its output lengths; a 16-point grid gave 0.072 and 0.035.
FIT_QUANTILES: tuple[float, ...] = (
    0.0, 0.01, 0.025, *(round(0.05 * i, 2) for i in range(1, 20)), 0.975, 0.99, 0.995, 0.999, 1.0,
)


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


@LENGTHS.register("empirical")
def empirical(spec, rng, n):
    """Inverse-CDF draws: u ~ U[0, 1) mapped through the (quantiles, tokens) table, rounded,
    then clipped to the optional ``min`` / ``max`` (e.g. a shorter model context)."""
    x = np.interp(rng.random(n), np.asarray(spec.quantiles, float), np.asarray(spec.tokens, float))
    return np.clip(np.rint(x), max(spec.min or 1, 1), spec.max or np.inf).astype(np.int64)


def fit_empirical(lengths, quantiles=FIT_QUANTILES) -> dict[str, list]:
    """The ``empirical`` table of observed ``lengths`` at ``quantiles``.

    Values are the lower empirical quantiles (``method="inverted_cdf"``: each
    one an observed length), so the table's 0 and 1 are the shortest and
    longest observation.
    """
    x = np.asarray(lengths)
    if x.size == 0:
        raise ValueError("cannot fit an empirical length distribution to no lengths")
    values = np.quantile(x, quantiles, method="inverted_cdf")
    return {"quantiles": [float(q) for q in quantiles], "tokens": [int(v) for v in values]}


def upper_bound(spec) -> float:
    """The largest length the distribution can produce (inf if unbounded)."""
    return {
        "fixed": lambda: spec.value,
        "uniform": lambda: spec.high,
        "lognormal": lambda: spec.max,
        "exponential": lambda: float("inf"),
        "empirical": lambda: min(spec.tokens[-1], spec.max or np.inf),
    }[spec.dist]()


def mean(spec) -> float:
    """The distribution's mean, before clipping (used for load estimates)."""
    if spec.dist == "fixed":
        return float(spec.value)
    if spec.dist == "uniform":
        return (spec.low + spec.high) / 2.0
    if spec.dist == "lognormal":
        return float(spec.median * np.exp(spec.sigma**2 / 2))
    if spec.dist == "empirical":  # the area under the piecewise-linear inverse CDF, before clipping
        q, v = np.asarray(spec.quantiles, float), np.asarray(spec.tokens, float)
        return float(np.sum(np.diff(q) * (v[1:] + v[:-1]) / 2))
    return float(max(spec.mean, 1.0))
