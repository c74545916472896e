"""Fit the latency model's few free factors to one or more recordings.

The factors, each bounded by what is physical:

========================================  ==============  ===============================================
``latency.compute_efficiency``            0.2 - 1.0       share of the dense BF16 peak GEMMs reach (prefill)
``latency.memory_efficiency``             0.2 - 1.0       share of HBM bandwidth weight streaming reaches (decode)
``latency.step_overhead_s``               0 - 20 ms       the engine's CPU time per step
``latency.request_overhead_s``            0 - 200 ms      API server, tokenisation, HTTP per request
========================================  ==============  ===============================================

(``latency.compute_efficiency_fp8`` replaces the first for an FP8 model.)
The residuals are log(simulated / measured) of mean TTFT, TPOT, e2e and
ITL (where recorded) and of output throughput, over every recording; ``scipy.optimize.least_squares`` (trust
region reflective, which keeps the bounds) minimises their sum of squares,
each evaluation one simulation of every recording, the factors scaled to
[1, 2] so its finite-difference steps are the same relative size for each.
Recordings held out of the fit are only reported.

The fit also reports each factor's standard error and the pairs the data
trade against each other (from the final Jacobian): at moderate loads a
decode step's CPU overhead and its weight-streaming time are both fixed per
step, so recordings at one load determine their sum better than each.
Recordings at very different loads (batch sizes) separate them.

The start is the scenario's own values (the hardware catalog's measured
efficiencies, the engine preset's overheads); a factor the data cannot see
(``request_overhead_s`` when every TTFT is far longer, say) stays near its
start, which the report shows as an unchanged value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from simulator.api import run_workload
from simulator.config.schema import ScenarioConfig
from simulator.validation.compare import measured_figures, simulated_figures
from simulator.validation.recording import Recording
from simulator.validation.replay import Replay

#: the fitted factors and their bounds
BOUNDS: dict[str, tuple[float, float]] = {
    "compute_efficiency": (0.2, 1.0),
    "memory_efficiency": (0.2, 1.0),
    "step_overhead_s": (0.0, 0.02),
    "request_overhead_s": (0.0, 0.2),
}
#: the figures compared: (family, statistic). Means only: a percentile of a discrete-event run jumps
#: when one request crosses it, which misleads the finite differences (with p50 and p90 added, hidden
#: factors were recovered only within 10-20%; with means, within 5%: tests/test_validate.py)
TARGETS = (("ttft", "mean"), ("tpot", "mean"), ("e2e", "mean"), ("itl", "mean"))


@dataclass
class Fit:
    factors: dict[str, float]  # fitted, by latency.* key
    start: dict[str, float]  # where the fit began
    cost_start: float  # root mean square of the log residuals before and after
    cost_end: float
    evaluations: int
    message: str
    #: each factor's standard error from the final Jacobian (inf: the data do not determine it)
    stderr: dict[str, float] = field(default_factory=dict)
    #: pairs of factors the data trade against each other (|correlation| > 0.9)
    correlated: list[tuple[str, str]] = field(default_factory=list)


def _factor_key(cfg: ScenarioConfig, name: str) -> str:
    if name == "compute_efficiency" and cfg.model.weight_dtype == "fp8":
        return "compute_efficiency_fp8"
    return name


def starting_factors(cfg: ScenarioConfig) -> dict[str, float]:
    """The scenario's values of the fitted factors (an unset efficiency is the hardware catalog's)."""
    lat, gemm = cfg.latency, cfg.hardware.gemm
    out = {}
    for name in BOUNDS:
        key = _factor_key(cfg, name)
        value = getattr(lat, key)
        out[name] = float(value if value is not None else getattr(gemm, key))
    return out


def with_factors(cfg: ScenarioConfig, factors: dict[str, float]) -> ScenarioConfig:
    """``cfg`` with the fitted factors set on ``latency``."""
    changes: dict[str, Any] = {_factor_key(cfg, k): float(v) for k, v in factors.items()}
    return replace(cfg, latency=replace(cfg.latency, **changes))


def residuals(replays: Sequence[Replay], measured: Sequence[dict], factors: dict[str, float]) -> np.ndarray:
    """log(simulated / measured) of every target figure of every recording (``measured``: its
    :func:`~simulator.validation.compare.measured_figures`, computed once)."""
    out = []
    for rp, m in zip(replays, measured):
        s = simulated_figures(run_workload(with_factors(rp.cfg, factors), rp.workload))
        pairs = [(m[f][st], s[f][st]) for f, st in TARGETS]
        pairs.append((m["throughput"]["output_tokens_per_s"], s["throughput"]["output_tokens_per_s"]))
        out += [math.log(b / a) for a, b in pairs if np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0]
    return np.asarray(out, dtype=float)


def fit(replays: Sequence[Replay], recordings: Sequence[Recording], max_evaluations: int = 60) -> Fit:
    """Least squares over the bounded factors, from the scenario's own values (see the module docstring)."""
    start = starting_factors(replays[0].cfg)
    names = list(BOUNDS)
    lo = np.array([BOUNDS[n][0] for n in names])
    hi = np.array([BOUNDS[n][1] for n in names])
    to_u = lambda v: 1.0 + (np.clip(v, lo, hi) - lo) / (hi - lo)  # noqa: E731
    to_v = lambda u: lo + (u - 1.0) * (hi - lo)  # noqa: E731
    evals = [0]
    measured = [measured_figures(rp.recorded, rec.meta.get("duration_s")) for rp, rec in zip(replays, recordings)]

    def fun(u: np.ndarray) -> np.ndarray:
        evals[0] += 1
        return residuals(replays, measured, dict(zip(names, to_v(u).tolist())))

    u0 = to_u(np.array([start[n] for n in names]))
    r0 = fun(u0)
    # diff_step 0.05: finite differences wide enough to step over the small jumps of a discrete-event run
    sol = least_squares(fun, u0, bounds=(np.ones(len(names)), np.full(len(names), 2.0)), diff_step=0.05, max_nfev=max_evaluations)
    factors = dict(zip(names, to_v(sol.x).tolist()))
    rms = lambda r: float(np.sqrt(np.mean(np.square(r)))) if len(r) else float("nan")  # noqa: E731
    stderr, correlated = _uncertainty(sol.jac, sol.fun, hi - lo, names)
    return Fit(factors, start, rms(r0), rms(sol.fun), evals[0], str(sol.message), stderr, correlated)


def _uncertainty(jac: np.ndarray, res: np.ndarray, span: np.ndarray, names: list[str]) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Standard errors (in each factor's units) and strongly correlated pairs, from (J^T J)^-1 s^2."""
    m, n = jac.shape
    dof = max(m - n, 1)
    s2 = float(np.sum(np.square(res))) / dof
    try:
        cov = np.linalg.pinv(jac.T @ jac) * max(s2, 1e-12)
    except np.linalg.LinAlgError:
        return {k: float("inf") for k in names}, []
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    stderr = {k: float(sd[i] * span[i]) for i, k in enumerate(names)}
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n) if abs(corr[i, j]) > 0.9]
    return stderr, pairs
