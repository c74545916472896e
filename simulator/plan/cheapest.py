"""The cheapest cluster for a rate: :func:`cheapest`.

It prices a grid of replicas x TP x GPU type x pricing tier x batching policy
from the hardware and pricing catalogs and simulates it at the target rate, cheapest first, stopping
at the first cost that meets the requirements. By default the replica count is
searched (galloping then bisection, per TP x GPU x policy; see
:mod:`simulator.plan.replica_search`), so the answer does not depend on a grid
of counts. The candidates' rows and runs are made in
:mod:`simulator.plan.candidates`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator.errors import ConfigError
from simulator.plan.candidates import _best, _candidate_table, _Candidates, _prices, _settle_statuses
from simulator.plan.formatting import _joined
from simulator.plan.headroom import check_schedule, headroom_overrides, peak, schedule_requests
from simulator.plan.planfiles import _plan_dir, _write_plan
from simulator.plan.point import _effective_jobs, _replications, probe_requests
from simulator.plan.replica_search import _search_grid, _search_replicas
from simulator.plan.requirements import Requirement, _requirements
from simulator.plan.settings import (
    MAX_REJECTION,
    MAX_REPLICAS,
    MIN_DURATION_S,
    _check_args,
    _check_confidence,
    _check_rate_driven,
    _ints,
    _names,
)
from simulator.version import __version__


@dataclass
class CheapestResult:
    """The answer of :func:`cheapest`."""

    best: dict | None  # replicas, tp, hardware, policy, usd_per_hour, gpus, figures...; None if none met
    candidates: pd.DataFrame  # one row per configuration of the grid (or simulated by the search), cheapest first
    runs_dir: Path
    target_rate: float = 0.0
    requirements: list[Requirement] = field(default_factory=list)
    wall_s: float = 0.0
    max_replicas: int | None = None  # the bound of the replica search; None when replicas was a grid
    schedule: list[tuple[float, float]] | None = None  # the rate schedule every candidate ran, if any
    survive_failures: int = 0  # replicas failed at the worst moment in every candidate run

    @property
    def answer(self) -> str:
        reqs = _joined(self.requirements)
        at = f"through a schedule peaking at {self.target_rate:g} req/s" if self.schedule is not None else f"at {self.target_rate:g} req/s"
        if self.survive_failures:
            n = self.survive_failures
            at += f" with {n} replica{'s' if n != 1 else ''} failed at the {'peak' if self.schedule is not None else 'worst moment'}"
        if self.best is None:
            where = "in the grid" if self.max_replicas is None else f"with at most {self.max_replicas} replicas"
            return f"no configuration {where} meets {reqs} {at}"
        b = self.best
        per_m = b.get("usd_per_million_tokens")
        unit = f"${per_m:.3g} per 1M tokens, " if per_m is not None and per_m == per_m else ""
        return (
            f"cheapest meeting {reqs} {at}: {b['replicas']}x {b['hardware']} "
            f"TP{b['tp']} {b['policy']} ({int(b['gpus'])} GPU{'' if int(b['gpus']) == 1 else 's'}, ${b['usd_per_hour']:.2f}/h), "
            f"all {b.get('tier', 'on_demand')}, {unit}goodput {b['goodput_rps']:.4g} req/s"
        )

    def __str__(self) -> str:
        return self.answer


_GRID_KEYS = ("cluster.replicas", "cluster.tp", "cluster.tier", "hardware", "scheduler", "scheduler.policy", "workload.rate")


def cheapest(
    target_rate: float | None,
    requirements: str | Requirement | Iterable[str | Requirement] = ("ttft_p99_s<=2",),
    *,
    replicas: Iterable[int] | None = None,
    max_replicas: int | None = None,
    tp: Iterable[int] = (1,),
    hardware: Iterable[str] = ("h100-sxm",),
    policy: Iterable[str] = ("continuous",),
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    tier: Iterable[str] = ("on_demand",),
    n_jobs: int = 1,
    exhaustive: bool = False,
    replications: int = 1,
    requests: int | None = None,
    min_duration_s: float = MIN_DURATION_S,
    max_rejection: float = MAX_REJECTION,
    progress: Callable[[str], None] | None = None,
    confidence: float | None = None,
    rate_schedule: Sequence[Sequence[float]] | None = None,
    survive_failures: int = 0,
) -> CheapestResult:
    """The cheapest replicas x TP x GPU type x pricing tier x policy that meets the requirements at ``target_rate``.

    Cost per hour = replicas x TP x the GPU's price at the tier: on-demand is
    the hardware catalog's ``price_per_gpu_hour``, reserved and spot come from
    the pricing catalog (``pricing.hardware.<gpu>.*``, docs/pricing.md). Each
    ``tier`` (``on_demand``, ``reserved``, ``spot``) is one more axis of the
    grid; spot runs include the spot interruptions at ``pricing.spot``'s rate.

    ``replicas=None`` (the default) searches the replica count: for each TP x
    GPU x policy, the smallest count from 1 to ``max_replicas`` (default
    :data:`MAX_REPLICAS`) that meets every requirement, found by galloping
    (1, 2, 4, 8, ...) until a count passes, then bisecting between the last
    failing and the first passing count. This relies on a requirement met with
    n replicas being met with more. The probes of all combinations are made
    cheapest first, and none costing more than the best passing configuration
    found so far is simulated (unless ``exhaustive``, which finds every
    combination's smallest count). A list of ``replicas`` is a grid instead:
    only those counts are tried.

    With a grid, configurations are simulated in ascending cost order; the
    search stops after the first cost level where one meets every requirement
    (all configurations of that cost are evaluated), unless ``exhaustive``.
    Either way, of the passing configurations of the lowest cost the one with
    the highest goodput wins (then grid order). Configurations that do not fit
    (e.g. the model's weights at that TP) or have no price are recorded as
    skipped with the reason. ``n_jobs > 1`` runs configurations in parallel
    (joblib; the search probes up to ``n_jobs`` TP x GPU x policy combinations
    at once); the answer is the same as with one job, more candidates may be
    evaluated past it. ``policy`` names a ``scheduler`` group option (its
    limits come with it).

    ``confidence`` (e.g. 0.9): a configuration passes only when at least that
    share of its replications meets every requirement on its own; with the
    override ``uncertainty=on`` each replication draws the latency model's
    measured error, so the answer is sized to meet the requirements with that
    confidence (docs/uncertainty.md). It needs ``replications`` >= 2.

    ``rate_schedule`` ([[start s, rate], ..., [end s, 0]]) simulates every
    candidate over that traffic instead of ``target_rate`` (pass None for it);
    ``survive_failures=N`` fails the N busiest replicas at the worst moment, the
    start of the schedule's peak (at a constant rate, a third into the run's
    arrivals): the answer is the cheapest fleet that holds the requirements
    through them (:mod:`simulator.plan.headroom`, docs/plan.md).
    """
    reqs = _requirements(requirements)
    overrides = list(overrides)
    schedule = check_schedule(rate_schedule) if rate_schedule is not None else None
    if schedule is not None:  # the peak rate names the search; the schedule's end ends each run
        target_rate = peak(schedule)[1]
        requests = schedule_requests(schedule) if requests is None else requests
    elif target_rate is None:
        raise ConfigError("give the target rate (--rate) or a rate schedule (--schedule).")
    window_s = requests / target_rate if requests is not None else max(min_duration_s, 0.0)
    _check_cheapest_args(target_rate, overrides, n_jobs, replications, requests, min_duration_s, max_rejection)
    grid = _grid(replicas, max_replicas, tp, hardware, policy, tier)
    base = _base_scenario(overrides)  # the scenario as given (rate-driven); the headroom overrides come on top
    _check_confidence(confidence, _replications(replications, base))
    cands = _start_candidates(
        base,
        overrides + headroom_overrides(schedule, survive_failures, window_s),
        reqs,
        target_rate,
        grid,
        out_dir,
        exhaustive=exhaustive,
        n_jobs=n_jobs,
        replications=replications,
        requests=requests,
        min_duration_s=min_duration_s,
        max_rejection=max_rejection,
        progress=progress,
    )
    cands.confidence = cands.settings["confidence"] = confidence
    cands.settings.update(rate_schedule=schedule, survive_failures=survive_failures)
    _simulate(cands, grid, exhaustive)
    result = _conclude(cands, grid, base.model.name)
    result.schedule, result.survive_failures = schedule, survive_failures
    return result


@dataclass
class _Grid:
    """What :func:`cheapest` searches over; ``replicas`` None means the replica search up to ``max_replicas``."""

    replicas: list[int] | None
    max_replicas: int | None
    tp: list[int]
    hardware: list[str]
    policy: list[str]
    tier: list[str] = field(default_factory=lambda: ["on_demand"])

    @property
    def search(self) -> bool:
        return self.replicas is None


def _check_cheapest_args(
    target_rate: float,
    overrides: list[str],
    n_jobs: int,
    replications: int,
    requests: int | None,
    min_duration_s: float,
    max_rejection: float,
) -> None:
    """Refuse bad numbers, and overrides that set what the search sets itself."""
    _check_args(
        target_rate=target_rate,
        replications=replications,
        requests=requests,
        min_duration_s=min_duration_s,
        max_rejection=max_rejection,
    )
    if not (isinstance(n_jobs, int) and (n_jobs >= 1 or n_jobs == -1)):
        raise ConfigError(f"n_jobs={n_jobs} must be a whole number of at least 1 (or -1 for every core).")
    for ov in overrides:
        key = ov.lstrip("+~").split("=", 1)[0]
        if key in _GRID_KEYS:
            raise ConfigError(
                f"{ov} conflicts with the search, which sets {key} itself; give the values to search over "
                "as replicas, tp, hardware, tier, policy (--replicas, --tp, --hardware, --tier, --policy) and the rate as "
                "target_rate (--rate)."
            )


def _grid(
    replicas: Iterable[int] | None,
    max_replicas: int | None,
    tp: Iterable[int],
    hardware: Iterable[str],
    policy: Iterable[str],
    tier: Iterable[str] = ("on_demand",),
) -> _Grid:
    """Check the axes of the search: replica counts (or the replica search's bound), TP degrees, GPUs, policies, tiers."""
    from simulator.config import catalog
    from simulator.config.pricing import TIERS

    if replicas is None:  # the replica search
        max_replicas = MAX_REPLICAS if max_replicas is None else max_replicas
        if isinstance(max_replicas, bool) or not (isinstance(max_replicas, int) and max_replicas >= 1):
            raise ConfigError(f"max_replicas={max_replicas} (--max-replicas) must be a whole number of at least 1.")
        grid_r = None
    else:
        if max_replicas is not None:
            raise ConfigError(
                "max_replicas (--max-replicas) bounds the replica search, which a list of replicas (--replicas) "
                "replaces; give one or the other."
            )
        grid_r = _ints("replicas", replicas)
    grid_tp = _ints("tp", tp)
    grid_hw, grid_pol = (
        _names("hardware", hardware, catalog.names("hardware")),
        _names("policy", policy, catalog.names("scheduler")),
    )
    grid_tier = _names("tier", tier, list(TIERS))
    return _Grid(replicas=grid_r, max_replicas=max_replicas, tp=grid_tp, hardware=grid_hw, policy=grid_pol, tier=grid_tier)


def _base_scenario(overrides: list[str]):
    """The scenario as given, composed but not judged: it may not fit (e.g. a 70B model at the default TP 1),
    the grid points are judged one by one. It must be rate-driven and colocated."""
    from simulator.config import compose, to_scenario

    base = to_scenario(compose(overrides))
    _check_rate_driven(base)
    if base.cluster.disaggregation.enabled or base.cluster.groups:
        raise ConfigError(
            "cheapest searches replicas x TP of a colocated cluster; drop cluster=disaggregated and cluster.groups."
        )
    return base


def _start_candidates(
    base,
    overrides: list[str],
    reqs: list[Requirement],
    target_rate: float,
    grid: _Grid,
    out_dir: str | Path | None,
    *,
    exhaustive: bool,
    n_jobs: int,
    replications: int,
    requests: int | None,
    min_duration_s: float,
    max_rejection: float,
    progress: Callable[[str], None] | None,
) -> _Candidates:
    """Start the clock, make the plan directory, settle seeds, requests per run and prices, record the settings."""
    t0 = time.perf_counter()
    d = _plan_dir(out_dir)
    replications = _replications(replications, base)
    seeds = [base.seed + k for k in range(replications)]
    n = probe_requests(target_rate, base.workload.num_requests, requests=requests, min_duration_s=min_duration_s)
    prices = _prices(grid.hardware, overrides, grid.tier)
    settings = _settings(grid, exhaustive, n_jobs, replications, seeds, n, requests, min_duration_s, max_rejection)
    return _Candidates(
        overrides=overrides,
        target_rate=target_rate,
        num_requests=n,
        prices=prices,
        reqs=reqs,
        max_rejection=max_rejection,
        d=d,
        seeds=seeds,
        jobs=_effective_jobs(n_jobs),
        progress=progress,
        t0=t0,
        settings=settings,
    )


def _settings(
    grid: _Grid,
    exhaustive: bool,
    n_jobs: int,
    replications: int,
    seeds: list[int],
    n: int,
    requests: int | None,
    min_duration_s: float,
    max_rejection: float,
) -> dict:
    """The settings plan.json records."""
    search = grid.search
    return {
        "replicas": "search" if search else grid.replicas,
        "max_replicas": grid.max_replicas if search else None,
        "replicas_rule": (
            "for each tp x hardware x policy, the smallest count in 1..max_replicas meeting the requirements "
            "(galloping 1, 2, 4, ... then bisection; assumes more replicas never fail what fewer meet), "
            "cheapest first, nothing dearer than the best passing configuration found so far"
            if search
            else "the grid given"
        ),
        "tp": grid.tp,
        "hardware": grid.hardware,
        "tier": grid.tier,
        "policy": grid.policy,
        "exhaustive": exhaustive,
        "n_jobs": n_jobs,
        "replications": replications,
        "seeds": seeds,
        "num_requests": n,
        "requests": requests,
        "min_duration_s": min_duration_s,
        "max_rejection": max_rejection,
        "requests_rule": "exactly `requests` when given, else max(workload.num_requests, ceil(min_duration_s x rate))",
    }


def _simulate(cands: _Candidates, grid: _Grid, exhaustive: bool) -> None:
    """Make the rows of the grid (or each family's count 1) and run the search over them."""
    rows = cands.rows
    if grid.search:
        assert grid.max_replicas is not None  # _grid sets the bound of a search
        families = []
        for k, (t, hw, tier, pol) in enumerate(itertools.product(grid.tp, grid.hardware, grid.tier, grid.policy)):
            rows.append(cands.make_row(1, t, hw, pol, (k, 1), tier=tier))
            families.append({"t": t, "hw": hw, "tier": tier, "pol": pol, "first": len(rows) - 1, "fail": 0, "pass": None})
        cands.refuse_common_mistake()
        _search_replicas(
            families, rows, cands.prices, grid.max_replicas, exhaustive, cands.jobs, cands.make_row, cands.run_batch
        )
    else:
        assert grid.replicas is not None  # not a search: a grid of replica counts
        grid_points = itertools.product(grid.replicas, grid.tp, grid.hardware, grid.tier, grid.policy)
        for k, (r, t, hw, tier, pol) in enumerate(grid_points):
            rows.append(cands.make_row(r, t, hw, pol, (k,), tier=tier))
        cands.refuse_common_mistake()
        _search_grid(rows, exhaustive, cands.jobs, cands.run_batch)


def _conclude(cands: _Candidates, grid: _Grid, model: str) -> CheapestResult:
    """Statuses, the winner, the plan table and plan.json; the result."""

    rows = cands.rows
    _settle_statuses(rows)
    best = _best(rows)
    table = _candidate_table(rows)
    result = CheapestResult(
        best=best,
        candidates=table,
        runs_dir=cands.d,
        target_rate=cands.target_rate,
        requirements=cands.reqs,
        wall_s=time.perf_counter() - cands.t0,
        max_replicas=grid.max_replicas if grid.search else None,
    )
    meta = {
        "kind": "cheapest",
        "answer": {"best": best, "text": result.answer},
        "requirements": [str(r) for r in cands.reqs],
        "target_rate": cands.target_rate,
        "scenario": {"overrides": cands.overrides, "model": model},
        "settings": cands.settings,
        "candidates": len(rows),
        "evaluated": int(table["evaluated"].sum()),
        "wall_s": result.wall_s,
        "servesim": __version__,
    }
    _write_plan(cands.d, table, meta)
    return result
