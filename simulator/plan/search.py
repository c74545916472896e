"""Capacity search: the highest rate a scenario sustains, the cheapest cluster for a rate.

Both searches are loops of ordinary simulated runs (:func:`simulator.run`);
each run is judged by :class:`Requirement` s written against the flat
headline figures of :func:`simulator.metrics.headline.headline`
(``ttft_p99_s<=2``, ``slo_attainment>=0.99``, ...).

* :func:`max_rate` brackets the answer by doubling the request rate from a
  low start until a probe fails (or halving until one passes), then bisects
  until the bracket is narrower than ``rel_tol``.
* :func:`cheapest` prices a grid of replicas x TP x GPU type x batching
  policy from the hardware catalog and simulates it at the target rate,
  cheapest first, stopping at the first cost that meets the requirements. By
  default the replica count is searched (galloping then bisection, per TP x
  GPU x policy), so the answer does not depend on a grid of counts.

Every run is kept on disk (``Result.save``, charts off) under one plan
directory, with the table of probes or candidates (``plan.parquet``,
``plan.csv``) and the answer and settings (``plan.json``). docs/plan.md
explains the rules (notably how many requests a probe simulates) and how far
to trust the answers.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.errors import ConfigError, ServesimError
from simulator.files import json_safe
from simulator.metrics.headline import FIGURES as HEADLINE_FIGURES

#: every figure a requirement may name (the flat names of :func:`simulator.metrics.headline.headline`)
FIGURES: tuple[str, ...] = HEADLINE_FIGURES

#: a probe simulates at least this many seconds of arrivals (see docs/plan.md)
MIN_DURATION_S = 600.0
#: a probe fails when more than this share of its requests were rejected
MAX_REJECTION = 0.01
#: bracketing gives up after this many doublings (or halvings) of the rate
MAX_STEPS = 12

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_REQ_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class SearchError(ServesimError):
    """A search found no answer in its range (nothing passes, or nothing fails)."""


# --------------------------------------------------------------------------- requirements


@dataclass(frozen=True)
class Requirement:
    """A bound on one headline figure: ``ttft_p99_s<=2``, ``slo_attainment>=0.99``.

    A NaN figure (e.g. TPOT when every output is one token) never meets a requirement.
    """

    figure: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str | Requirement) -> Requirement:
        if isinstance(text, Requirement):
            return text
        m = _REQ_RE.match(str(text))
        if not m:
            raise ConfigError(
                f"requirement {str(text)!r} is not of the form FIGURE OP NUMBER (e.g. ttft_p99_s<=2) "
                f"with OP one of <=, <, >=, >."
            )
        name, op, value = m.groups()
        if name not in FIGURES:
            raise ConfigError(
                f"requirement {str(text)!r} names an unknown figure {name!r}; choose one of: {', '.join(FIGURES)}."
            )
        return cls(name, op, float(value))

    def met(self, figures: dict[str, float]) -> bool:
        v = figures.get(self.figure, float("nan"))
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return bool(_OPS[self.op](float(v), self.threshold))

    def __str__(self) -> str:
        return f"{self.figure}{self.op}{self.threshold:g}"


def _requirements(reqs: str | Requirement | Iterable[str | Requirement]) -> list[Requirement]:
    if isinstance(reqs, (str, Requirement)):
        reqs = [reqs]
    out = [Requirement.parse(r) for r in reqs]
    if not out:
        raise ConfigError("give at least one requirement, e.g. ttft_p99_s<=2.")
    return out


def _judge(figures: dict, reqs: list[Requirement], max_rejection: float) -> tuple[bool, str]:
    """(met, the reasons it failed, '' when met)."""
    failed = [
        f"{r.figure}={_fmt(figures.get(r.figure))}, not {r.op}{r.threshold:g}" for r in reqs if not r.met(figures)
    ]
    rej = figures.get("rejection_rate", 0.0)
    if rej is not None and not math.isnan(rej) and rej > max_rejection:
        failed.append(f"rejection_rate={_fmt(rej)}, over {max_rejection:g}")
    return not failed, "; ".join(failed)


# --------------------------------------------------------------------------- one point


def probe_requests(
    rate: float, config_requests: int | None, *, requests: int | None = None, min_duration_s: float = MIN_DURATION_S
) -> int:
    """How many requests one probe at ``rate`` simulates.

    ``requests`` given: exactly that. Otherwise the larger of the scenario's own
    ``workload.num_requests`` and ``min_duration_s`` seconds of arrivals at ``rate``,
    so a probe covers the same stretch of time whatever the rate.
    """
    if requests is not None:
        return int(requests)
    return max(int(config_requests or 0), math.ceil(min_duration_s * rate), 1)


def _output_overrides() -> list[str]:
    """What every run of a search adds: no charts, console or progress bar, one seed per run
    (the search runs the replications itself)."""
    from simulator.config.schema import OutputConfig, ScenarioConfig

    out = ["output.charts=false", "output.console=false"]
    if "progress" in getattr(OutputConfig, "__dataclass_fields__", {}):
        out.append("output.progress=off")
    if "replications" in getattr(ScenarioConfig, "__dataclass_fields__", {}):
        out.append("replications=1")
    return out


def _replications(asked: int, cfg) -> int:
    """A scenario's own ``replications=N`` counts as the search's, unless the search was given one."""
    own = getattr(cfg, "replications", 1)
    return own if asked == 1 and isinstance(own, int) and own > 1 else asked


def _run_point(overrides: list[str], seeds: list[int], run_dir: str | None) -> dict[str, Any]:
    """Simulate one point (one run per seed), save the runs, return mean figures.

    A module-level function so joblib workers can import it. A ConfigError is
    returned as ``{"error": message}`` instead of raised.
    """
    import simulator
    from simulator.metrics.headline import headline

    t0 = time.perf_counter()
    rows = []
    try:
        for k, seed in enumerate(seeds):
            result = simulator.run(list(overrides) + [f"seed={seed}"])
            if run_dir is not None:
                d = Path(run_dir) if len(seeds) == 1 else Path(run_dir) / f"rep-{k}"
                result.save(d, charts=False)
            rows.append(headline(result.summary))
    except ConfigError as exc:
        return {"error": str(exc), "wall_s": time.perf_counter() - t0}
    figures = {k: float(pd.Series([r[k] for r in rows], dtype=float).mean()) for k in rows[0]}
    return {"figures": figures, "wall_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- output directory


def _plan_dir(out_dir: str | Path | None) -> Path:
    if out_dir is not None:
        d = Path(out_dir)
    else:
        now = datetime.now()
        d = base = Path("plans") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")
        n = 0
        while d.exists():
            n += 1
            d = base.with_name(f"{base.name}-{n}")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_plan(d: Path, table: pd.DataFrame, meta: dict) -> None:
    table.to_parquet(d / "plan.parquet", index=False)
    table.to_csv(d / "plan.csv", index=False)
    (d / "plan.json").write_text(json.dumps(json_safe(meta), indent=2) + "\n")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{v:.4g}"


def _fmt_pair(a: float, b: float | None) -> tuple[str, str]:
    """Format two close rates with just enough digits to tell them apart."""
    if b is None:
        return f"{a:.3g}", ""
    for digits in (3, 4, 5, 6):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if sa != sb:
            return sa, sb
    return f"{a:.6g}", f"{b:.6g}"


def describe(cfg) -> str:
    """'1x h100-sxm llama-3.1-8b, continuous' (TP shown when above 1)."""
    c = cfg.cluster
    if c.disaggregation.enabled:
        return f"disaggregated prefill/decode, {cfg.model.name}"
    if c.groups:
        return f"groups {', '.join(c.groups)}, {cfg.model.name}, {cfg.scheduler.policy}"
    tp = f" TP{c.tp}" if c.tp > 1 else ""
    return f"{c.replicas}x {cfg.hardware.name}{tp} {cfg.model.name}, {cfg.scheduler.policy}"


def _check_rate_driven(cfg) -> None:
    w = cfg.workload
    if w.arrival in ("trace", "closed_loop"):
        raise ConfigError(
            f"the capacity search varies workload.rate, which workload.arrival={w.arrival} does not use; "
            "choose poisson, gamma or constant arrivals."
        )
    if w.rate_schedule:
        raise ConfigError(
            "the capacity search varies workload.rate, which workload.rate_schedule replaces; "
            "set workload.rate_schedule=null."
        )


def _progress(progress: Callable[[str], None] | None, line: str) -> None:
    if progress is not None:
        progress(line)


# --------------------------------------------------------------------------- max rate


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

    @property
    def answer(self) -> str:
        a, b = _fmt_pair(self.rate, self.first_failing)
        reqs = " and ".join(str(r) for r in self.requirements)
        return f"max rate meeting {reqs}: {a} req/s ({b} fails) on {self.scenario}"

    def __str__(self) -> str:
        return self.answer


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

    Raises ConfigError for bad arguments or scenarios, SearchError when no
    probed rate passes or none fails.
    """
    import simulator

    reqs = _requirements(requirements)
    overrides = list(overrides)
    cfg = simulator.load_config(overrides)
    _check_rate_driven(cfg)
    if lo is None:
        lo = cfg.workload.rate / 4 if hi is None else min(cfg.workload.rate / 4, hi / 4)
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

    t0 = time.perf_counter()
    d = _plan_dir(out_dir)
    scenario = describe(cfg)
    replications = _replications(replications, cfg)
    seeds = [cfg.seed + k for k in range(replications)]
    rows: list[dict] = []
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

    def meta(answer: dict) -> dict:
        return {
            "kind": "max_rate",
            "answer": answer,
            "requirements": [str(r) for r in reqs],
            "scenario": {"description": scenario, "overrides": overrides},
            "settings": settings,
            "probes": len(rows),
            "wall_s": time.perf_counter() - t0,
            "servesim": simulator.__version__,
        }

    def probe(rate: float) -> bool:
        i = len(rows)
        n = probe_requests(rate, cfg.workload.num_requests, requests=requests, min_duration_s=min_duration_s)
        run_dir = d / f"probe-{i:03d}-rate-{rate:.4g}"
        ov = overrides + [f"workload.rate={rate!r}", f"workload.num_requests={n}"] + _output_overrides()
        out = _run_point(ov, seeds, str(run_dir))
        if "error" in out:
            _write_plan(d, _table(rows), meta({"error": out["error"]}))
            raise ConfigError(out["error"])
        figs = out["figures"]
        ok, why = _judge(figs, reqs, max_rejection)
        rows.append(
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
        _progress(progress, _probe_line(i, rate, figs, reqs, ok, why))
        return ok

    def give_up(message: str):
        _write_plan(d, _table(rows), meta({"error": message}))
        return SearchError(f"{message}; the probes are in {d}.")

    # bracket: good passes, bad fails
    good: float | None = None
    bad: float | None = None
    if probe(lo):
        good = lo
        nxt = hi if hi is not None else 2 * lo
        for _ in range(max_steps):
            if not probe(nxt):
                bad = nxt
                break
            good, nxt = nxt, 2 * nxt
        else:
            raise give_up(f"every probed rate up to {good:.4g} req/s meets {_joined(reqs)}")
    else:
        bad = lo
        nxt = lo / 2
        for _ in range(max_steps):
            if probe(nxt):
                good = nxt
                break
            bad, nxt = nxt, nxt / 2
        else:
            raise give_up(f"no probed rate meets {_joined(reqs)}: even {bad:.4g} req/s fails ({rows[-1]['failed']})")

    # bisect
    while (bad - good) / good > rel_tol:
        mid = (good + bad) / 2
        if probe(mid):
            good = mid
        else:
            bad = mid

    table = _table(rows)
    result = MaxRateResult(
        rate=good,
        first_failing=bad,
        probes=table,
        runs_dir=d,
        requirements=reqs,
        scenario=scenario,
        wall_s=time.perf_counter() - t0,
    )
    _write_plan(d, table, meta({"rate": good, "first_failing": bad, "text": result.answer}))
    return result


def _joined(reqs: list[Requirement]) -> str:
    return " and ".join(str(r) for r in reqs)


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _check_args(
    *,
    lo=None,
    hi=None,
    rel_tol=0.02,
    replications=1,
    requests=None,
    min_duration_s=1.0,
    max_rejection=0.0,
    target_rate=None,
    max_steps=1,
) -> None:
    def positive(name, flag, v):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name}={v} ({flag}) must be a positive number.")

    positive("lo", "--lo", lo)
    positive("hi", "--hi", hi)
    positive("target_rate", "--rate", target_rate)
    positive("min_duration_s", "--duration", min_duration_s)
    if not (0 < rel_tol < 1):
        raise ConfigError(f"rel_tol={rel_tol} (--tol) must lie between 0 and 1 (e.g. 0.02).")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ConfigError(f"max_steps={max_steps} must be a whole number of at least 1.")
    if not (isinstance(replications, int) and replications >= 1):
        raise ConfigError(f"replications={replications} (--replications) must be a whole number of at least 1.")
    if requests is not None and not (isinstance(requests, int) and requests >= 1):
        raise ConfigError(f"requests={requests} (--requests) must be a whole number of at least 1.")
    if not (0 <= max_rejection <= 1):
        raise ConfigError(f"max_rejection={max_rejection} (--max-rejection) must lie between 0 and 1.")


