"""Tier and tenant labels of requests.

A scenario may split its traffic into priority *tiers* (``tiers``: name ->
:class:`~simulator.config.schema.TierConfig`) and, within each tier, into
*tenants* (``workload.tenants`` per tier). The labels only say who sent a
request; what a tier means (priority, SLOs, admission limits, rate limits)
is the engine's business.

* Tier: each request draws one with probability ``share / sum(shares)``, from
  the seed's ``tier`` stream. No tiers configured: no tier labels.
* Tenant: each request draws one of its tier's N tenants with Zipf weights
  ``k ** -workload.tenant_skew`` (k = 1..N; skew 0 is uniform, larger skews
  concentrate traffic on the first tenants), from the ``tenant`` stream.
  Names are ``{tier}-{k-1}`` (``free-0``, ``free-1``, ...), or ``tenant-{k-1}``
  without tiers. ``workload.tenants = 0``: no tenant labels.

Both streams are named (see :mod:`simulator.workload.rng`): turning labels
on never changes arrival times or lengths. A replayed trace keeps the labels
it carries and gets only the missing ones drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.workload.base import Workload


def _pick(weights: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` indices drawn with probabilities proportional to ``weights`` (one uniform each)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    idx = np.searchsorted(cdf / cdf[-1], rng.random(n), side="right")
    return np.minimum(idx, len(weights) - 1)  # guards against rounding at the top of the cdf


def tiers(cfg: ScenarioConfig, n: int) -> np.ndarray | None:
    """``n`` tier names drawn by share (object array of str), or None without tiers."""
    if not cfg.tiers:
        return None
    names = list(cfg.tiers)
    shares = np.array([float(cfg.tiers[k].share) for k in names])
    return np.asarray(names, dtype=object)[_pick(shares, stream(cfg.seed, "tier"), n)]


def tenants(cfg: ScenarioConfig, tier: np.ndarray | None, n: int) -> np.ndarray | None:
    """``n`` tenant names, Zipf over each tier's tenants, or None when ``workload.tenants`` is 0."""
    wl = cfg.workload
    count = int(wl.tenants)
    if count <= 0:
        return None
    weights = np.arange(1, count + 1, dtype=np.float64) ** -float(wl.tenant_skew)
    k = _pick(weights, stream(cfg.seed, "tenant"), n)
    if tier is None:
        table, row = np.array([[f"tenant-{j}" for j in range(count)]], dtype=object), np.zeros(n, dtype=np.int64)
    else:
        groups, row = np.unique(np.asarray(tier, dtype=str), return_inverse=True)
        table = np.array([[f"{g}-{j}" for j in range(count)] for g in groups], dtype=object).reshape(len(groups), count)
    return table[row.reshape(-1), k]


def label(cfg: ScenarioConfig, workload: Workload) -> None:
    """Fill in ``workload.tier`` and ``workload.tenant`` where the scenario asks and they are missing."""
    n = len(workload)
    if workload.tier is None:
        workload.tier = tiers(cfg, n)
    if workload.tenant is None:
        workload.tenant = tenants(cfg, workload.tier, n)
