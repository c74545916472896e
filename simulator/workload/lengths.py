"""Token-length distributions for prompts and outputs.

Each distribution is a :class:`LengthDist` registered under its ``dist``
name: it lists the settings it reads (``params``), checks their values, draws
``n`` lengths >= 1 (``sample``) and states its largest length and mean (for
validation and load estimates).

``empirical`` reproduces a measured distribution: ``quantiles`` (cumulative
probabilities from 0 to 1) and ``tokens`` (the lengths at them) define a
piecewise-linear inverse CDF, sampled by inversion. :func:`fit_empirical`
builds that table from observed lengths (``servesim-trace fit`` prints it
for a trace), so a synthetic workload keeps a trace's body and tail.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from simulator.errors import ConfigError
from simulator.registry import Component, Registry

LENGTHS: Registry[type[LengthDist]] = Registry("dist", "length distribution")

#: The cumulative probabilities :func:`fit_empirical` records by default:
#: every 5% in the body, closer in both tails, and the maximum. On the Azure
#: 2023 conversation trace, 400k draws from the fitted table lie within 0.033
#: (Kolmogorov-Smirnov distance) of the trace's prompt lengths and 0.026 of
#: its output lengths; a 16-point grid gave 0.072 and 0.035.
FIT_QUANTILES: tuple[float, ...] = (
    0.0, 0.01, 0.025, *(round(0.05 * i, 2) for i in range(1, 20)), 0.975, 0.99, 0.995, 0.999, 1.0,
)


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


class LengthDist(Component, ABC):
    """A token-length distribution (``workload.prompt_tokens`` / ``workload.output_tokens``)."""

    @staticmethod
    @abstractmethod
    def sample(spec, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths (int64, >= 1)."""

    @staticmethod
    @abstractmethod
    def upper_bound(spec) -> float:
        """The largest length it can produce (inf if unbounded)."""

    @staticmethod
    @abstractmethod
    def mean(spec) -> float:
        """Its mean, before clipping (used for load estimates)."""


@LENGTHS.register("fixed")
class Fixed(LengthDist):
    params = ("value",)

    @classmethod
    def check(cls, spec, key):
        _need(spec.value >= 1, f"{key}.value must be an integer >= 1 (got {spec.value}).")

    @staticmethod
    def sample(spec, rng, n):
        return np.full(n, int(spec.value), dtype=np.int64)

    @staticmethod
    def upper_bound(spec):
        return spec.value

    @staticmethod
    def mean(spec):
        return float(spec.value)


@LENGTHS.register("uniform")
class Uniform(LengthDist):
    """Integers drawn uniformly from [low, high], both inclusive."""

    params = ("low", "high")

    @classmethod
    def check(cls, spec, key):
        _need(
            1 <= spec.low <= spec.high,
            f"{key}.low and {key}.high must satisfy 1 <= low <= high (got low={spec.low}, high={spec.high}).",
        )

    @staticmethod
    def sample(spec, rng, n):
        return rng.integers(int(spec.low), int(spec.high), size=n, endpoint=True, dtype=np.int64)

    @staticmethod
    def upper_bound(spec):
        return spec.high

    @staticmethod
    def mean(spec):
        return (spec.low + spec.high) / 2.0


@LENGTHS.register("lognormal")
class Lognormal(LengthDist):
    """exp(N(ln median, sigma)), rounded, clipped to [min, max]."""

    params = ("median", "sigma", "min", "max")

    @classmethod
    def check(cls, spec, key):
        for name, allow_zero in (("median", False), ("sigma", True)):
            v = getattr(spec, name)
            ok = (v >= 0 if allow_zero else v > 0) and math.isfinite(v)
            _need(ok, f"{key}.{name} must be a finite number {'>= 0' if allow_zero else '> 0'} (got {v!r}).")
        _need(
            1 <= spec.min <= spec.max,
            f"{key}.min and {key}.max must satisfy 1 <= min <= max (got min={spec.min}, max={spec.max}).",
        )

    @staticmethod
    def sample(spec, rng, n):
        x = rng.lognormal(np.log(spec.median), spec.sigma, size=n)
        return np.clip(np.rint(x), spec.min, spec.max).astype(np.int64)

    @staticmethod
    def upper_bound(spec):
        return spec.max

    @staticmethod
    def mean(spec):
        return float(spec.median * np.exp(spec.sigma**2 / 2))


@LENGTHS.register("exponential")
class Exponential(LengthDist):
    """Geometric on {1, 2, ...} with the given mean: the discrete exponential."""

    params = ("mean",)

    @classmethod
    def check(cls, spec, key):
        _need(spec.mean >= 1, f"{key}.mean must be >= 1 token (got {spec.mean}).")

    @staticmethod
    def sample(spec, rng, n):
        if spec.mean <= 1:
            return np.ones(n, dtype=np.int64)
        return rng.geometric(1.0 / spec.mean, size=n).astype(np.int64)

    @staticmethod
    def upper_bound(spec):
        return float("inf")

    @staticmethod
    def mean(spec):
        return float(max(spec.mean, 1.0))


@LENGTHS.register("empirical")
class Empirical(LengthDist):
    """Inverse-CDF draws: u ~ U[0, 1) mapped through the (quantiles, tokens) table, rounded,
    then clipped to the optional ``min`` / ``max`` (e.g. a shorter model context)."""

    params = ("quantiles", "tokens")

    @classmethod
    def check(cls, spec, key):
        q, v = list(spec.quantiles), list(spec.tokens)
        _need(
            len(q) == len(v) >= 2,
            f"{key}.quantiles and {key}.tokens must be lists of the same length, at least 2 "
            f"(got {len(q)} quantiles and {len(v)} tokens).",
        )
        _need(
            q[0] == 0 and q[-1] == 1 and all(a < b for a, b in zip(q, q[1:])),
            f"{key}.quantiles must rise strictly from 0 to 1 (got {q}); "
            "`servesim-trace fit TRACE` prints a table fitted to a trace.",
        )
        _need(
            v[0] >= 1 and all(a <= b for a, b in zip(v, v[1:])),
            f"{key}.tokens must be token counts >= 1 that never decrease (got {v}).",
        )
        _need(
            (spec.min or 1) >= 1 and (spec.max is None or spec.max >= (spec.min or 1)),
            f"{key}.min and {key}.max clip an empirical table and must satisfy 1 <= min <= max "
            f"(got min={spec.min}, max={spec.max}).",
        )

    @staticmethod
    def sample(spec, rng, n):
        x = np.interp(rng.random(n), np.asarray(spec.quantiles, float), np.asarray(spec.tokens, float))
        return np.clip(np.rint(x), max(spec.min or 1, 1), spec.max or np.inf).astype(np.int64)

    @staticmethod
    def upper_bound(spec):
        return min(spec.tokens[-1], spec.max or np.inf)

    @staticmethod
    def mean(spec):  # the area under the piecewise-linear inverse CDF, before clipping
        q, v = np.asarray(spec.quantiles, float), np.asarray(spec.tokens, float)
        return float(np.sum(np.diff(q) * (v[1:] + v[:-1]) / 2))


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


def sample(spec, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` lengths from the distribution ``spec.dist``."""
    return LENGTHS.get(spec.dist).sample(spec, rng, n)


def upper_bound(spec) -> float:
    """The largest length the distribution can produce (inf if unbounded)."""
    return LENGTHS.get(spec.dist).upper_bound(spec)


def mean(spec) -> float:
    """The distribution's mean, before clipping (used for load estimates)."""
    return LENGTHS.get(spec.dist).mean(spec)