def _key_figures(reqs: list[Requirement]) -> list[str]:
    keys = [r.figure for r in reqs]
    return keys + [k for k in ("throughput_rps", "slo_attainment") if k not in keys]


def _probe_line(i: int, rate: float, figs: dict, reqs: list[Requirement], ok: bool, why: str) -> str:
    shown = "  ".join(f"{k} {_fmt(figs.get(k))}" for k in _key_figures(reqs))
    if figs.get("rejection_rate", 0) and figs["rejection_rate"] > 0:
        shown += f"  rejection_rate {_fmt(figs['rejection_rate'])}"
    verdict = "pass" if ok else f"FAIL ({why})"
    return f"probe {i:>2}  rate {rate:8.4g} req/s  {shown}  {verdict}"


# --------------------------------------------------------------------------- cheapest


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

    @property
    def answer(self) -> str:
        reqs = _joined(self.requirements)
        if self.best is None:
            where = "in the grid" if self.max_replicas is None else f"with at most {self.max_replicas} replicas"
            return f"no configuration {where} meets {reqs} at {self.target_rate:g} req/s"
        b = self.best
        return (
            f"cheapest meeting {reqs} at {self.target_rate:g} req/s: {b['replicas']}x {b['hardware']} "
            f"TP{b['tp']} {b['policy']} ({int(b['gpus'])} GPUs, ${b['usd_per_hour']:.2f}/h), "
            f"goodput {b['goodput_rps']:.4g} req/s"
        )

    def __str__(self) -> str:
        return self.answer


