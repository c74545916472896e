"""Arrival processes: inter-arrival times at ``workload.rate`` requests/s.

Each ``workload.arrival`` value is an :class:`ArrivalProcess` registered in
:data:`ARRIVALS`: it checks the settings it reads (``check``), draws the
workload (``generate``) and says how many requests that will be before it
draws them (``expected_requests``). Renewal processes (``poisson``,
``gamma``, ``constant``) only supply ``gaps(wl, rng, n)``, ``n`` positive
inter-arrival gaps in seconds at ``workload.rate``; the base class turns
those into arrival times, then draws lengths, prefixes and labels.

A time-varying rate (``workload.rate_schedule``) reuses the same processes by
*time rescaling*: the process runs at rate 1 in "operational time" u, and
each point u is mapped to the clock time t = Λ⁻¹(u), where Λ(t) = ∫₀ᵗ rate is
the cumulative rate (:class:`RateSchedule`). A Poisson process becomes a
non-homogeneous Poisson process with that rate; gamma keeps its burstiness
(the CV of the gaps, measured in operational time); constant spaces arrivals
evenly in expected-count. Where the rate is 0, Λ is flat and no request
arrives; a final rate of 0 ends the arrivals.

Two sources are not renewal processes: ``closed_loop`` (users who wait for
their answer, then think; the engine issues those requests, so arrival times
stay NaN and each request carries its think time) and ``trace`` (replay, see
:mod:`simulator.workload.traces`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from simulator.errors import ConfigError
from simulator.registry import Component, Registry
from simulator.workload import labels
from simulator.workload.base import Workload
from simulator.workload.lengths import sample
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig, WorkloadConfig

_CHUNK = 4096


class ArrivalProcess(Component):
    """A workload source (``workload.arrival``). The base class is an open renewal process at
    ``workload.rate`` (or at rate 1, warped along ``workload.rate_schedule``); subclasses that
    are not renewal processes set ``renewal = False`` and override :meth:`arrivals` or
    :meth:`generate`."""

    #: gaps at a rate: ``workload.rate`` applies and a ``workload.rate_schedule`` may warp it
    renewal: ClassVar[bool] = True

    @staticmethod
    def gaps(wl, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` inter-arrival gaps in seconds: what a renewal source defines (a source that is not a
        renewal process overrides :meth:`arrivals` or :meth:`generate` and is never asked)."""
        raise TypeError("gaps() is defined by renewal arrival processes only (renewal = True)")

    @classmethod
    def check(cls, wl: WorkloadConfig, key: str) -> None:
        if wl.rate_schedule is None:
            _positive_rate(wl, key)

    @classmethod
    def arrivals(cls, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray | None]:
        """Arrival times (NaN where the engine decides them) and think times (or None)."""
        return _open_arrivals(cfg, cls.gaps), None

    @classmethod
    def generate(cls, cfg: ScenarioConfig) -> Workload:
        """The workload: arrivals, then prompt and output lengths, shared prefixes, labels."""
        arrival_s, think = cls.arrivals(cfg)
        return _requests(cfg, arrival_s, think)

    @classmethod
    def expected_requests(cls, cfg: ScenarioConfig) -> tuple[float, str] | None:
        """How many requests ``cfg`` will generate (expected, for a ``workload.duration_s``
        stop) and which keys set that, or ``None`` when it is not known before the run."""
        return _expected_open(cfg)


ARRIVALS: Registry[type[ArrivalProcess]] = Registry("workload.arrival", "arrival process")


def names() -> list[str]:
    """Every accepted ``workload.arrival`` value."""
    return ARRIVALS.names()


def _positive_rate(wl: WorkloadConfig, key: str) -> None:
    if not (wl.rate is not None and wl.rate > 0 and math.isfinite(wl.rate)):
        raise ConfigError(f"{key}.rate must be a finite number > 0 (got {wl.rate!r}).")


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
    def check(cls, wl: WorkloadConfig, key: str) -> None:
        super().check(wl, key)
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


@ARRIVALS.register("closed_loop")
class ClosedLoop(ArrivalProcess):
    """``workload.users`` users each send a request, wait for its answer, think for an
    exponential time of mean ``workload.think_s``, then send the next."""

    renewal = False

    @classmethod
    def check(cls, wl: WorkloadConfig, key: str) -> None:
        if wl.num_requests is None:
            raise ConfigError(
                f"{key}.arrival=closed_loop needs {key}.num_requests (got null): "
                "the users' requests are drawn before the run, so their number must be known."
            )
        if not wl.users >= 1:
            raise ConfigError(f"{key}.users must be an integer >= 1 (got {wl.users}).")
        if not (wl.think_s is not None and wl.think_s >= 0 and math.isfinite(wl.think_s)):
            raise ConfigError(f"{key}.think_s must be a finite number >= 0 (got {wl.think_s!r}).")

    @classmethod
    def arrivals(cls, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray | None]:
        assert cfg.workload.num_requests is not None  # check(): closed_loop needs workload.num_requests
        n = int(cfg.workload.num_requests)
        return np.full(n, np.nan), stream(cfg.seed, "think").exponential(float(cfg.workload.think_s), size=n)

    @classmethod
    def expected_requests(cls, cfg: ScenarioConfig) -> tuple[float, str] | None:
        assert cfg.workload.num_requests is not None  # check(): closed_loop needs workload.num_requests
        return float(cfg.workload.num_requests), f"workload.num_requests={cfg.workload.num_requests}"


