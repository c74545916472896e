"""Replications: the spread of a point's headline figures over independent seeds.

A scenario with ``replications=N`` runs N times with seeds ``seed``,
``seed + 1``, ..., ``seed + N - 1`` (every random stream is derived from
the seed, so the runs are independent). For each headline figure (see
:mod:`simulator.metrics.headline`) the summary reports the mean over the
replications, their standard deviation, and a 95% confidence interval for
the mean: mean ± t(0.975, N - 1) × std / √N (Student's t, as the figures of
independent replications of one scenario are i.i.d.), its lower end
clipped at 0 as no headline figure can be negative. A p99 is computed
within each run, then its mean and interval across runs: the interval says
how far another N seeds would likely move the reported p99.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.metrics.headline import headline
from simulator.metrics.sections import Summary

#: t quantiles at 0.975 for 1..30 degrees of freedom; beyond, the normal 1.96 (off by < 2%)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(dof: int) -> float:
    """Student's t quantile at 0.975 for ``dof`` >= 1 degrees of freedom."""
    if dof < 1:
        raise ValueError("a confidence interval needs at least two replications")
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def min_runs(interval: float) -> int:
    """The fewest replications whose values can bound a central ``interval`` share: 1 / (1 - interval)
    (10 for 0.9: on average one value then falls beyond the interval). Fewer give no interval."""
    return math.ceil(1 / (1 - interval) - 1e-9)


def spread(values: list[float], interval: float = 0.9) -> dict:
    """Mean, std and 95% CI of the mean of one figure over replications (NaN-aware), and the
    interval holding the central ``interval`` share of the replications' values."""
    a = np.asarray(values, dtype=np.float64)
    ok = a[~np.isnan(a)]
    if ok.size == 0:
        return {"mean": None, "std": None, "ci95_low": None, "ci95_high": None, "interval_low": None,
                "interval_high": None, "values": [None] * len(a)}  # fmt: skip
    mean = float(ok.mean())
    if ok.size < 2:
        std = half = math.nan
    else:
        std = float(ok.std(ddof=1))
        half = t975(ok.size - 1) * std / math.sqrt(ok.size)
    return {
        "mean": mean,
        "std": None if math.isnan(std) else std,
        "ci95_low": None if math.isnan(half) else max(0.0, mean - half),  # every headline figure is >= 0
        "ci95_high": None if math.isnan(half) else mean + half,
        # where a further run would likely land: the replications' (1 - interval) / 2 and (1 + interval) / 2
        # quantiles (linear interpolation; seed noise, and with uncertainty=on the model error too)
        "interval_low": float(np.quantile(ok, (1 - interval) / 2)) if ok.size >= min_runs(interval) else None,
        "interval_high": float(np.quantile(ok, (1 + interval) / 2)) if ok.size >= min_runs(interval) else None,
        "values": [None if math.isnan(v) else float(v) for v in a],
    }


def replication_block(summaries: list[Summary], seeds: list[int], interval: float = 0.9) -> dict:
    """The ``replications`` section of summary.json from each replication's summary."""
    figures = [headline(s) for s in summaries]
    names = list(figures[0])
    return {
        "n": len(summaries),
        "seeds": [int(s) for s in seeds],
        "interval": interval,
        "figures": {name: spread([f[name] for f in figures], interval) for name in names},
        "note": "mean over replications and a 95% Student-t confidence interval for it; interval_low/high: the central "
        "`interval` share of the replications' values (with uncertainty=on: seed noise and model error), given from "
        f"{min_runs(interval)} replications on",
    }


__all__ = ["replication_block", "spread", "t975"]
