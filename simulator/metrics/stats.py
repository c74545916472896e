"""The statistics and SLO tests every figure of ``summary.json`` is built from.

The lowest layer of :mod:`simulator.metrics`: it imports nothing from the
package but the section types (:mod:`~simulator.metrics.sections`), and :mod:`~simulator.metrics.breakdown` and
:mod:`~simulator.metrics.summary` both build on it (stats <- breakdown <-
summary).

Distributions (``mean``, ``p50``, ``p90``, ``p99``, ``max``; ``PCTS`` are the
percentiles reported):

* NaN values (e.g. the TPOT of a one-token request) are left out; an empty
  distribution gives ``None`` for every figure.
* Percentiles of per-request figures use numpy's default (linear
  interpolation between the closest ranks).
* Weighted figures (ITL, where each distinct gap stands for ``count`` gaps)
  use the inverted CDF: the p-th percentile is the smallest value whose
  cumulative weight reaches ceil(p/100 x total weight).

SLOs, per request:

* A request's TTFT and TPOT targets are its tier's where the tier sets them
  (``tiers.<name>.ttft_s`` / ``tpot_s``), else the scenario's ``slo.*``; NaN
  (no target) always passes. ``slo.e2e_s`` applies to every request.
* A request *meets its SLO* when it completed and is within every target;
  a request without a TPOT (one output token) passes the TPOT test. Rejected
  requests never meet it, so attainment counts them as misses.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simulator.metrics.sections import Percentiles, Stats

#: The percentiles every latency distribution reports.
PCTS = (50, 90, 99)


def _stats(mean: float | None, q: list[float | None], top: float | None) -> Stats:
    """A :class:`~simulator.metrics.sections.Stats` from the mean, the ``PCTS`` percentiles in order and the max."""
    p50, p90, p99 = q
    return {"mean": mean, "p50": p50, "p90": p90, "p99": p99, "max": top}


def _empty() -> Stats:
    return _stats(None, [None] * len(PCTS), None)


def series_stats(x: pd.Series | np.ndarray) -> Stats:
    """Mean, ``PCTS`` percentiles (linear interpolation) and max of ``x``, NaNs left out."""
    a = np.asarray(x, dtype=np.float64)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return _empty()
    return _stats(float(a.mean()), [float(v) for v in np.percentile(a, PCTS)], float(a.max()))


def weighted_stats(values: np.ndarray, weights: np.ndarray) -> Stats:
    """Mean and inverted-CDF percentiles of ``values`` repeated ``weights`` times."""
    total = int(weights.sum()) if weights.size else 0
    if total == 0:
        return _empty()
    # fsum: the exactly rounded sum, so the mean does not depend on the order the gaps were recorded in
    mean = math.fsum(values * weights) / total
    order = np.argsort(values)  # (ties hold the same value: any order of them picks the same percentiles)
    v = values[order]
    cum = np.cumsum(weights[order])  # (the arrays can hold millions of gaps: few temporaries at once)
    del order
    q: list[float | None] = []
    for p in PCTS:
        idx = int(np.searchsorted(cum, math.ceil(p / 100 * total), side="left"))
        q.append(float(v[min(idx, len(v) - 1)]))
    return _stats(mean, q, float(v[-1]))


def percentiles(x: pd.Series) -> Percentiles:
    """Only the ``PCTS`` percentiles of ``x`` (linear interpolation), NaNs left out; ``None`` when empty."""
    a = x.to_numpy(dtype=np.float64, na_value=np.nan)
    a = a[~np.isnan(a)]
    q: list[float | None] = [None] * len(PCTS) if a.size == 0 else [float(v) for v in np.percentile(a, PCTS)]
    p50, p90, p99 = q
    return {"p50": p50, "p90": p90, "p99": p99}


def slo_targets(requests: pd.DataFrame, slo, tiers=None) -> tuple[pd.Series, pd.Series]:
    """Each request's (TTFT, TPOT) target in seconds: its tier's where set, else ``slo``'s; NaN = none."""

    def per_request(field: str) -> pd.Series:
        default = getattr(slo, field)
        default = np.nan if default is None else float(default)
        own = {name: getattr(t, field) for name, t in (tiers or {}).items() if getattr(t, field) is not None}
        if not own or "tier" not in requests.columns:
            return pd.Series(default, index=requests.index, dtype=np.float64)
        return requests["tier"].astype(object).map(own).astype(np.float64).fillna(default)

    return per_request("ttft_s"), per_request("tpot_s")


def slo_met(requests: pd.DataFrame, slo, tiers=None) -> pd.Series:
    """Completed and within every SLO; ``tiers`` (name -> TierConfig) override TTFT/TPOT per tier."""
    ok = requests["status"] == "completed"
    ttft, tpot = slo_targets(requests, slo, tiers)
    ok &= ttft.isna() | (requests["ttft_s"] <= ttft)
    ok &= tpot.isna() | requests["tpot_s"].isna() | (requests["tpot_s"] <= tpot)
    if slo.e2e_s is not None:
        ok &= requests["e2e_s"] <= slo.e2e_s
    return ok.fillna(False).astype(bool)
