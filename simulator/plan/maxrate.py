"""The highest rate a scenario sustains: :func:`max_rate`.

The search brackets the answer by doubling the request rate from a low start
until a probe fails (or halving until one passes), then bisects until the
bracket is narrower than ``rel_tol``. Every probe is an ordinary simulated run
(one per seed), kept in the plan directory as ``probe-NNN-rate-R``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from simulator.errors import ConfigError
from simulator.plan.formatting import _fmt_pair, _joined, _probe_line, _progress, describe
from simulator.plan.planfiles import _plan_dir, _table, _write_plan
from simulator.plan.point import _output_overrides, _replications, _run_point, probe_requests
from simulator.plan.requirements import Requirement, _judge_point, _requirements
from simulator.plan.settings import (
    MAX_REJECTION,
    MAX_STEPS,
    MIN_DURATION_S,
    SearchError,
    _check_args,
    _check_confidence,
    _check_rate_driven,
)
from simulator.version import __version__

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


@dataclass
class MaxRateResult:
    """The answer of :func:`max_rate`."""

    rate: float  # the highest probed rate meeting every requirement (req/s)
    first_failing: float  # the lowest probed rate that failed (req/s)
    probes: pd.DataFrame  # one row per probe, in the order run
    runs_dir: Path
    requirements: list[Requirement] = field(default_factory=list)
    scenario: str = ""  # e.g. "1x h100-sxm llama-3.1-8b, continuous"
    wall_s: float = 0.0
    confidence: float | None = None  # the share of replications that had to meet the requirements

    @property
    def answer(self) -> str:
        a, b = _fmt_pair(self.rate, self.first_failing)
        reqs = " and ".join(str(r) for r in self.requirements)
        sure = f" in {self.confidence:.0%} of replications" if self.confidence is not None else ""
        return f"max rate meeting {reqs}{sure}: {a} req/s ({b} fails) on {self.scenario}"

    def __str__(self) -> str:
        return self.answer


@dataclass
class _RateProbes:
    """One :func:`max_rate` search under way: its scenario, plan directory, settings and the probes so far."""

    cfg: Any
    overrides: list[str]
    reqs: list[Requirement]
    d: Path
    scenario: str
    seeds: list[int]
    settings: dict
    requests: int | None
    min_duration_s: float
    max_rejection: float
    progress: Callable[[str], None] | None
    t0: float
    rows: list[dict] = field(default_factory=list)
    confidence: float | None = None  # a probe passes when at least this share of its replications meets every requirement

    def meta(self, answer: dict) -> dict:
        """plan.json: the answer (or the error), the requirements, the scenario and the settings."""

        return {
            "kind": "max_rate",
            "answer": answer,
            "requirements": [str(r) for r in self.reqs],
            "scenario": {"description": self.scenario, "overrides": self.overrides},
            "settings": self.settings,
            "probes": len(self.rows),
            "wall_s": time.perf_counter() - self.t0,
            "servesim": __version__,
        }

    def probe(self, rate: float) -> bool:
        """Simulate ``rate``, keep its run and its row, print its line; whether it met every requirement."""
        i = len(self.rows)
        n = probe_requests(
            rate, self.cfg.workload.num_requests, requests=self.requests, min_duration_s=self.min_duration_s
        )
        run_dir = self.d / f"probe-{i:03d}-rate-{rate:.4g}"
        ov = self.overrides + [f"workload.rate={rate!r}", f"workload.num_requests={n}"] + _output_overrides()
        out = _run_point(ov, self.seeds, str(run_dir))
        if "error" in out:
            _write_plan(self.d, _table(self.rows), self.meta({"error": out["error"]}))
            raise ConfigError(out["error"])
        figs = out["figures"]
        ok, why, share = _judge_point(out, self.reqs, self.max_rejection, self.confidence)
        if share is not None:  # each replication judged on its own (with uncertainty=on, its own draw of the model error)
            figs = {**figs, "met_share": share}
        self.rows.append(
            {
                "probe": i,
                "rate": rate,
                "num_requests": n,
                "met": ok,
                "failed": why,
                **figs,
                "run_dir": str(run_dir),
                "wall_s": out["wall_s"],
            }
        )
        _progress(self.progress, _probe_line(i, rate, figs, self.reqs, ok, why))
        return ok

    def give_up(self, message: str) -> SearchError:
        """Write the plan so far with ``message`` as its error; the SearchError to raise."""
        _write_plan(self.d, _table(self.rows), self.meta({"error": message}))
        return SearchError(f"{message}; the probes are in {self.d}.")


def max_rate(
    overrides: Sequence[str] = (),
    requirements: str | Requirement | Iterable[str | Requirement] = ("ttft_p99_s<=2",),
    *,
    lo: float | None = None,
    hi: float | None = None,
    rel_tol: float = 0.02,
    out_dir: str | Path | None = None,
    replications: int = 1,
    requests: int | None = None,
    min_duration_s: float = MIN_DURATION_S,
    max_rejection: float = MAX_REJECTION,
    max_steps: int = MAX_STEPS,
    progress: Callable[[str], None] | None = None,
    confidence: float | None = None,
) -> MaxRateResult:
    """The highest ``workload.rate`` at which the scenario meets every requirement.

    ``overrides`` are hydra overrides as for :func:`simulator.run`. The search
    starts at ``lo`` (default: a quarter of the scenario's own rate), doubles
    the rate until a probe fails (halves it when ``lo`` already fails; at most
    ``max_steps`` times), probing ``hi`` second when given, then bisects until
    ``(fail - pass) / pass <= rel_tol``. Each probe simulates
    :func:`probe_requests` requests, once per seed ``seed .. seed +
    replications - 1``; its figures are their mean. A probe fails when a
    requirement is not met or more than ``max_rejection`` of its requests were
    rejected. ``progress`` is called with one line per probe.

    ``confidence`` (e.g. 0.9): a probe passes only when at least that share of
    its replications meets every requirement on its own, instead of their mean
    meeting it; with ``uncertainty=on`` each replication draws the latency
    model's measured error, so the answer is the highest rate that meets the
    requirements with that confidence (docs/uncertainty.md). It needs
    ``replications`` >= 2 (10 or more for a meaningful share).

    Raises ConfigError for bad arguments or scenarios, SearchError when no
    probed rate passes or none fails.
    """
    from simulator import api

    reqs = _requirements(requirements)
    overrides = list(overrides)
    cfg = api.load_config(overrides)
    _check_rate_driven(cfg)
    lo = _default_lo(cfg, lo, hi)
    _check_args(
        lo=lo,
        hi=hi,
        rel_tol=rel_tol,
        replications=replications,
        requests=requests,
        min_duration_s=min_duration_s,
        max_rejection=max_rejection,
        max_steps=max_steps,
    )
    if hi is not None and hi <= lo:
        raise ConfigError(f"hi={hi:g} must be above lo={lo:g}.")
    _check_confidence(confidence, _replications(replications, cfg))
    search = _start_probes(
        cfg,
        overrides,
        reqs,
        out_dir,
        progress,
        lo=lo,
        hi=hi,
        rel_tol=rel_tol,
        replications=replications,
        requests=requests,
        min_duration_s=min_duration_s,
        max_rejection=max_rejection,
        max_steps=max_steps,
    )
    search.confidence = confidence
    search.settings["confidence"] = confidence
    good, bad = _bracket(search, lo, hi, max_steps)
    good, bad = _bisect(search, good, bad, rel_tol)
    return _finish(search, good, bad)


def _default_lo(cfg: ScenarioConfig, lo: float | None, hi: float | None) -> float:
    """``lo`` as given, else a quarter of the scenario's rate (and at most a quarter of ``hi``)."""
    if lo is None:
        lo = cfg.workload.rate / 4 if hi is None else min(cfg.workload.rate / 4, hi / 4)
    return lo


def _start_probes(
    cfg: ScenarioConfig,
    overrides: list[str],
    reqs: list[Requirement],
    out_dir: str | Path | None,
    progress: Callable[[str], None] | None,
    *,
    lo: float,
    hi: float | None,
    rel_tol: float,
    replications: int,
    requests: int | None,
    min_duration_s: float,
    max_rejection: float,
    max_steps: int,
) -> _RateProbes:
    """Start the clock, make the plan directory, settle the seeds and record the settings."""
    t0 = time.perf_counter()
    d = _plan_dir(out_dir)
    scenario = describe(cfg)
    replications = _replications(replications, cfg)
    seeds = [cfg.seed + k for k in range(replications)]
    settings = {
        "lo": lo,
        "hi": hi,
        "rel_tol": rel_tol,
        "replications": replications,
        "seeds": seeds,
        "requests": requests,
        "min_duration_s": min_duration_s,
        "config_num_requests": cfg.workload.num_requests,
        "max_rejection": max_rejection,
        "max_steps": max_steps,
        "requests_rule": "exactly `requests` when given, else max(workload.num_requests, ceil(min_duration_s x rate))",
    }
    return _RateProbes(
        cfg=cfg,
        overrides=overrides,
        reqs=reqs,
        d=d,
        scenario=scenario,
        seeds=seeds,
        settings=settings,
        requests=requests,
        min_duration_s=min_duration_s,
        max_rejection=max_rejection,
        progress=progress,
        t0=t0,
    )


def _bracket(search: _RateProbes, lo: float, hi: float | None, max_steps: int) -> tuple[float, float]:
    """(good, bad): a passing and a failing rate, doubling up from ``lo`` when it passes, else halving down."""
    if search.probe(lo):
        return _double_until_failing(search, lo, hi, max_steps)
    return _halve_until_passing(search, lo, max_steps)


def _double_until_failing(search: _RateProbes, lo: float, hi: float | None, max_steps: int) -> tuple[float, float]:
    """``lo`` passed: probe ``hi`` (default 2 x lo), then keep doubling until a rate fails."""
    good = lo
    nxt = hi if hi is not None else 2 * lo
    for _ in range(max_steps):
        if not search.probe(nxt):
            return good, nxt
        good, nxt = nxt, 2 * nxt
    raise search.give_up(f"every probed rate up to {good:.4g} req/s meets {_joined(search.reqs)}")


#: halving reads the last FLOOR_PROBES probes (a fourfold range of rates): a failed figure that held
#: within FLOOR_SPREAD of its value while the GPU kept up, missing its bound by more than FLOOR_GAP,
#: is at its floor; one that fell by more than FLOOR_SPREAD at each halving rises with load
FLOOR_SPREAD = 0.02
FLOOR_PROBES = 3
FLOOR_GAP = 0.1
#: a probe kept up with its load when it served at least this share of the offered rate
KEPT_UP = 0.9


def _figures(rows: list[dict], q: Requirement) -> list[float] | None:
    raw = [r.get(q.figure) for r in rows]
    if any(v is None or not math.isfinite(v) for v in raw):
        return None
    return [float(v) for v in raw if v is not None]


def _halving_verdict(search: _RateProbes) -> tuple[str, list[str]]:
    """What the last FLOOR_PROBES failed halvings say: ("floor", phrases) when a failed figure no longer
    moves with load (lower load cannot meet it), ("rises", phrases) when a failed lower bound falls with
    the load (throughput, goodput: lower load moves away from it), else ("", [])."""
    rows = search.rows[-FLOOR_PROBES:]
    if len(rows) < FLOOR_PROBES or any(r["met"] for r in rows):
        return "", []
    failed = [q for q in search.reqs if not q.met(rows[-1])]
    kept_up = all(float(r.get("throughput_rps", float("nan"))) >= KEPT_UP * r["rate"] for r in rows)
    floors, rises = [], []
    for q in failed:
        values = _figures(rows, q)
        if values is None:
            continue
        scale = max(abs(v) for v in values)
        flat = max(values) - min(values) <= FLOOR_SPREAD * scale
        if flat and kept_up and abs(values[-1] - q.threshold) > FLOOR_GAP * scale:  # saturated runs are flat too
            floors.append(f"{q.figure} stays at {values[-1]:.4g}")
        falling = all(b < a * (1 - FLOOR_SPREAD) for a, b in zip(values, values[1:]))
        if q.op in (">=", ">") and falling:
            rises.append(
                f"{q.figure} falls with the load ({values[0]:.4g} at {rows[0]['rate']:.4g} req/s, "
                f"{values[-1]:.4g} at {rows[-1]['rate']:.4g})"
            )
    if floors:
        return "floor", floors
    return ("rises", rises) if rises else ("", [])


def _halve_until_passing(search: _RateProbes, lo: float, max_steps: int) -> tuple[float, float]:
    """``lo`` failed: keep halving until a rate passes; stop when a failed figure no longer moves with
    load, and search upward instead when a failed lower bound falls with the load."""
    bad = lo
    nxt = lo / 2
    for _ in range(max_steps):
        if search.probe(nxt):
            return nxt, bad
        verdict, phrases = _halving_verdict(search)
        if verdict == "floor":
            rows = search.rows[-FLOOR_PROBES:]
            values = "its value" if len(phrases) == 1 else "their values"
            raise search.give_up(
                f"no rate meets {_joined(search.reqs)}: {' and '.join(phrases)} from {rows[0]['rate']:.4g} down to "
                f"{rows[-1]['rate']:.4g} req/s, {values} without queueing, so lower load will not help (a faster GPU, "
                f"more tensor parallelism or shorter requests may)"
            )
        if verdict == "rises":
            _progress(search.progress, f"{' and '.join(phrases)}: searching above {lo:.4g} req/s instead")
            return _double_until_passing(search, lo, max_steps)
        bad, nxt = nxt, nxt / 2
    rows = search.rows
    raise search.give_up(
        f"no probed rate meets {_joined(search.reqs)}: even {bad:.4g} req/s fails ({rows[-1]['failed']})"
    )


def _more_load_helps(search: _RateProbes, lower: dict, row: dict) -> bool:
    """Whether ``row`` fails only on requirements that also failed at the lower rate of ``lower`` and
    came closer to their bounds with the added load (a floor on throughput or goodput), not on one
    that more load breaks (a latency bound, the SLO share, rejections)."""
    failed = [q for q in search.reqs if not q.met(row)]
    if not failed:  # it failed on rejections
        return False
    for q in failed:
        a, b = lower.get(q.figure), row.get(q.figure)
        if q.met(lower) or a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            return False
        if abs(b - q.threshold) >= abs(a - q.threshold):
            return False
    return True


def _double_until_passing(search: _RateProbes, lo: float, max_steps: int) -> tuple[float, float]:
    """``lo`` failed a lower bound that rises with load (``goodput_rps>=10`` at too low a rate): double
    until a rate passes, then go on doubling until one fails. A rate that fails on a bound more load
    breaks (TTFT) brackets the passing rates from above: bisect for one between; give up when the
    bracket closes, or once the GPU no longer keeps up with the load."""
    low, lower = lo, next(r for r in search.rows if r["rate"] == lo)
    nxt = 2 * lo
    for _ in range(max_steps):
        if search.probe(nxt):
            return _double_until_failing(search, nxt, None, max_steps)
        row = search.rows[-1]
        if not _more_load_helps(search, lower, row):
            return _between(search, low, lower, nxt)
        if float(row.get("throughput_rps", float("nan"))) < KEPT_UP * nxt:
            raise search.give_up(
                f"no rate meets {_joined(search.reqs)}: lower rates offer too little load, and at {nxt:.4g} req/s the "
                f"configuration serves only {float(row['throughput_rps']):.4g} req/s ({row['failed']})"
            )
        low, lower, nxt = nxt, row, 2 * nxt
    raise search.give_up(f"no probed rate meets {_joined(search.reqs)}: up to {low:.4g} req/s every rate fails")


def _between(search: _RateProbes, low: float, lower: dict, high: float) -> tuple[float, float]:
    """``low`` fails for too little load, ``high`` for too much: bisect for a rate that passes, and
    return the bracket (it, high) for the search of the highest."""
    above = search.rows[-1]
    tol = float(search.settings.get("rel_tol", 0.02))
    while (high - low) / low > tol:
        mid = (low + high) / 2
        if search.probe(mid):
            return mid, high
        row = search.rows[-1]
        if _more_load_helps(search, lower, row):
            low, lower = mid, row
        else:
            high, above = mid, row
    raise search.give_up(
        f"no rate meets {_joined(search.reqs)}: up to {low:.4g} req/s there is too little load ({lower['failed']}), "
        f"from {high:.4g} req/s too much ({above['failed']})"
    )


def _bisect(search: _RateProbes, good: float, bad: float, rel_tol: float) -> tuple[float, float]:
    """Halve the bracket (good passes, bad fails) until ``(bad - good) / good <= rel_tol``."""
    while (bad - good) / good > rel_tol:
        mid = (good + bad) / 2
        if search.probe(mid):
            good = mid
        else:
            bad = mid
    return good, bad


def _finish(search: _RateProbes, good: float, bad: float) -> MaxRateResult:
    """The result, and the plan directory's table and answer."""
    table = _table(search.rows)
    result = MaxRateResult(
        rate=good,
        first_failing=bad,
        probes=table,
        runs_dir=search.d,
        requirements=search.reqs,
        scenario=search.scenario,
        wall_s=time.perf_counter() - search.t0,
        confidence=search.confidence,
    )
    _write_plan(search.d, table, search.meta({"rate": good, "first_failing": bad, "text": result.answer}))
    return result
