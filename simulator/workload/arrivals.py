"""Arrival processes: inter-arrival times at ``workload.rate`` requests/s.

Each process is an :class:`ArrivalProcess` registered under its
``workload.arrival`` name: ``gaps(wl, rng, n)`` draws ``n`` positive
inter-arrival gaps in seconds, and ``check`` validates the settings it reads.

A time-varying rate (``workload.rate_schedule``) reuses the same processes by
*time rescaling*: the process runs at rate 1 in "operational time" u, and
each point u is mapped to the clock time t = Λ⁻¹(u), where Λ(t) = ∫₀ᵗ rate is
the cumulative rate (:class:`RateSchedule`). A Poisson process becomes a
non-homogeneous Poisson process with that rate; gamma keeps its burstiness
(the CV of the gaps, measured in operational time); constant spaces arrivals
evenly in expected-count. Where the rate is 0, Λ is flat and no request
arrives; a final rate of 0 ends the arrivals.

Two ``workload.arrival`` values are not renewal processes and are handled
elsewhere (:data:`OTHER`): ``closed_loop`` (users who wait for their answer,
then think; the engine issues those requests) and ``trace`` (replay, see
:mod:`simulator.workload.traces`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.errors import ConfigError
from simulator.registry import Component, Registry


class ArrivalProcess(Component):
    """A renewal process at ``workload.rate`` (or at rate 1 under a ``workload.rate_schedule``)."""

    @staticmethod
    def gaps(wl, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` inter-arrival gaps in seconds."""
        raise NotImplementedError


ARRIVALS: Registry[type[ArrivalProcess]] = Registry("workload.arrival", "arrival process")

#: ``workload.arrival`` values outside :data:`ARRIVALS`.
OTHER: tuple[str, ...] = ("closed_loop", "trace")


def names() -> list[str]:
    """Every accepted ``workload.arrival`` value."""
    return [*ARRIVALS.names(), *OTHER]


@ARRIVALS.register("poisson")
class Poisson(ArrivalProcess):
    """Exponential gaps (coefficient of variation 1)."""

    @staticmethod
    def gaps(wl, rng, n):
        return rng.exponential(1.0 / wl.rate, size=n)


@ARRIVALS.register("gamma")
class Gamma(ArrivalProcess):
    """Gamma gaps with mean 1/rate and coefficient of variation ``workload.cv``.

    cv > 1 gives bursty traffic, cv < 1 smoother than Poisson, cv = 1 is Poisson.
    """

    params = ("cv",)

    @classmethod
    def check(cls, wl, key):
        if not (wl.cv > 0 and math.isfinite(wl.cv)):
            raise ConfigError(f"{key}.cv must be a finite number > 0 (got {wl.cv!r}).")

    @staticmethod
    def gaps(wl, rng, n):
        shape = 1.0 / (wl.cv * wl.cv)
        return rng.gamma(shape, 1.0 / (wl.rate * shape), size=n)


@ARRIVALS.register("constant")
class Constant(ArrivalProcess):
    """Evenly spaced arrivals, one every 1/rate seconds (the first at 1/rate)."""

    @staticmethod
    def gaps(wl, rng, n):
        return np.full(n, 1.0 / wl.rate)


@dataclass(frozen=True)
class RateSchedule:
    """A piecewise-constant rate: ``rates[i]`` req/s from ``starts[i]`` until ``starts[i + 1]``
    (the last piece holds forever). ``starts[0]`` is 0 and starts strictly increase."""

    starts: np.ndarray  # float64, seconds
    rates: np.ndarray  # float64, requests/s, >= 0

    @classmethod
    def from_config(cls, pieces) -> RateSchedule:
        """From ``workload.rate_schedule``: ``[[start_s, rate], ...]`` (lists or ListConfigs)."""
        pairs = np.array([[float(p[0]), float(p[1])] for p in pieces], dtype=np.float64).reshape(-1, 2)
        return cls(pairs[:, 0].copy(), pairs[:, 1].copy())

    @property
    def _knots(self) -> np.ndarray:
        """Λ at each start."""
        return np.concatenate([[0.0], np.cumsum(self.rates[:-1] * np.diff(self.starts))])

    def cumulative(self, t) -> np.ndarray:
        """Λ(t): the expected number of arrivals in [0, t)."""
        t = np.asarray(t, dtype=np.float64)
        i = np.searchsorted(self.starts, t, side="right") - 1
        return self._knots[i] + self.rates[i] * (t - self.starts[i])

    def inverse(self, u) -> np.ndarray:
        """Λ⁻¹(u) = inf{t : Λ(t) >= u} for u > 0: inf where Λ never reaches u.

        Taking the infimum makes an arrival that falls on a flat (zero-rate)
        stretch of Λ happen at its start, when the expected count got there.
        """
        u = np.asarray(u, dtype=np.float64)
        knots = self._knots
        # the piece whose rise holds u: knots[j] < u <= knots[j + 1] (the last piece rises forever)
        j = np.searchsorted(knots, u, side="left") - 1
        j = np.clip(j, 0, len(knots) - 1)
        rate = self.rates[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = self.starts[j] + (u - knots[j]) / rate
        return np.where(rate > 0, t, np.inf)