@ARRIVALS.register("trace")
class Trace(ArrivalProcess):
    """Replay of a recorded trace (:mod:`simulator.workload.traces`): its arrivals and lengths."""

    renewal = False

    @classmethod
    def check(cls, wl: WorkloadConfig, key: str) -> None:
        from simulator.workload.traces import check_config

        if not wl.trace.path:
            raise ConfigError(f"{key}.arrival=trace needs {key}.trace.path (a trace file).")
        check_config(wl.trace, wl.num_requests, wl.duration_s)

    @classmethod
    def generate(cls, cfg: ScenarioConfig) -> Workload:
        from simulator.workload.traces import load

        return load(cfg)

    @classmethod
    def expected_requests(cls, cfg: ScenarioConfig) -> tuple[float, str] | None:
        wl = cfg.workload  # a trace's length is known only once it is read, unless it loops up to a cap
        if wl.trace.loop and wl.num_requests is not None:
            return float(wl.num_requests), f"workload.num_requests={wl.num_requests}"
        return None


def _open_arrivals(cfg: ScenarioConfig, gaps: Callable[..., np.ndarray]) -> np.ndarray:
    """Arrival times of an open process, up to ``workload.num_requests`` and before ``workload.duration_s``."""
    wl = cfg.workload
    rng_arr = stream(cfg.seed, "arrivals")
    warp: Callable[[np.ndarray], np.ndarray] | None = None
    params: WorkloadConfig | SimpleNamespace = wl
    if wl.rate_schedule is not None:  # rate 1 in operational time, then t = Λ⁻¹(u)
        warp = RateSchedule.from_config(wl.rate_schedule).inverse
        params = SimpleNamespace(rate=1.0, cv=wl.cv)
    limit_n = wl.num_requests if wl.num_requests is not None else np.iinfo(np.int64).max
    horizon = wl.duration_s if wl.duration_s is not None else np.inf

    times: list[np.ndarray] = []
    u0, count = 0.0, 0
    while count < limit_n:
        n = int(min(_CHUNK, limit_n - count))
        u = u0 + np.cumsum(gaps(params, rng_arr, n))
        t = u if warp is None else warp(u)
        if t[-1] >= horizon:  # also a final rate of 0: the times after it are inf
            times.append(t[t < horizon])
            break
        times.append(t)
        u0, count = float(u[-1]), count + n
    return np.concatenate(times) if times else np.empty(0)


def _requests(cfg: ScenarioConfig, arrival_s: np.ndarray, think: np.ndarray | None) -> Workload:
    """Lengths (their own streams), shared prefixes and labels for requests arriving at ``arrival_s``."""
    wl, n = cfg.workload, len(arrival_s)
    prompt = sample(wl.prompt_tokens, stream(cfg.seed, "prompt_tokens"), n)
    output = sample(wl.output_tokens, stream(cfg.seed, "output_tokens"), n)
    w = Workload(arrival_s, prompt, output, think_s=think)
    pf = wl.prefix
    if pf.system_prompts > 0 or (pf.sessions > 0 and pf.turns > 1):
        from simulator.workload import prefixes

        w.prompt_tokens, w.prefix_ids, w.session = prefixes.apply(cfg, prompt, output)
        w.prefix_block_tokens = prefixes.GRANULARITY
    labels.label(cfg, w)
    return w


def _expected_open(cfg: ScenarioConfig) -> tuple[float, str] | None:
    wl = cfg.workload
    cap = float(wl.num_requests) if wl.num_requests is not None else math.inf
    by_time = math.inf
    if wl.duration_s is not None:
        if wl.rate_schedule is not None:
            by_time = float(RateSchedule.from_config(wl.rate_schedule).cumulative(float(wl.duration_s)))
            rate = "workload.rate_schedule"
        else:
            by_time = float(wl.rate) * float(wl.duration_s)
            rate = f"workload.rate={wl.rate}"
    if cap <= by_time:
        return (cap, f"workload.num_requests={wl.num_requests}") if math.isfinite(cap) else None
    return by_time, f"workload.duration_s={wl.duration_s} at {rate}"


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