_GRID_KEYS = ("cluster.replicas", "cluster.tp", "hardware", "scheduler", "scheduler.policy", "workload.rate")

#: the replica search of :func:`cheapest` tries at most this many replicas per configuration
MAX_REPLICAS = 64


def cheapest(
    target_rate: float,
    requirements: str | Requirement | Iterable[str | Requirement] = ("ttft_p99_s<=2",),
    *,
    replicas: Iterable[int] | None = None,
    max_replicas: int | None = None,
    tp: Iterable[int] = (1,),
    hardware: Iterable[str] = ("h100-sxm",),
    policy: Iterable[str] = ("continuous",),
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    n_jobs: int = 1,
    exhaustive: bool = False,
    replications: int = 1,
    requests: int | None = None,
    min_duration_s: float = MIN_DURATION_S,
    max_rejection: float = MAX_REJECTION,
    progress: Callable[[str], None] | None = None,
) -> CheapestResult:
    """The cheapest replicas x TP x GPU type x policy that meets the requirements at ``target_rate``.

    Cost per hour = replicas x TP x the GPU's ``price_per_gpu_hour`` from the
    hardware catalog.

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
    """
    import simulator
    from simulator.config import catalog

    reqs = _requirements(requirements)
    overrides = list(overrides)
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
                "as replicas, tp, hardware, policy (--replicas, --tp, --hardware, --policy) and the rate as target_rate (--rate)."
            )
    search = replicas is None
    if search:
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
    # the scenario as given may not fit (e.g. a 70B model at the default TP 1): compose it, judge the grid points
    from simulator.config import compose, to_scenario

    base = to_scenario(compose(overrides))
    _check_rate_driven(base)
    if base.cluster.disaggregation.enabled or base.cluster.groups:
        raise ConfigError(
            "cheapest searches replicas x TP of a colocated cluster; drop cluster=disaggregated and cluster.groups."
        )

    t0 = time.perf_counter()
    d = _plan_dir(out_dir)
    replications = _replications(replications, base)
    seeds = [base.seed + k for k in range(replications)]
    n = probe_requests(target_rate, base.workload.num_requests, requests=requests, min_duration_s=min_duration_s)

    # each GPU's price as the scenario sees it: the catalog's, or the overrides' hardware.price_per_gpu_hour
    prices = {}
    for hw in grid_hw:
        try:
            prices[hw] = simulator.load_config([*overrides, f"hardware={hw}"]).hardware.price_per_gpu_hour
        except ConfigError:
            prices[hw] = catalog.load_hardware(hw).price_per_gpu_hour

    def make_row(r: int, t: int, hw: str, pol: str, rank: tuple, check: bool = True) -> dict:
        price = prices.get(hw)
        row = {
            "config": f"{r}x{hw}-tp{t}-{pol}",
            "replicas": r,
            "tp": t,
            "hardware": hw,
            "policy": pol,
            "gpus": r * t,
            "price_per_gpu_hour": price,
            "usd_per_hour": float("nan") if price is None else r * t * price,
            "status": "",
            "evaluated": False,
            "met": False,
            "failed": "",
            "skipped": "",
            "run_dir": "",
        }
        ov = overrides + [f"cluster.replicas={r}", f"cluster.tp={t}", f"hardware={hw}", f"scheduler={pol}"]
        ov += [f"workload.rate={target_rate!r}", f"workload.num_requests={n}"] + _output_overrides()
        row["_overrides"] = ov
        row["_rank"] = rank
        if price is None:
            row["skipped"] = (
                f"hardware={hw} has no price_per_gpu_hour in the catalog, so its cost cannot be compared; "
                "give one with hardware.price_per_gpu_hour=..."
            )
        elif check:
            try:
                simulator.load_config(ov)
            except ConfigError as exc:
                row["skipped"] = str(exc)
        return row

    jobs = _effective_jobs(n_jobs)

    def run_batch(batch: list[int]) -> None:
        outs = _evaluate(rows, batch, d, seeds, jobs)
        for i, out in zip(batch, outs):
            row = rows[i]
            row["wall_s"] = out["wall_s"]
            if "error" in out:
                row["skipped"] = out["error"]
                _progress(progress, f"{row['config']:<34} ${row['usd_per_hour']:7.2f}/h  skipped: {out['error']}")
                continue
            figs = {k: v for k, v in out["figures"].items() if k not in ("gpus", "usd_per_hour")}
            ok, why = _judge(out["figures"], reqs, max_rejection)
            row.update(figs)
            row.update(evaluated=True, met=ok, failed=why, run_dir=str(d / row["config"]))
            shown = "  ".join(f"{k} {_fmt(out['figures'].get(k))}" for k in _key_figures(reqs))
            verdict = "pass" if ok else f"FAIL ({why})"
            _progress(progress, f"{row['config']:<34} ${row['usd_per_hour']:7.2f}/h  {shown}  {verdict}")

    def refuse_common_mistake() -> None:
        reasons = {row["skipped"] for row in rows if row["price_per_gpu_hour"] is not None}
        if len(reasons) == 1 and "" not in reasons and "does not fit" not in next(iter(reasons)):
            raise ConfigError(next(iter(reasons)))  # the same mistake everywhere: the overrides', not the grid's

    rows: list[dict] = []
    if search:
        families = []
        for k, (t, hw, pol) in enumerate(itertools.product(grid_tp, grid_hw, grid_pol)):
            rows.append(make_row(1, t, hw, pol, (k, 1)))
            families.append({"t": t, "hw": hw, "pol": pol, "first": len(rows) - 1, "fail": 0, "pass": None})
        refuse_common_mistake()
        _search_replicas(families, rows, prices, max_replicas, exhaustive, jobs, make_row, run_batch)
    else:
        for k, (r, t, hw, pol) in enumerate(itertools.product(grid_r, grid_tp, grid_hw, grid_pol)):
            rows.append(make_row(r, t, hw, pol, (k,)))
        refuse_common_mistake()
        _search_grid(rows, exhaustive, jobs, run_batch)

    for row in rows:
        if row["evaluated"]:
            row["status"] = "met" if row["met"] else "failed"
        elif row["skipped"]:
            row["status"] = "skipped"
        else:
            row["status"] = "not evaluated"  # a cheaper configuration met the requirements (search: its count 1)
    best = None
    met = [row for row in rows if row["met"]]
    if met:
        low = min(round(row["usd_per_hour"], 6) for row in met)
        winners = [row for row in met if round(row["usd_per_hour"], 6) == low]
        top = max(row["goodput_rps"] for row in winners)  # ties: grid order
        b = min((row for row in winners if row["goodput_rps"] == top), key=lambda row: row["_rank"])
        best = {k: v for k, v in b.items() if not k.startswith("_")}
    rows.sort(key=lambda row: row["_rank"])
    table = pd.DataFrame([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
    table = table.assign(_cost=table["usd_per_hour"].fillna(math.inf)).sort_values(["_cost"], kind="stable")
    table = table.drop(columns="_cost").reset_index(drop=True)
    result = CheapestResult(
        best=best,
        candidates=table,
        runs_dir=d,
        target_rate=target_rate,
        requirements=reqs,
        wall_s=time.perf_counter() - t0,
        max_replicas=max_replicas if search else None,
    )
    meta = {
        "kind": "cheapest",
        "answer": {"best": best, "text": result.answer},
        "requirements": [str(r) for r in reqs],
        "target_rate": target_rate,
        "scenario": {"overrides": overrides, "model": base.model.name},
        "settings": {
            "replicas": "search" if search else grid_r,
            "max_replicas": max_replicas if search else None,
            "replicas_rule": (
                "for each tp x hardware x policy, the smallest count in 1..max_replicas meeting the requirements "
                "(galloping 1, 2, 4, ... then bisection; assumes more replicas never fail what fewer meet), "
                "cheapest first, nothing dearer than the best passing configuration found so far"
                if search
                else "the grid given"
            ),
            "tp": grid_tp,
            "hardware": grid_hw,
            "policy": grid_pol,
            "exhaustive": exhaustive,
            "n_jobs": n_jobs,
            "replications": replications,
            "seeds": seeds,
            "num_requests": n,
            "requests": requests,
            "min_duration_s": min_duration_s,
            "max_rejection": max_rejection,
            "requests_rule": "exactly `requests` when given, else max(workload.num_requests, ceil(min_duration_s x rate))",
        },
        "candidates": len(rows),
        "evaluated": int(table["evaluated"].sum()),
        "wall_s": result.wall_s,
        "servesim": simulator.__version__,
    }
    _write_plan(d, table, meta)
    return result


def _search_grid(rows: list[dict], exhaustive: bool, jobs: int, run_batch: Callable[[list[int]], None]) -> None:
    """A grid of replica counts: simulate in ascending cost, a cost level at a time, and stop after
    the first level where a configuration passes (unless exhaustive)."""
    order = sorted(
        (i for i, row in enumerate(rows) if not row["skipped"]), key=lambda i: (round(rows[i]["usd_per_hour"], 6), i)
    )
    # cost levels: configurations of equal cost are judged together
    levels: list[list[int]] = []
    for i in order:
        if levels and round(rows[levels[-1][0]]["usd_per_hour"], 6) == round(rows[i]["usd_per_hour"], 6):
            levels[-1].append(i)
        else:
            levels.append([i])
    found = False
    li = 0
    while li < len(levels) and (not found or exhaustive):
        batch_levels = [levels[li]]
        while sum(map(len, batch_levels)) < jobs and li + len(batch_levels) < len(levels):
            batch_levels.append(levels[li + len(batch_levels)])
        run_batch([i for lv in batch_levels for i in lv])
        found = found or any(rows[i]["met"] for lv in batch_levels for i in lv)
        li += len(batch_levels)


def _search_replicas(
    families: list[dict],
    rows: list[dict],
    prices: dict,
    max_replicas: int,
    exhaustive: bool,
    jobs: int,
    make_row: Callable[..., dict],
    run_batch: Callable[[list[int]], None],
) -> None:
    """For each TP x GPU x policy (a family), the smallest replica count meeting the requirements.

    Per family, ``fail`` is the largest count known to fail (0 at first) and
    ``pass`` the smallest known to pass. Until a count passes, the next probe
    doubles ``fail`` (1, 2, 4, ...); then it bisects ``(fail, pass)``. Every
    probe is capped at ``max_replicas`` and, unless exhaustive, at the largest
    count whose cost does not exceed the cheapest passing configuration so far
    (``best``): a family whose next count costs more is done. Each round probes
    the ``jobs`` families whose next probe is cheapest. Correct when passing is
    monotone in the replica count: then every family costing at most ``best``
    ends with its smallest passing count simulated.
    """
    best = math.inf
    for f in families:
        f["unit"] = f["t"] * prices[f["hw"]] if prices.get(f["hw"]) is not None else math.nan
        f["done"] = bool(rows[f["first"]]["skipped"])

    def cap(f: dict) -> int:
        c = max_replicas if f["pass"] is None else f["pass"] - 1
        if not exhaustive and math.isfinite(best):
            c = min(c, math.floor(best / f["unit"] * (1 + 1e-9)))
        return c

    def next_count(f: dict) -> int:
        r = (1 if f["fail"] == 0 else 2 * f["fail"]) if f["pass"] is None else (f["fail"] + f["pass"]) // 2
        return min(r, cap(f))

    while True:
        active = [k for k, f in enumerate(families) if not f["done"] and f["fail"] + 1 <= cap(f)]
        if not active:
            return
        picks = sorted(active, key=lambda k: (round(next_count(families[k]) * families[k]["unit"], 6), k))[:jobs]
        batch, probed = [], []
        for k in picks:
            f = families[k]
            r = next_count(f)
            if r == 1:
                i = f["first"]  # checked when the families were made
            else:
                rows.append(make_row(r, f["t"], f["hw"], f["pol"], (k, r), check=False))
                i = len(rows) - 1
            batch.append(i)
            probed.append((f, r, i))
        run_batch(batch)
        for f, r, i in probed:
            row = rows[i]
            if not row["evaluated"]:  # the run itself refused the configuration
                f["done"] = True
            elif row["met"]:
                f["pass"] = r
                best = min(best, row["usd_per_hour"])
            else:
                f["fail"] = r


def _effective_jobs(n_jobs: int) -> int:
    if n_jobs == -1:
        import os

        return os.cpu_count() or 1
    return n_jobs


def _evaluate(rows: list[dict], batch: list[int], d: Path, seeds: list[int], jobs: int) -> list[dict]:
    args = [(rows[i]["_overrides"], seeds, str(d / rows[i]["config"])) for i in batch]
    if jobs <= 1 or len(batch) == 1:
        return [_run_point(*a) for a in args]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(jobs, len(batch)))(delayed(_run_point)(*a) for a in args)


def _ints(name: str, values: Iterable) -> list[int]:
    vals = [values] if isinstance(values, (int, str)) else list(values)
    out = []
    for v in vals:
        try:
            iv = int(v)
        except (TypeError, ValueError):
            iv = 0
        if iv < 1 or str(iv) != str(v).strip():
            raise ConfigError(f"{name}={v} must be a whole number of at least 1.")
        out.append(iv)
    if not out:
        raise ConfigError(f"give at least one value for {name}.")
    return list(dict.fromkeys(out))


def _names(name: str, values: Iterable[str], known: list[str]) -> list[str]:
    vals = [values] if isinstance(values, str) else list(values)
    if not vals:
        raise ConfigError(f"give at least one value for {name}.")
    for v in vals:
        if v not in known:
            raise ConfigError(f"{name}={v} is not known; choose one of: {', '.join(known)}.")
    return list(dict.fromkeys(vals))


__all__ = [
    "Requirement",
    "FIGURES",
    "MaxRateResult",
    "CheapestResult",
    "SearchError",
    "max_rate",
    "cheapest",
    "probe_requests",
    "describe",
    "MIN_DURATION_S",
    "MAX_REJECTION",
    "MAX_REPLICAS",
]
